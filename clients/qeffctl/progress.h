// Progress display for streamed Export/Compile events: a one-line bar on a terminal (stderr),
// plain log lines otherwise, nothing in --json mode.
#pragma once

#include <string>

#include "qeff/v1/artifacts.pb.h"

namespace qeffctl {

class ProgressPrinter {
 public:
  ProgressPrinter(std::string title, bool quiet);
  ~ProgressPrinter();
  void Update(const qeff::v1::Progress& p);
  void Finish(const std::string& summary);

 private:
  std::string title_;
  bool quiet_;
  bool tty_;
  bool open_line_ = false;
  std::string last_stage_;
};

}  // namespace qeffctl
