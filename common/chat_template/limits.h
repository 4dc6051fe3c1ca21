// Resource bounds of one render (not part of jinja2: they make every input safe to render).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qeff::chat {

struct RenderLimits {
  size_t max_output_bytes = 16u << 20;  // also the largest string a template may build
  size_t max_list_items = 1u << 20;     // the largest list a template may build
  int max_call_depth = 200;             // nested macro calls and recursive loops
  uint64_t max_steps = 20'000'000;      // statements, iterations, calls, and bytes/64 of data work
};

}  // namespace qeff::chat
