// qeff-make-random-model: writes a HF GPT-2, Llama or Mixtral folder (config.json, generation_config.json,
// model.safetensors) of any shape with seeded random weights, for tests and benchmarks.
//
//   qeff-make-random-model --out DIR --n-layer N --n-embd N --n-head N --vocab N --n-positions N
//       [--seed S] [--dtype f32|f16|bf16] [--std X] [--tokenizer-from DIR] [--no-prefix] [--fast-normal]
//   qeff-make-random-model --arch llama --out DIR --n-layer N --hidden N --intermediate N --n-head N
//       [--kv-heads N] --vocab N --n-positions N [--seed S] [--dtype ...] [--std X] [--tokenizer-from DIR]
//   qeff-make-random-model --arch mixtral ... (as llama) --experts E --top-k K
//
// --arch gpt2 (default) writes GPT2LMHeadModel; --arch llama writes LlamaForCausalLM (RMSNorm
// eps 1e-5, rope_theta 10000, untied lm_head, no biases). Flags map to config.json as:
// --n-layer = n_layer | num_hidden_layers, --n-embd (alias --hidden) = n_embd | hidden_size,
// --n-head = n_head | num_attention_heads, --vocab = vocab_size, --n-positions = n_positions |
// max_position_embeddings; llama only: --intermediate = intermediate_size (required),
// --kv-heads = num_key_value_heads (default --n-head); mixtral: MixtralForCausalLM with E experts
// of --intermediate each (num_local_experts, num_experts_per_tok = K). TinyLlama-1.1B's shape:
//   --arch llama --n-layer 22 --hidden 2048 --intermediate 5632 --n-head 32 --kv-heads 4 --vocab 32000
//   --n-positions 2048
//
// Matrices ~ N(0, std) (default min(0.3, 2/sqrt(n_embd)): like the fixtures' 0.3 for small
// models, smaller for wide ones so attention stays far from uniform without saturating); 1-D
// parameters get N(0, 0.1) noise around HF's init (norm weights 1, biases 0) so a dropped bias
// or norm changes the result. --no-prefix (gpt2 only) writes the original hub layout: no
// "transformer." prefix and the attn.bias / attn.masked_bias buffers. --fast-normal draws an
// approximate normal (a sum of four uniforms) instead of Box-Muller: for multi-GB checkpoints.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"

namespace {

namespace fs = std::filesystem;
using qeff::hf::DType;

// splitmix64 + Box-Muller: fast, and the same numbers on every platform for a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double r = std::sqrt(-2.0 * std::log(Uniform())), t = 2.0 * M_PI * Uniform();
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }
  // Irwin-Hall: four 16-bit uniforms of one draw, centred and scaled to unit variance (bounded
  // by ±3.46). ~10x cheaper than Box-Muller; for multi-GB benchmark checkpoints.
  double FastNormal() {
    const uint64_t x = Next();
    const double sum = static_cast<double>((x & 0xffff) + ((x >> 16) & 0xffff) + ((x >> 32) & 0xffff) + (x >> 48));
    return (sum / 65535.0 - 2.0) * 1.7320508075688772;
  }

 private:
  uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

enum class Init { kNormal, kNormWeight, kBias, kCausalMask, kMaskedBias };

struct Spec {
  qeff::hf::TensorSpec tensor;
  Init init;
};

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr,
               "error: %s\nusage: qeff-make-random-model --out DIR --n-layer N --n-embd N --n-head N --vocab N "
               "--n-positions N [--seed S] [--dtype f32|f16|bf16] [--std X] [--tokenizer-from DIR] [--no-prefix] [--fast-normal]\n"
               "       qeff-make-random-model --arch llama --out DIR --n-layer N --hidden N --intermediate N "
               "--n-head N [--kv-heads N] --vocab N --n-positions N [--seed S] [--dtype ...] [--std X] "
               "[--tokenizer-from DIR]\n",
               msg);
  std::exit(2);
}

