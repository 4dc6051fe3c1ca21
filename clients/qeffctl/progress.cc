#include "clients/qeffctl/progress.h"

#include <unistd.h>

#include <cstdio>

namespace qeffctl {

ProgressPrinter::ProgressPrinter(std::string title, bool quiet)
    : title_(std::move(title)), quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

ProgressPrinter::~ProgressPrinter() {
  if (open_line_) std::fputc('\n', stderr);
}

void ProgressPrinter::Update(const qeff::v1::Progress& p) {
  if (quiet_) return;
  if (!tty_) {
    // Not a terminal: one line per stage change keeps logs readable.
    if (p.stage() != last_stage_) std::fprintf(stderr, "%s: %s %s\n", title_.c_str(), p.stage().c_str(), p.message().c_str());
    last_stage_ = p.stage();
    return;
  }
  constexpr int kWidth = 30;
  std::string bar;
  if (p.total() > 0) {
    int filled = static_cast<int>(kWidth * std::min<int64_t>(p.done(), p.total()) / p.total());
    bar = "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " +
          std::to_string(100 * std::min<int64_t>(p.done(), p.total()) / p.total()) + "%";
  }
  std::string msg = p.message().substr(0, 60);
  std::fprintf(stderr, "\r\033[K%s %-14s %s %s", title_.c_str(), p.stage().c_str(), bar.c_str(), msg.c_str());
  std::fflush(stderr);
  open_line_ = true;
}

void ProgressPrinter::Finish(const std::string& summary) {
  if (quiet_) return;
  if (tty_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s: %s\n", title_.c_str(), summary.c_str());
  open_line_ = false;
}

}  // namespace qeffctl
