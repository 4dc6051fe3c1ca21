#include "clients/qeffctl/jsonl_lines.h"

#include <fstream>
#include <iostream>

namespace qeffctl {

bool ForEachJsonLine(const std::string& path, const std::string& command, std::ostream& err,
                     const std::function<bool(size_t line_no, const std::string& line)>& fn) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      err << command << ": cannot open " << path << "\n";
      return false;
    }
    in = &file;
  }
  std::string line;
  size_t line_no = 0;
  while (std::getline(*in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (!fn(line_no, line)) return false;
  }
  return true;
}

}  // namespace qeffctl
