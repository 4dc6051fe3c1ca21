// Zeroed anonymous memory in transparent huge pages (2 MB) from 2 MB on. Large buffers that are
// streamed through (KV caches, activation arenas, an exporter's transposed weights) take one page
// fault and one TLB entry per 2 MB instead of per 4 KB; on this kind of VM a 4 KB fault costs
// microseconds, and the hardware prefetcher stops at every 4 KB boundary.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qeff::util {

class HugeBuffer {
 public:
  HugeBuffer() = default;
  // At least `bytes` bytes (page-aligned, zeroed); empty() on failure.
  explicit HugeBuffer(size_t bytes);
  HugeBuffer(HugeBuffer&& other) noexcept;
  HugeBuffer& operator=(HugeBuffer&& other) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  ~HugeBuffer();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return data_ == nullptr; }
  // No more writes (a loaded program's weights): a stray store faults instead of corrupting.
  void MakeReadOnly();

 private:
  void Release();

  void* raw_ = nullptr;  // the mapping (one huge page larger than size_, to align data_)
  size_t raw_bytes_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace qeff::util
