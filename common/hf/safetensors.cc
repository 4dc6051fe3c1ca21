#include "common/hf/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace qeff::hf {
namespace {

using json = nlohmann::json;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},   {DType::kI16, "I16", 2},
    {DType::kU16, "U16", 2},   {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},   {DType::kF32, "F32", 4},   {DType::kF64, "F64", 8}, {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
};

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

absl::Status Bad(const std::string& label, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("invalid safetensors file ", label, ": ", what));
}

absl::Status BadTensor(const std::string& label, const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid safetensors file ", label, ": tensor \"", name, "\": ", what));
}

// Reads a JSON value as a non-negative integer that fits in int64.
bool AsNonNegative(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer()) {
    int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

}  // namespace

const char* DTypeName(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

absl::StatusOr<DType> ParseDType(const std::string& name) {
  for (const auto& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype \"", name, "\""));
}

size_t DTypeSize(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

bool IsFloatingWeight(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000 | (mant << 13));  // inf / nan
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

float BFloat16ToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToHalf(float f) {
  uint32_t x = FloatBits(f);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return static_cast<uint16_t>(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
  if (ax >= 0x477ff000) return static_cast<uint16_t>(sign | 0x7c00);  // >= 65520 rounds to inf
  if (ax < 0x38800000) {
    // Below the smallest normal half: a subnormal m * 2^-24 (m may round up to 1024 = min normal).
    float scaled = BitsFloat(ax) * 16777216.0f;  // exact: only the exponent changes
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  uint32_t h = (((ax >> 23) - 112) << 10) | ((ax & 0x7fffff) >> 13);
  uint32_t rem = ax & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // nearest even; carry into exponent is right
  return static_cast<uint16_t>(sign | h);
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x = FloatBits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

absl::Status ConvertToFloat(const TensorView& view, float* out) {
  const int64_t n = view.numel();
  if (static_cast<size_t>(n) * DTypeSize(view.dtype) != view.bytes) {
    return absl::InvalidArgumentError("tensor view size does not match its shape");
  }
  switch (view.dtype) {
    case DType::kF32:
      std::memcpy(out, view.data, view.bytes);
      return absl::OkStatus();
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, view.data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      return absl::OkStatus();
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, view.data + 2 * i, 2);
        out[i] = BFloat16ToFloat(b);
      }
      return absl::OkStatus();
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, view.data + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tensor dtype ", DTypeName(view.dtype), " is not a floating-point type"));
  }
}

absl::StatusOr<std::vector<float>> ToFloatVector(const TensorView& view) {
  std::vector<float> out(static_cast<size_t>(view.numel()));
  QEFF_RETURN_IF_ERROR(ConvertToFloat(view, out.data()));
  return out;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path) {
  auto mapped = util::MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  QEFF_ASSIGN_OR_RETURN(SafetensorsFile f, Parse(mapped->data(), mapped->size(), path.string()));
  f.path_ = path;
  f.map_ = std::move(*mapped);  // moving the mapping keeps the address, so the views stay valid
  return f;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(const uint8_t* data, size_t size, const std::string& label) {
  if (size < 8) return Bad(label, absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxHeaderBytes) {
    return Bad(label, absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (header_len > size - 8) {
    return Bad(label, absl::StrCat("header length ", header_len, " goes beyond the end of the file (", size,
                                   " bytes): truncated or not a safetensors file"));
  }
  if (header_len < 2 || data[8] != '{') return Bad(label, "header does not start with a JSON object");

  // Parse with a callback so duplicate top-level names are caught (a JSON object would keep one).
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      std::string k = parsed.get<std::string>();
      if (!seen.insert(k).second) duplicate = k;
    }
    return true;
  };
  const char* hb = reinterpret_cast<const char*>(data + 8);
  json header = json::parse(hb, hb + header_len, cb, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return Bad(label, "header is not valid JSON");
  if (!duplicate.empty()) return BadTensor(label, duplicate, "name appears more than once in the header");

  SafetensorsFile f;
  f.path_ = label;
  const uint8_t* region = data + 8 + header_len;
  const uint64_t region_size = size - 8 - header_len;
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Bad(label, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Bad(label, absl::StrCat("__metadata__ value \"", k, "\" is not a string"));
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (name.empty()) return Bad(label, "empty tensor name");
    if (!entry.is_object()) return BadTensor(label, name, "entry is not an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) return BadTensor(label, name, "missing or non-string dtype");
    if (sh == entry.end() || !sh->is_array()) return BadTensor(label, name, "missing or non-array shape");
    if (off == entry.end() || !off->is_array() || off->size() != 2) {
      return BadTensor(label, name, "data_offsets must be an array of two integers");
    }
    auto dtype = ParseDType(dt->get<std::string>());
    if (!dtype.ok()) return BadTensor(label, name, std::string(dtype.status().message()));
    if (sh->size() > 16) return BadTensor(label, name, "more than 16 dimensions");

    TensorView view;
    view.dtype = *dtype;
    // Element count with overflow checks: anything beyond the region size is a lie anyway.
    bool has_zero = false;
    for (const auto& d : *sh) {
      uint64_t v;
      if (!AsNonNegative(d, &v)) return BadTensor(label, name, "shape entries must be non-negative integers");
      view.shape.push_back(static_cast<int64_t>(v));
      has_zero = has_zero || v == 0;
    }
    uint64_t numel = has_zero ? 0 : 1;
    bool overflow = false;
    for (int64_t v : view.shape) {
      if (has_zero || overflow) break;
      if (numel > region_size / static_cast<uint64_t>(v)) overflow = true;
      numel *= static_cast<uint64_t>(v);
    }
    uint64_t begin, end;
    if (!AsNonNegative((*off)[0], &begin) || !AsNonNegative((*off)[1], &end)) {
      return BadTensor(label, name, "data_offsets must be non-negative integers");
    }
    if (begin > end) {
      return BadTensor(label, name, absl::StrCat("data_offsets [", begin, ", ", end, "] are reversed"));
    }
    if (end > region_size) {
      return BadTensor(label, name,
                       absl::StrCat("data_offsets [", begin, ", ", end, "] go beyond the data region of ",
                                    region_size, " bytes (truncated file?)"));
    }
    const uint64_t span = end - begin;
    if (overflow || numel * DTypeSize(*dtype) != span) {
      std::string shape_str;
      for (int64_t d : view.shape) absl::StrAppend(&shape_str, shape_str.empty() ? "" : ",", d);
      return BadTensor(label, name,
                       absl::StrCat("shape [", shape_str, "] of ", dt->get<std::string>(), " needs ",
                                    overflow ? std::string("more") : std::to_string(numel * DTypeSize(*dtype)),
                                    " bytes but data_offsets span ", span));
    }
    view.data = region + begin;
    view.bytes = static_cast<size_t>(span);
    spans.push_back({{begin, end}, name});
    f.tensors_.emplace(name, std::move(view));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    const auto& prev = spans[i - 1];
    const auto& cur = spans[i];
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (cur.first.first == cur.first.second || prev.first.first == prev.first.second) continue;
    if (cur.first.first < prev.first.second) {
      return BadTensor(label, cur.second,
                       absl::StrCat("data_offsets [", cur.first.first, ", ", cur.first.second, "] overlap tensor \"",
                                    prev.second, "\" [", prev.first.first, ", ", prev.first.second, "]"));
    }
  }
  return f;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::Status WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  return WriteSafetensorsStreamed(
      path, specs,
      [&](size_t i, std::string* bytes) {
        *bytes = tensors[i].bytes;
        return absl::OkStatus();
      },
      metadata);
}

absl::Status WriteSafetensorsStreamed(const std::filesystem::path& path, const std::vector<TensorSpec>& specs,
                                      const TensorBytesFn& fill, const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps __metadata__ first and the tensors in data order, like HF's writer.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : specs) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    uint64_t bytes = numel * DTypeSize(t.dtype);
    sizes.push_back(bytes);
    header[t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot create ", path.string()));
  uint64_t n = h.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  std::string bytes;
  for (size_t i = 0; i < specs.size(); ++i) {
    bytes.clear();
    QEFF_RETURN_IF_ERROR(fill(i, &bytes));
    if (bytes.size() != sizes[i]) {
      return absl::InvalidArgumentError(absl::StrCat("WriteSafetensors: tensor ", specs[i].name, " has ",
                                                     bytes.size(), " bytes, its shape needs ", sizes[i]));
    }
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

}  // namespace qeff::hf