int64_t ParsePositive(const std::string& flag, const std::string& v, int64_t max) {
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0' || x <= 0 || x > max) Usage((flag + " needs a positive integer").c_str());
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, dtype_name = "f32", tokenizer_from, arch = "gpt2";
  int64_t layers = 0, hidden = 0, heads = 0, vocab = 0, positions = 0, intermediate = 0, kv_heads = 0;
  int64_t experts = 0, top_k = 0;
  uint64_t seed = 0;
  double std_dev = -1;
  bool prefix = true, fast_normal = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--out") out = value();
    else if (a == "--arch") arch = value();
    else if (a == "--n-layer") layers = ParsePositive(a, value(), 1024);
    else if (a == "--n-embd" || a == "--hidden") hidden = ParsePositive(a, value(), 1 << 16);
    else if (a == "--intermediate") intermediate = ParsePositive(a, value(), 1 << 20);
    else if (a == "--kv-heads") kv_heads = ParsePositive(a, value(), 1024);
    else if (a == "--experts") experts = ParsePositive(a, value(), 1024);
    else if (a == "--top-k") top_k = ParsePositive(a, value(), 1024);
    else if (a == "--n-head") heads = ParsePositive(a, value(), 1024);
    else if (a == "--vocab") vocab = ParsePositive(a, value(), 1 << 22);
    else if (a == "--n-positions") positions = ParsePositive(a, value(), 1 << 20);
    else if (a == "--seed") seed = static_cast<uint64_t>(std::strtoull(value().c_str(), nullptr, 10));
    else if (a == "--dtype") dtype_name = value();
    else if (a == "--std") std_dev = std::atof(value().c_str());
    else if (a == "--tokenizer-from") tokenizer_from = value();
    else if (a == "--no-prefix") prefix = false;
    else if (a == "--fast-normal") fast_normal = true;
    else Usage(("unknown flag " + a).c_str());
  }
  if (arch != "gpt2" && arch != "llama" && arch != "mixtral") Usage("--arch must be gpt2, llama or mixtral");
  const bool mixtral = arch == "mixtral";
  const bool llama = arch == "llama" || mixtral;  // Mixtral is the Llama layout with MoE MLPs
  if (mixtral && (!experts || !top_k || top_k > experts)) Usage("--arch mixtral needs --experts E --top-k K (K <= E)");
  if (!mixtral && (experts || top_k)) Usage("--experts and --top-k are for --arch mixtral only");
  if (out.empty() || !layers || !hidden || !heads || !vocab || !positions) Usage("missing a required flag");
  if (hidden % heads != 0) Usage("--n-embd must be divisible by --n-head");
  if (llama) {
    if (!intermediate) Usage("--arch llama needs --intermediate");
    if (!prefix) Usage("--no-prefix is for --arch gpt2 only");
    if (!kv_heads) kv_heads = heads;
    if (heads % kv_heads != 0) Usage("--n-head must be divisible by --kv-heads");
    if ((hidden / heads) % 2 != 0) Usage("the head size (--hidden / --n-head) must be even for RoPE");
  } else if (intermediate || kv_heads) {
    Usage("--intermediate and --kv-heads are for --arch llama only");
  }
  DType dtype;
  if (dtype_name == "f32") dtype = DType::kF32;
  else if (dtype_name == "f16") dtype = DType::kF16;
  else if (dtype_name == "bf16") dtype = DType::kBF16;
  else Usage("--dtype must be f32, f16 or bf16");
  if (std_dev <= 0) std_dev = std::min(0.3, 2.0 / std::sqrt(static_cast<double>(hidden)));

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    std::fprintf(stderr, "error: cannot create %s: %s\n", out.c_str(), ec.message().c_str());
    return 1;
  }

  const std::string p = prefix ? "transformer." : "";
  const int64_t H = hidden, I = llama ? intermediate : 4 * hidden;
  std::vector<Spec> specs;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, Init init) {
    specs.push_back({{name, dtype, std::move(shape)}, init});
  };
  if (llama) {
    const int64_t kv_dim = kv_heads * (hidden / heads);
    add("model.embed_tokens.weight", {vocab, H}, Init::kNormal);
    for (int64_t i = 0; i < layers; ++i) {
      const std::string l = "model.layers." + std::to_string(i) + ".";
      add(l + "input_layernorm.weight", {H}, Init::kNormWeight);
      add(l + "self_attn.q_proj.weight", {H, H}, Init::kNormal);
      add(l + "self_attn.k_proj.weight", {kv_dim, H}, Init::kNormal);
      add(l + "self_attn.v_proj.weight", {kv_dim, H}, Init::kNormal);
      add(l + "self_attn.o_proj.weight", {H, H}, Init::kNormal);
      add(l + "post_attention_layernorm.weight", {H}, Init::kNormWeight);
      if (mixtral) {
        const std::string m = l + "block_sparse_moe.";
        add(m + "gate.weight", {experts, H}, Init::kNormal);
        for (int64_t e = 0; e < experts; ++e) {
          const std::string x = m + "experts." + std::to_string(e) + ".";
          add(x + "w1.weight", {I, H}, Init::kNormal);
          add(x + "w2.weight", {H, I}, Init::kNormal);
          add(x + "w3.weight", {I, H}, Init::kNormal);
        }
        continue;
      }
      add(l + "mlp.gate_proj.weight", {I, H}, Init::kNormal);
      add(l + "mlp.up_proj.weight", {I, H}, Init::kNormal);
      add(l + "mlp.down_proj.weight", {H, I}, Init::kNormal);
    }
    add("model.norm.weight", {H}, Init::kNormWeight);
    add("lm_head.weight", {vocab, H}, Init::kNormal);
  } else {
    add(p + "wte.weight", {vocab, H}, Init::kNormal);
    add(p + "wpe.weight", {positions, H}, Init::kNormal);
    for (int64_t i = 0; i < layers; ++i) {
      const std::string l = p + "h." + std::to_string(i) + ".";
      add(l + "ln_1.weight", {H}, Init::kNormWeight);
      add(l + "ln_1.bias", {H}, Init::kBias);
      if (!prefix) {
        add(l + "attn.bias", {1, 1, positions, positions}, Init::kCausalMask);
        add(l + "attn.masked_bias", {}, Init::kMaskedBias);
      }
      add(l + "attn.c_attn.weight", {H, 3 * H}, Init::kNormal);
      add(l + "attn.c_attn.bias", {3 * H}, Init::kBias);
      add(l + "attn.c_proj.weight", {H, H}, Init::kNormal);
      add(l + "attn.c_proj.bias", {H}, Init::kBias);
      add(l + "ln_2.weight", {H}, Init::kNormWeight);
      add(l + "ln_2.bias", {H}, Init::kBias);
      add(l + "mlp.c_fc.weight", {H, I}, Init::kNormal);
      add(l + "mlp.c_fc.bias", {I}, Init::kBias);
      add(l + "mlp.c_proj.weight", {I, H}, Init::kNormal);
      add(l + "mlp.c_proj.bias", {H}, Init::kBias);
    }
    add(p + "ln_f.weight", {H}, Init::kNormWeight);
    add(p + "ln_f.bias", {H}, Init::kBias);
  }

  Rng rng(seed);
  auto normal = [&] { return fast_normal ? rng.FastNormal() : rng.Normal(); };
  std::vector<qeff::hf::TensorSpec> tensor_specs;
  for (const auto& s : specs) tensor_specs.push_back(s.tensor);
  std::vector<float> values;
  auto fill = [&](size_t index, std::string* bytes) -> absl::Status {
    const Spec& s = specs[index];
    int64_t n = 1;
    for (int64_t d : s.tensor.shape) n *= d;
    values.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      switch (s.init) {
        case Init::kNormal: values[j] = static_cast<float>(std_dev * normal()); break;
        case Init::kNormWeight: values[j] = static_cast<float>(1.0 + 0.1 * normal()); break;
        case Init::kBias: values[j] = static_cast<float>(0.1 * normal()); break;
        case Init::kCausalMask: values[j] = (j % positions) <= ((j / positions) % positions) ? 1.0f : 0.0f; break;
        case Init::kMaskedBias: values[j] = -1e4f; break;
      }
    }
    const size_t esize = qeff::hf::DTypeSize(dtype);
    bytes->resize(static_cast<size_t>(n) * esize);
    for (int64_t j = 0; j < n; ++j) {
      if (dtype == DType::kF32) {
        std::memcpy(bytes->data() + 4 * j, &values[j], 4);
      } else {
        uint16_t h = dtype == DType::kF16 ? qeff::hf::FloatToHalf(values[j]) : qeff::hf::FloatToBFloat16(values[j]);
        std::memcpy(bytes->data() + 2 * j, &h, 2);
      }
    }
    return absl::OkStatus();
  };
  absl::Status st = qeff::hf::WriteSafetensorsStreamed(fs::path(out) / "model.safetensors", tensor_specs, fill,
                                                       {{"format", "pt"}});
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.ToString().c_str());
    return 1;
  }

  const char* torch_dtype = dtype == DType::kF32 ? "float32" : dtype == DType::kF16 ? "float16" : "bfloat16";
  nlohmann::ordered_json config, generation;
  if (llama) {
    // TinyLlama's / Llama-2's special ids (bos 1, eos 2), kept inside a tiny vocabulary.
    const int64_t bos = std::min<int64_t>(1, vocab - 1), eos = std::min<int64_t>(2, vocab - 1);
    config = {{"architectures", {"LlamaForCausalLM"}},
              {"attention_bias", false},
              {"attention_dropout", 0.0},
              {"bos_token_id", bos},
              {"eos_token_id", eos},
              {"hidden_act", "silu"},
              {"hidden_size", H},
              {"initializer_range", std_dev},
              {"intermediate_size", I},
              {"max_position_embeddings", positions},
              {"mlp_bias", false},
              {"model_type", "llama"},
              {"num_attention_heads", heads},
              {"num_hidden_layers", layers},
              {"num_key_value_heads", kv_heads},
              {"pretraining_tp", 1},
              {"rms_norm_eps", 1e-05},
              {"rope_scaling", nullptr},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", false},
              {"torch_dtype", torch_dtype},
              {"use_cache", true},
              {"vocab_size", vocab},
              {"qeff_random_seed", seed}};
    if (mixtral) {
      config["architectures"] = {"MixtralForCausalLM"};
      config["model_type"] = "mixtral";
      config["num_local_experts"] = experts;
      config["num_experts_per_tok"] = top_k;
      config["sliding_window"] = nullptr;
      for (const char* k : {"attention_bias", "mlp_bias", "pretraining_tp"}) config.erase(k);
    }
    generation = {{"bos_token_id", bos}, {"eos_token_id", eos}};
  } else {
    const int64_t eos = std::min<int64_t>(50256, vocab - 1);
    config = {
        {"activation_function", "gelu_new"}, {"architectures", {"GPT2LMHeadModel"}}, {"attn_pdrop", 0.1},
        {"bos_token_id", eos},               {"embd_pdrop", 0.1},                    {"eos_token_id", eos},
        {"initializer_range", std_dev},      {"layer_norm_epsilon", 1e-05},          {"model_type", "gpt2"},
        {"n_embd", H},                       {"n_head", heads},                      {"n_inner", nullptr},
        {"n_layer", layers},                 {"n_positions", positions},             {"resid_pdrop", 0.1},
        {"scale_attn_weights", true},        {"torch_dtype", torch_dtype},           {"use_cache", true},
        {"vocab_size", vocab},               {"qeff_random_seed", seed}};
    generation = {{"bos_token_id", eos}, {"eos_token_id", eos}};
  }
  std::ofstream(fs::path(out) / "config.json") << config.dump(2) << "\n";
  std::ofstream(fs::path(out) / "generation_config.json") << generation.dump(2) << "\n";

  if (!tokenizer_from.empty()) {
    int copied = 0;
    for (const auto& name : qeff::hf::TokenizerFileNames()) {
      if (name == "generation_config.json") continue;
      fs::path src = fs::path(tokenizer_from) / name;
      if (!fs::is_regular_file(src, ec)) continue;
      fs::copy_file(src, fs::path(out) / name, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        std::fprintf(stderr, "error: cannot copy %s: %s\n", src.c_str(), ec.message().c_str());
        return 1;
      }
      ++copied;
    }
    if (copied == 0) {
      std::fprintf(stderr, "error: no tokenizer files in %s\n", tokenizer_from.c_str());
      return 1;
    }
  }
  std::printf("%s\n", fs::absolute(out).lexically_normal().c_str());
  return 0;
}
