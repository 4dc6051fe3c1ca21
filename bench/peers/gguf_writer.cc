// qeff-gguf-writer: writes a HF GPT-2 or Llama safetensors folder as a GGUF v3 file, so
// llama.cpp can run the very weights qeff exports (bench/run_peers.sh compares the two).
//
//   qeff-gguf-writer --model HF_DIR --out FILE.gguf --type f32|f16|bf16|q8_0|q4_0
//
// Written by hand from the GGUF spec (ggml's docs/gguf.md) because Debian ships no GGUF library;
// names and conventions follow llama.cpp's convert_hf_to_gguf.py:
// - GPT-2 (`gpt2`): Conv1D weights are transposed to [out, in]; the attn.bias/masked_bias buffers
//   are dropped; lm_head is tied to wte, so no output.weight (llama.cpp then uses token_embd).
// - Llama (`llama`): q_proj/k_proj rows are permuted per head from HF's rotate-half layout to
//   llama.cpp's interleaved RoPE pairs (the converter's permute(w, n_head, n_head_kv)).
// - Types: 1-D tensors (norms, biases) and position_embd stay F32; every other 2-D weight,
//   token_embd and output included, gets --type (as `llama-quantize --pure`; the converter's
//   q8_0 does the same). A row whose length is not a multiple of 32 falls back to F16, as the
//   converter does. Q8_0 blocks: fp16 d = max|x|/127, 32 int8 round(x/d). Q4_0 blocks: fp16
//   d = (the signed value of largest magnitude)/-8, 16 bytes with elements 0..15 in the low
//   nibbles and 16..31 in the high ones, q = min(15, (int)(x/d + 8.5)) (quantize_row_q4_0_ref).
// - Tokenizer: GPT-2 takes vocab.json + merges.txt (tokenizer.ggml.model "gpt2", pre "gpt-2");
//   Llama gets a synthetic SentencePiece vocabulary of vocab_size tokens (<unk>, <s>, </s>, the
//   256 byte tokens, then placeholders): enough for llama.cpp to load the model and run token
//   ids, which is all the benchmark feeds it; its text is meaningless.
// Prints one JSON line: the file, its tensor bytes, `weight_bytes_per_token` (what a decode
// step reads: every tensor, but one row of token_embd unless it doubles as the output, and one
// row of position_embd) and `kv_f16_bytes_per_position` (llama.cpp's default f16 KV cache).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "common/util/files.h"
#include "common/util/status_macros.h"

namespace {

namespace fs = std::filesystem;

// ggml_type and llama_ftype values (ggml.h, llama.h).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kBF16 = 30 };
constexpr uint64_t kAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT
constexpr int64_t kBlock = 32;       // QK8_0 == QK4_0

// gguf_type values.
enum class ValueType : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

// llama_token_type values.
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

uint64_t RowBytes(GgmlType type, int64_t n) {
  switch (type) {
    case GgmlType::kF32: return 4 * n;
    case GgmlType::kF16:
    case GgmlType::kBF16: return 2 * n;
    case GgmlType::kQ8_0: return n / kBlock * (2 + kBlock);
    case GgmlType::kQ4_0: return n / kBlock * (2 + kBlock / 2);
  }
  return 0;
}

// Little-endian serialization of the header, metadata and tensor infos.
class Buffer {
 public:
  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    bytes_ += s;
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

class Metadata {
 public:
  void String(const std::string& key, const std::string& v) {
    Key(key, ValueType::kString);
    buf_.PutString(v);
  }
  void U32(const std::string& key, uint32_t v) {
    Key(key, ValueType::kU32);
    buf_.Put(v);
  }
  void F32(const std::string& key, float v) {
    Key(key, ValueType::kF32);
    buf_.Put(v);
  }
  void Bool(const std::string& key, bool v) {
    Key(key, ValueType::kBool);
    buf_.Put<uint8_t>(v ? 1 : 0);
  }
  void Strings(const std::string& key, const std::vector<std::string>& v) {
    Array(key, ValueType::kString, v.size());
    for (const auto& s : v) buf_.PutString(s);
  }
  void I32s(const std::string& key, const std::vector<int32_t>& v) {
    Array(key, ValueType::kI32, v.size());
    for (int32_t x : v) buf_.Put(x);
  }
  void F32s(const std::string& key, const std::vector<float>& v) {
    Array(key, ValueType::kF32, v.size());
    for (float x : v) buf_.Put(x);
  }
  uint64_t count() const { return count_; }
  std::string& bytes() { return buf_.bytes(); }

