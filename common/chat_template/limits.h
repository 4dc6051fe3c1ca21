// Resource bounds of one render (not part of jinja2: they make every input safe to render).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qeff::chat {

struct RenderLimits {
  size_t max_output_bytes = 16u << 20;  // also the largest string a template may build
  size_t max_list_items = 1u << 20;     // the largest list a template may build
  int max_call_depth = 200;             // nested macro calls and recursive loops
  // Statements, loop iterations, calls, and bytes/64 of data work: real templates need a few
  // thousand per message; this ends a runaway template within a second or two.
  uint64_t max_steps = 5'000'000;
};

}  // namespace qeff::chat
