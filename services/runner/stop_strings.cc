#include "services/runner/stop_strings.h"

#include <algorithm>
#include <utility>

namespace qeff::runner {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop) : include_stop_(include_stop) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopStringMatcher::Push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  if (stops_.empty()) return std::exchange(held_, std::string());
  // The earliest stop string wins (ties: the longest at that position).
  size_t at = std::string::npos, len = 0;
  for (const auto& s : stops_) {
    const size_t p = held_.find(s);
    if (p != std::string::npos && (p < at || (p == at && s.size() > len))) {
      at = p;
      len = s.size();
    }
  }
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, include_stop_ ? at + len : at);
    held_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return {};
  return std::exchange(held_, std::string());
}

}  // namespace qeff::runner