 private:
  void Key(const std::string& key, ValueType type) {
    buf_.PutString(key);
    buf_.Put(static_cast<uint32_t>(type));
    ++count_;
  }
  void Array(const std::string& key, ValueType element, uint64_t n) {
    Key(key, ValueType::kArray);
    buf_.Put(static_cast<uint32_t>(element));
    buf_.Put(n);
  }
  Buffer buf_;
  uint64_t count_ = 0;
};

// How a HF tensor becomes a GGUF one.
enum class Transform { kNone, kTranspose, kPermuteHeads };

struct OutTensor {
  std::string name;            // GGUF name
  std::string source;          // HF name
  Transform transform = Transform::kNone;
  int64_t heads = 0;           // kPermuteHeads: heads in the rows
  std::vector<int64_t> shape;  // row-major, after the transform ([rows, cols]; 1-D: [n])
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

// Applies the transform to a row-major float matrix of the source shape.
std::vector<float> Transformed(const OutTensor& t, std::vector<float> src) {
  if (t.transform == Transform::kNone) return src;
  const int64_t rows = t.shape[0], cols = t.shape[1];
  std::vector<float> out(src.size());
  if (t.transform == Transform::kTranspose) {  // source is [cols, rows]
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = src[c * rows + r];
    return out;
  }
  // convert_hf_to_gguf.py: w.reshape(heads, 2, hd/2, cols).swapaxes(1, 2).reshape(w.shape), i.e.
  // new row h*hd + 2i + j is old row h*hd + j*hd/2 + i.
  const int64_t hd = rows / t.heads, half = hd / 2;
  for (int64_t h = 0; h < t.heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(&out[(h * hd + 2 * i + j) * cols], &src[(h * hd + j * half + i) * cols], cols * sizeof(float));
  return out;
}

void QuantizeQ8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock, out += 2 + kBlock) {
    float amax = 0;
    for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t dh = qeff::hf::FloatToHalf(d);
    std::memcpy(out, &dh, 2);
    for (int64_t j = 0; j < kBlock; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
  }
}

void QuantizeQ4_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock, out += 2 + kBlock / 2) {
    float amax = 0, max = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t dh = qeff::hf::FloatToHalf(d);
    std::memcpy(out, &dh, 2);
    for (int64_t j = 0; j < kBlock / 2; ++j) {
      const uint8_t lo = std::min<int>(15, static_cast<int8_t>(x[j] * id + 8.5f));
      const uint8_t hi = std::min<int>(15, static_cast<int8_t>(x[kBlock / 2 + j] * id + 8.5f));
      out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

std::string Encode(GgmlType type, const std::vector<float>& v, int64_t row) {
  const size_t rows = v.size() / row;
  std::string out(rows * RowBytes(type, row), '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  switch (type) {
    case GgmlType::kF32: std::memcpy(p, v.data(), out.size()); break;
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = type == GgmlType::kF16 ? qeff::hf::FloatToHalf(v[i]) : qeff::hf::FloatToBFloat16(v[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      break;
    case GgmlType::kQ8_0:
      for (size_t r = 0; r < rows; ++r) QuantizeQ8_0(&v[r * row], row, p + r * RowBytes(type, row));
      break;
    case GgmlType::kQ4_0:
      for (size_t r = 0; r < rows; ++r) QuantizeQ4_0(&v[r * row], row, p + r * RowBytes(type, row));
      break;
  }
  return out;
}

// config.json integer, or INVALID_ARGUMENT naming the field.
absl::StatusOr<int64_t> ConfigInt(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || !config[key].is_number_integer() || config[key].get<int64_t>() <= 0)
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " must be a positive integer"));
  return config[key].get<int64_t>();
}

struct Plan {
  Metadata meta;
  std::vector<OutTensor> tensors;
  int64_t kv_values_per_position = 0;  // K and V over all layers
};

// Adds a weight: 2-D ones get `type` (F16 when the row does not fill whole blocks), 1-D ones F32.
absl::Status Add(const qeff::hf::ModelFolder& folder, Plan* plan, const std::string& name, const std::string& source,
                 const std::vector<int64_t>& expected_source_shape, GgmlType type,
                 Transform transform = Transform::kNone, int64_t heads = 0) {
  QEFF_ASSIGN_OR_RETURN(auto view, folder.Tensor(source));
  if (view.shape != expected_source_shape) {
    std::string want, got;
    for (int64_t d : expected_source_shape) absl::StrAppend(&want, want.empty() ? "" : ",", d);
    for (int64_t d : view.shape) absl::StrAppend(&got, got.empty() ? "" : ",", d);
    return absl::InvalidArgumentError(absl::StrCat(source, ": shape [", got, "], config.json says [", want, "]"));
  }
  if (!qeff::hf::IsFloatingWeight(view.dtype))
    return absl::InvalidArgumentError(absl::StrCat(source, ": dtype ", qeff::hf::DTypeName(view.dtype), " is not F32/F16/BF16"));
  OutTensor t{name, source, transform, heads, view.shape};
  if (transform == Transform::kTranspose) std::swap(t.shape[0], t.shape[1]);
  if (t.shape.size() == 1) type = GgmlType::kF32;
  if ((type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0) && t.shape.back() % kBlock != 0) {
    std::fprintf(stderr, "note: %s: rows of %lld are not whole blocks of 32, written as F16\n", name.c_str(),
                 static_cast<long long>(t.shape.back()));
    type = GgmlType::kF16;
  }
  t.type = type;
  plan->tensors.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status PlanGpt2(const qeff::hf::ModelFolder& folder, GgmlType type, Plan* plan) {
  const nlohmann::json& c = folder.config();
  QEFF_ASSIGN_OR_RETURN(auto layers, ConfigInt(c, "n_layer"));
  QEFF_ASSIGN_OR_RETURN(auto hidden, ConfigInt(c, "n_embd"));
  QEFF_ASSIGN_OR_RETURN(auto heads, ConfigInt(c, "n_head"));
  QEFF_ASSIGN_OR_RETURN(auto vocab, ConfigInt(c, "vocab_size"));
  QEFF_ASSIGN_OR_RETURN(auto positions, ConfigInt(c, "n_positions"));
  const int64_t inner = c.contains("n_inner") && c["n_inner"].is_number_integer() ? c["n_inner"].get<int64_t>() : 4 * hidden;
  const std::string act = c.value("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    return absl::InvalidArgumentError("config.json: activation_function " + act + " (llama.cpp's gpt2 has tanh GELU only)");
  if (c.value("scale_attn_by_inverse_layer_idx", false) || c.value("reorder_and_upcast_attn", false))
    return absl::InvalidArgumentError("config.json: scale_attn_by_inverse_layer_idx/reorder_and_upcast_attn are not in llama.cpp's gpt2");

  Metadata& m = plan->meta;
  m.String("general.architecture", "gpt2");
  m.U32("gpt2.context_length", static_cast<uint32_t>(positions));
  m.U32("gpt2.embedding_length", static_cast<uint32_t>(hidden));
  m.U32("gpt2.feed_forward_length", static_cast<uint32_t>(inner));
  m.U32("gpt2.block_count", static_cast<uint32_t>(layers));
  m.U32("gpt2.attention.head_count", static_cast<uint32_t>(heads));
  m.F32("gpt2.attention.layer_norm_epsilon", c.value("layer_norm_epsilon", 1e-5f));

  plan->kv_values_per_position = 2 * layers * hidden;
  const std::string p = folder.HasTensor("transformer.wte.weight") ? "transformer." : "";
  const int64_t H = hidden;
  auto add = [&](const std::string& name, const std::string& src, std::vector<int64_t> shape, GgmlType t,
                 Transform tr = Transform::kNone) { return Add(folder, plan, name, p + src, shape, t, tr); };
  QEFF_RETURN_IF_ERROR(add("token_embd.weight", "wte.weight", {vocab, H}, type));
  QEFF_RETURN_IF_ERROR(add("position_embd.weight", "wpe.weight", {positions, H}, GgmlType::kF32));
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = "h." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
    const Transform tr = Transform::kTranspose;
    for (auto [name, src, shape, tt] : std::vector<std::tuple<std::string, std::string, std::vector<int64_t>, Transform>>{
             {"attn_norm.weight", "ln_1.weight", {H}, Transform::kNone},
             {"attn_norm.bias", "ln_1.bias", {H}, Transform::kNone},
             {"attn_qkv.weight", "attn.c_attn.weight", {H, 3 * H}, tr},
             {"attn_qkv.bias", "attn.c_attn.bias", {3 * H}, Transform::kNone},
             {"attn_output.weight", "attn.c_proj.weight", {H, H}, tr},
             {"attn_output.bias", "attn.c_proj.bias", {H}, Transform::kNone},
             {"ffn_norm.weight", "ln_2.weight", {H}, Transform::kNone},
             {"ffn_norm.bias", "ln_2.bias", {H}, Transform::kNone},
             {"ffn_up.weight", "mlp.c_fc.weight", {H, inner}, tr},
             {"ffn_up.bias", "mlp.c_fc.bias", {inner}, Transform::kNone},
             {"ffn_down.weight", "mlp.c_proj.weight", {inner, H}, tr},
             {"ffn_down.bias", "mlp.c_proj.bias", {H}, Transform::kNone}}) {
      QEFF_RETURN_IF_ERROR(add(b + name, l + src, shape, type, tt));
    }
  }
  QEFF_RETURN_IF_ERROR(add("output_norm.weight", "ln_f.weight", {H}, GgmlType::kF32));
  QEFF_RETURN_IF_ERROR(add("output_norm.bias", "ln_f.bias", {H}, GgmlType::kF32));

  // Tokenizer: vocab.json (token -> id) and merges.txt, as convert_hf_to_gguf.py's gpt2 vocab.
  const fs::path vocab_path = folder.dir() / "vocab.json", merges_path = folder.dir() / "merges.txt";
  if (!fs::exists(vocab_path) || !fs::exists(merges_path))
    return absl::InvalidArgumentError(folder.dir().string() + ": GPT-2 needs vocab.json and merges.txt for llama.cpp's tokenizer");
  QEFF_ASSIGN_OR_RETURN(auto vocab_text, qeff::util::ReadFile(vocab_path, 64ull << 20));
  QEFF_ASSIGN_OR_RETURN(auto merges_text, qeff::util::ReadFile(merges_path, 64ull << 20));
  nlohmann::json vj = nlohmann::json::parse(vocab_text, nullptr, false);
  if (!vj.is_object()) return absl::InvalidArgumentError(vocab_path.string() + ": not a JSON object");
  std::vector<std::string> tokens(vocab);
  std::vector<int32_t> types(vocab, kUserDefined);
  for (auto& [tok, id] : vj.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab)
      return absl::InvalidArgumentError(absl::StrCat(vocab_path.string(), ": id of ", tok, " outside vocab_size ", vocab));
    tokens[id.get<int64_t>()] = tok;
    types[id.get<int64_t>()] = kNormal;
  }
  for (int64_t i = 0; i < vocab; ++i)
    if (tokens[i].empty()) tokens[i] = "[PAD" + std::to_string(i) + "]";  // the converter's padding
  std::vector<std::string> merges;
  size_t pos = 0;
  while (pos < merges_text.size()) {
    size_t end = merges_text.find('\n', pos);
    if (end == std::string::npos) end = merges_text.size();
    std::string line = merges_text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(line);
  }
  for (const char* key : {"bos_token_id", "eos_token_id"}) {
    if (c.contains(key) && c[key].is_number_integer() && c[key].get<int64_t>() >= 0 && c[key].get<int64_t>() < vocab) {
      types[c[key].get<int64_t>()] = kControl;
      m.U32(std::string("tokenizer.ggml.") + key, c[key].get<uint32_t>());
    }
  }
  m.String("tokenizer.ggml.model", "gpt2");
  m.String("tokenizer.ggml.pre", "gpt-2");
  m.Strings("tokenizer.ggml.tokens", tokens);
  m.I32s("tokenizer.ggml.token_type", types);
  m.Strings("tokenizer.ggml.merges", merges);
  return absl::OkStatus();
}

absl::Status PlanLlama(const qeff::hf::ModelFolder& folder, GgmlType type, Plan* plan) {
  const nlohmann::json& c = folder.config();
  QEFF_ASSIGN_OR_RETURN(auto layers, ConfigInt(c, "num_hidden_layers"));
  QEFF_ASSIGN_OR_RETURN(auto hidden, ConfigInt(c, "hidden_size"));
  QEFF_ASSIGN_OR_RETURN(auto inter, ConfigInt(c, "intermediate_size"));
  QEFF_ASSIGN_OR_RETURN(auto heads, ConfigInt(c, "num_attention_heads"));
  QEFF_ASSIGN_OR_RETURN(auto vocab, ConfigInt(c, "vocab_size"));
  QEFF_ASSIGN_OR_RETURN(auto positions, ConfigInt(c, "max_position_embeddings"));
  const int64_t kv_heads = c.contains("num_key_value_heads") ? c.value("num_key_value_heads", int64_t{0}) : heads;
  if (kv_heads <= 0 || heads % kv_heads != 0)
    return absl::InvalidArgumentError("config.json: num_key_value_heads must divide num_attention_heads");
  if (hidden % heads != 0 || (hidden / heads) % 2 != 0)
    return absl::InvalidArgumentError("config.json: hidden_size / num_attention_heads must be an even head size");
  const int64_t hd = hidden / heads;
  if (c.contains("head_dim") && !c["head_dim"].is_null() && c["head_dim"] != hd)
    return absl::InvalidArgumentError("config.json: head_dim other than hidden_size / num_attention_heads is not supported");
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null())
    return absl::InvalidArgumentError("config.json: rope_scaling is not supported by this writer");
  if (c.value("attention_bias", false) || c.value("mlp_bias", false))
    return absl::InvalidArgumentError("config.json: attention_bias/mlp_bias are not supported by this writer");
  if (c.value("hidden_act", "silu") != "silu")
    return absl::InvalidArgumentError("config.json: hidden_act must be silu");
  if (vocab < 3 + 256) return absl::InvalidArgumentError("config.json: vocab_size must be at least 259 (synthetic SPM vocabulary)");

  Metadata& m = plan->meta;
  m.String("general.architecture", "llama");
  m.U32("llama.context_length", static_cast<uint32_t>(positions));
  m.U32("llama.embedding_length", static_cast<uint32_t>(hidden));
  m.U32("llama.feed_forward_length", static_cast<uint32_t>(inter));
  m.U32("llama.block_count", static_cast<uint32_t>(layers));
  m.U32("llama.attention.head_count", static_cast<uint32_t>(heads));
  m.U32("llama.attention.head_count_kv", static_cast<uint32_t>(kv_heads));
  m.F32("llama.attention.layer_norm_rms_epsilon", c.value("rms_norm_eps", 1e-6f));
  m.F32("llama.rope.freq_base", c.value("rope_theta", 10000.0f));
  m.U32("llama.rope.dimension_count", static_cast<uint32_t>(hd));
  m.U32("llama.vocab_size", static_cast<uint32_t>(vocab));

  const int64_t H = hidden, KV = kv_heads * hd;
  plan->kv_values_per_position = 2 * layers * KV;
  QEFF_RETURN_IF_ERROR(Add(folder, plan, "token_embd.weight", "model.embed_tokens.weight", {vocab, H}, type));
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".", b = "blk." + std::to_string(i) + ".";
    const Transform perm = Transform::kPermuteHeads;
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "attn_norm.weight", l + "input_layernorm.weight", {H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "attn_q.weight", l + "self_attn.q_proj.weight", {H, H}, type, perm, heads));
    QEFF_RETURN_IF_ERROR(
        Add(folder, plan, b + "attn_k.weight", l + "self_attn.k_proj.weight", {KV, H}, type, perm, kv_heads));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "attn_v.weight", l + "self_attn.v_proj.weight", {KV, H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "attn_output.weight", l + "self_attn.o_proj.weight", {H, H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "ffn_norm.weight", l + "post_attention_layernorm.weight", {H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "ffn_gate.weight", l + "mlp.gate_proj.weight", {inter, H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "ffn_up.weight", l + "mlp.up_proj.weight", {inter, H}, type));
    QEFF_RETURN_IF_ERROR(Add(folder, plan, b + "ffn_down.weight", l + "mlp.down_proj.weight", {H, inter}, type));
  }
  QEFF_RETURN_IF_ERROR(Add(folder, plan, "output_norm.weight", "model.norm.weight", {H}, type));
  // Tied embeddings (or no lm_head): llama.cpp falls back to token_embd for the output.
  if (!c.value("tie_word_embeddings", false) && folder.HasTensor("lm_head.weight"))
    QEFF_RETURN_IF_ERROR(Add(folder, plan, "output.weight", "lm_head.weight", {vocab, H}, type));

  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {kUnknown, kControl, kControl};
  std::vector<float> scores(vocab, 0.0f);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    tokens.push_back(name);
    types.push_back(kByte);
  }
  for (int64_t i = tokens.size(); i < vocab; ++i) {
    tokens.push_back("\xE2\x96\x81t" + std::to_string(i));  // "▁t<id>": unique placeholders
    types.push_back(kNormal);
    scores[i] = -static_cast<float>(i);
  }
  m.String("tokenizer.ggml.model", "llama");
  m.Strings("tokenizer.ggml.tokens", tokens);
  m.F32s("tokenizer.ggml.scores", scores);
  m.I32s("tokenizer.ggml.token_type", types);
  m.U32("tokenizer.ggml.bos_token_id", 1);
  m.U32("tokenizer.ggml.eos_token_id", 2);
  m.U32("tokenizer.ggml.unknown_token_id", 0);
  return absl::OkStatus();
}

absl::Status WriteAll(std::FILE* f, const void* data, size_t n, const fs::path& path) {
  if (n != 0 && std::fwrite(data, 1, n, f) != n) return absl::InternalError("cannot write " + path.string());
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Run(const fs::path& model, const fs::path& out, const std::string& type_name) {
  static const std::map<std::string, std::pair<GgmlType, uint32_t>> kTypes = {
      {"f32", {GgmlType::kF32, 0}}, {"f16", {GgmlType::kF16, 1}}, {"bf16", {GgmlType::kBF16, 32}},
      {"q8_0", {GgmlType::kQ8_0, 7}}, {"q4_0", {GgmlType::kQ4_0, 2}}};  // llama_ftype values
  auto it = kTypes.find(type_name);
  if (it == kTypes.end()) return absl::InvalidArgumentError("--type must be f32, f16, bf16, q8_0 or q4_0");
  const GgmlType type = it->second.first;

  QEFF_ASSIGN_OR_RETURN(auto folder, qeff::hf::ModelFolder::Open(model));
  Plan plan;
  plan.meta.String("general.name", model.filename().string());
  plan.meta.U32("general.file_type", it->second.second);
  if (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0) plan.meta.U32("general.quantization_version", 2);
  const std::string arch = folder.architecture();
  QEFF_RETURN_IF_ERROR(arch == "GPT2LMHeadModel"    ? PlanGpt2(folder, type, &plan)
                       : arch == "LlamaForCausalLM" ? PlanLlama(folder, type, &plan)
                       : absl::UnimplementedError("architecture '" + arch +
                                                  "' is not supported (GPT2LMHeadModel, LlamaForCausalLM)"));

  // Offsets: each tensor's data starts aligned, relative to the data section.
  uint64_t offset = 0, per_token = 0;
  const bool tied = std::none_of(plan.tensors.begin(), plan.tensors.end(), [](auto& t) { return t.name == "output.weight"; });
  for (OutTensor& t : plan.tensors) {
    const int64_t row = t.shape.back();
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
    t.offset = offset;
    t.bytes = rows * RowBytes(t.type, row);
    offset += (t.bytes + kAlignment - 1) / kAlignment * kAlignment;
    const bool one_row = t.name == "position_embd.weight" || (t.name == "token_embd.weight" && !tied);
    per_token += one_row ? RowBytes(t.type, row) : t.bytes;
  }
  Buffer head;
  head.bytes() = "GGUF";
  head.Put<uint32_t>(3);
  head.Put<uint64_t>(plan.tensors.size());
  head.Put<uint64_t>(plan.meta.count());
  head.bytes() += plan.meta.bytes();
  for (const OutTensor& t : plan.tensors) {
    head.PutString(t.name);
    head.Put<uint32_t>(t.shape.size());
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) head.Put<uint64_t>(*d);  // ne[0] is the row
    head.Put(static_cast<uint32_t>(t.type));
    head.Put<uint64_t>(t.offset);
  }
  head.bytes().resize((head.bytes().size() + kAlignment - 1) / kAlignment * kAlignment, '\0');

  // Written next to the target and renamed at the end: no half-written file under the real name.
  const fs::path tmp = fs::path(out.string() + ".tmp");
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return absl::InternalError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  auto write = [&]() -> absl::Status {
    QEFF_RETURN_IF_ERROR(WriteAll(f, head.bytes().data(), head.bytes().size(), tmp));
    uint64_t written = 0;
    for (const OutTensor& t : plan.tensors) {
      QEFF_ASSIGN_OR_RETURN(auto view, folder.Tensor(t.source));
      QEFF_ASSIGN_OR_RETURN(auto values, qeff::hf::ToFloatVector(view));
      const std::string data = Encode(t.type, Transformed(t, std::move(values)), t.shape.back());
      const std::string pad(t.offset - written, '\0');
      QEFF_RETURN_IF_ERROR(WriteAll(f, pad.data(), pad.size(), tmp));
      QEFF_RETURN_IF_ERROR(WriteAll(f, data.data(), data.size(), tmp));
      written = t.offset + data.size();
    }
    return absl::OkStatus();
  };
  absl::Status st = write();
  if (std::fclose(f) != 0 && st.ok()) st = absl::InternalError("cannot write " + tmp.string());
  if (st.ok()) {
    std::error_code ec;
    fs::rename(tmp, out, ec);
    if (ec) st = absl::InternalError("cannot rename " + tmp.string() + ": " + ec.message());
  }
  if (!st.ok()) {
    fs::remove(tmp);
    return st;
  }
  return nlohmann::json{{"out", fs::absolute(out).lexically_normal().string()},
                        {"type", type_name},
                        {"architecture", arch},
                        {"tensors", plan.tensors.size()},
                        {"tensor_bytes", offset},
                        {"weight_bytes_per_token", per_token},
                        {"kv_f16_bytes_per_position", 2 * plan.kv_values_per_position}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"write a HF GPT-2/Llama folder as GGUF (for llama.cpp)"};
  std::string model, out, type;
  app.add_option("--model", model, "HF model folder")->required();
  app.add_option("--out", out, "GGUF file to write")->required();
  app.add_option("--type", type, "f32|f16|bf16|q8_0|q4_0")->required();
  CLI11_PARSE(app, argc, argv);
  auto result = Run(model, out, type);
  if (!result.ok()) {
    std::fprintf(stderr, "error: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", result->dump().c_str());
  return 0;
}
