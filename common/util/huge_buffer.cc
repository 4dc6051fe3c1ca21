#include "common/util/huge_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <utility>

namespace qeff::util {

HugeBuffer::HugeBuffer(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const bool huge = bytes >= kHuge;
  const size_t rounded = huge ? (bytes + kHuge - 1) / kHuge * kHuge : (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096;
  const size_t mapped = huge ? rounded + kHuge : rounded;
  void* raw = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return;
  raw_ = raw;
  raw_bytes_ = mapped;
  data_ = static_cast<uint8_t*>(raw);
  if (huge) {
    data_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
    ::madvise(data_, rounded, MADV_HUGEPAGE);
  }
  size_ = rounded;
}

HugeBuffer::HugeBuffer(HugeBuffer&& o) noexcept
    : raw_(std::exchange(o.raw_, nullptr)),
      raw_bytes_(std::exchange(o.raw_bytes_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    raw_ = std::exchange(o.raw_, nullptr);
    raw_bytes_ = std::exchange(o.raw_bytes_, 0);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

HugeBuffer::~HugeBuffer() { Release(); }

void HugeBuffer::MakeReadOnly() {
  if (data_ != nullptr) ::mprotect(data_, size_, PROT_READ);
}

void HugeBuffer::Release() {
  if (raw_ != nullptr) ::munmap(raw_, raw_bytes_);
  raw_ = nullptr;
  data_ = nullptr;
  size_ = raw_bytes_ = 0;
}

}  // namespace qeff::util
