// Stop strings over streamed text: finds the first occurrence of any stop string, even when it
// spans several pushes (tokens), and holds back text that could still be the start of one, so
// nothing past a stop is ever emitted.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qeff::runner {

class StopStringMatcher {
 public:
  // Empty strings are ignored. `include_stop`: the emitted text ends after the stop string
  // instead of before it.
  StopStringMatcher(std::vector<std::string> stops, bool include_stop);

  // Adds text; returns what may be emitted now. Once a stop string matched, stopped() is true
  // and later pushes return nothing.
  std::string Push(std::string_view text);
  // End of the stream without a match: the held-back text.
  std::string Flush();

  bool stopped() const { return stopped_; }
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  bool stopped_ = false;
  std::string held_;  // not yet emitted: a possible prefix of a stop string
};

}  // namespace qeff::runner
