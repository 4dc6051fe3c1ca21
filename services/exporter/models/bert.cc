// BERT-family encoders, one builder driven by a typed description of the family and the head:
//
//   BertModel, RobertaModel, XLMRobertaModel          -> last_hidden_state [B,S,H] (+ pooler_output [B,H])
//   BertForSequenceClassification                      -> logits [B,num_labels] (classifier on the tanh pooler)
//   RobertaForSequenceClassification, XLMRoberta...    -> logits [B,num_labels] (classifier.dense -> tanh ->
//                                                         classifier.out_proj on position 0, no pooler)
//
// Inputs as QEfficient's QEFFAutoModel exports encoders: input_ids and attention_mask
// [batch_size, seq_len], plus token_type_ids [batch_size, seq_len] when the model has more than
// one token type (type_vocab_size > 1; BERT pairs). Post-LN blocks with erf GELU. BERT positions
// are 0..S-1; RoBERTa's are HF's create_position_ids_from_input_ids: padding_idx + 1 + the
// running count of non-pad ids, and padding_idx at pad ids (from the ids, not the mask). Pooling
// (mean / cls / max / pooler) and classification scores are the runner's job. No KV cache, so
// the compiler emits a single "Embedding" specialization.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "services/exporter/blocks.h"
#include "services/exporter/decoder_common.h"
#include "services/exporter/model_registry.h"
#include "services/exporter/models/models.h"

namespace qeff::exporter {
namespace {

// ---- the typed description ----
enum class PositionIds {
  kAbsolute,       // BERT: 0..S-1
  kPaddingOffset,  // RoBERTa: padding_idx + 1 + cumulative index over non-pad ids, padding_idx at pads
};

struct EncoderFamily {
  const char* name;           // for messages
  const char* base_prefix;    // where task models (XxxFor...) nest the encoder's weights
  PositionIds positions;
  int64_t default_pad_token_id;  // the HF config class's default
};

enum class EncoderHead {
  kFeatures,          // last_hidden_state (+ pooler_output when the checkpoint has a pooler)
  kPoolerClassifier,  // BertForSequenceClassification: classifier(tanh pooler)
  kClsClassifier,     // RobertaClassificationHead: out_proj(tanh(dense(h[:, 0])))
};

struct EncoderArch {
  const EncoderFamily* family;
  EncoderHead head;
};

constexpr EncoderFamily kBert{"BERT", "bert.", PositionIds::kAbsolute, 0};
constexpr EncoderFamily kRoberta{"RoBERTa", "roberta.", PositionIds::kPaddingOffset, 1};

// ---- config ----
struct EncoderConfig {
  int64_t hidden = 0, heads = 0, layers = 0, vocab = 0, positions = 0, inner = 0, types = 0, pad = 0;
  float epsilon = 1e-12f;
  // Classification heads.
  int64_t num_labels = 0;
  std::string problem_type;  // "" (unset), regression, single_label_classification, multi_label_classification
  nlohmann::json id2label;   // {"0": "LABEL_0", ...} as config.json has it, or null
};

absl::Status BadField(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " ", what));
}

// HF's PretrainedConfig: num_labels = len(id2label) when id2label is given, else num_labels (default 2).
absl::Status ReadLabels(const nlohmann::json& c, EncoderConfig* b) {
  const auto id2label = c.find("id2label");
  const bool has_map = id2label != c.end() && !id2label->is_null();
  if (has_map) {
    if (!id2label->is_object() || id2label->empty()) {
      return BadField("id2label", "must be a non-empty object {\"0\": \"label\", ...}");
    }
    for (int64_t i = 0; i < static_cast<int64_t>(id2label->size()); ++i) {
      const auto it = id2label->find(std::to_string(i));
      if (it == id2label->end() || !it->is_string()) {
        return BadField("id2label", absl::StrCat("must name every label 0..", id2label->size() - 1,
                                                 " with a string; \"", i, "\" is missing"));
      }
    }
    b->id2label = *id2label;
  }
  const int64_t default_labels = has_map ? static_cast<int64_t>(id2label->size()) : 2;
  QEFF_ASSIGN_OR_RETURN(b->num_labels, ConfigInt(c, "num_labels", 1, 1 << 16, &default_labels));
  if (has_map && b->num_labels != static_cast<int64_t>(id2label->size())) {
    return BadField("num_labels", absl::StrCat("= ", b->num_labels, " but id2label has ", id2label->size(),
                                               " labels; make them agree"));
  }
  QEFF_ASSIGN_OR_RETURN(b->problem_type, ConfigString(c, "problem_type", ""));
  if (!b->problem_type.empty() && b->problem_type != "regression" &&
      b->problem_type != "single_label_classification" && b->problem_type != "multi_label_classification") {
    return BadField("problem_type", absl::StrCat("\"", b->problem_type,
                                                 "\" is not one of regression, single_label_classification, "
                                                 "multi_label_classification"));
  }
  return absl::OkStatus();
}

absl::StatusOr<EncoderConfig> ReadConfig(const nlohmann::json& c, const EncoderArch& arch) {
  const EncoderFamily& f = *arch.family;
  EncoderConfig b;
  QEFF_ASSIGN_OR_RETURN(b.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(b.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(b.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(b.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(b.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 20));
  QEFF_ASSIGN_OR_RETURN(b.inner, ConfigInt(c, "intermediate_size", 1, 1 << 18));
  const int64_t default_types = 2;
  QEFF_ASSIGN_OR_RETURN(b.types, ConfigInt(c, "type_vocab_size", 1, 1 << 10, &default_types));
  QEFF_ASSIGN_OR_RETURN(b.pad, ConfigInt(c, "pad_token_id", 0, b.vocab - 1, &f.default_pad_token_id));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_eps", 0.0, 1.0, 1e-12));
  b.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(std::string act, ConfigString(c, "hidden_act", "gelu"));
  QEFF_ASSIGN_OR_RETURN(std::string pos_type, ConfigString(c, "position_embedding_type", "absolute"));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(b.hidden, b.heads));
  if (act != "gelu") {
    return absl::UnimplementedError(absl::StrCat(f.name, " hidden_act \"", act, "\" is not supported (gelu)"));
  }
  if (pos_type != "absolute") {
    return absl::UnimplementedError(
        absl::StrCat(f.name, " position_embedding_type \"", pos_type, "\" is not supported (absolute)"));
  }
  // RoBERTa's first real position is padding_idx + 1, which must be in the table.
  if (f.positions == PositionIds::kPaddingOffset && b.pad + 1 >= b.positions) {
    return BadField("max_position_embeddings",
                    absl::StrCat("= ", b.positions, " leaves no position for a token: ", f.name,
                                 " positions start at pad_token_id + 1 = ", b.pad + 1));
  }
  if (arch.head != EncoderHead::kFeatures) QEFF_RETURN_IF_ERROR(ReadLabels(c, &b));
  return b;
}

// ---- graph pieces ----
// HF create_position_ids_from_input_ids: mask = ids != pad; (cumsum(mask) * mask) + pad, [B,S].
// The running count is a masked sum over a lower-triangular [S,S] table built from the input's
// own length (the compiler folds it), so no CumSum op is needed.
std::string PaddingOffsetPositions(GraphBuilder& g, const std::string& seq, int64_t pad) {
  std::string real = g.Node("Not", {g.Node("Equal", {"input_ids", g.ScalarI64(pad)}, {}, "is_pad")}, {}, "is_real");
  std::string realf = g.Node("Cast", {real}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "realf");
  std::string r = g.Node("Range", {g.ScalarI64(0), seq, g.ScalarI64(1)}, {}, "pos_range");
  std::string rows = g.Node("Unsqueeze", {r, g.VectorI64({1})}, {}, "pos_rows");  // i, [S,1]
  std::string cols = g.Node("Unsqueeze", {r, g.VectorI64({0})}, {}, "pos_cols");  // j, [1,S]
  std::string lower = g.Node("Cast", {g.Node("LessOrEqual", {cols, rows}, {}, "j_le_i")},
                             {AttrInt("to", onnx::TensorProto::FLOAT)}, "lower");  // [S,S]: j <= i
  std::string per = g.Node("Mul", {g.Node("Unsqueeze", {realf, g.VectorI64({1})}, {}, "real_b1s"), lower}, {},
                           "real_upto");                                           // [B,S(i),S(j)]
  std::string count = g.Node("ReduceSum", {per, g.VectorI64({2})}, {AttrInt("keepdims", 0)}, "real_count");
  count = g.Node("Mul", {count, realf}, {}, "real_count_masked");
  std::string ids = g.Node("Cast", {count}, {AttrInt("to", onnx::TensorProto::INT64)}, "count_i64");
  return g.Node("Add", {ids, g.ScalarI64(pad)}, {}, "position_ids");
}

// x·Wᵀ + b with <name>.weight [out,in] and <name>.bias [out], loaded and applied.
absl::StatusOr<std::string> Dense(GraphBuilder& g, const WeightLoader& w, const std::string& name,
                                  const std::string& x, int64_t out, int64_t in) {
  QEFF_ASSIGN_OR_RETURN(std::string weight, w.Lin(name + ".weight", out, in));
  QEFF_ASSIGN_OR_RETURN(std::string bias, w.Vec(name + ".bias", out));
  return Linear(g, x, weight, bias);
}

absl::Status BuildEncoder(const EncoderArch& arch, BuildContext& ctx, ExportSummary* summary) {
  const EncoderFamily& f = *arch.family;
  QEFF_ASSIGN_OR_RETURN(EncoderConfig c, ReadConfig(ctx.folder.config(), arch));
  GraphBuilder& g = ctx.graph;
  const hf::ModelFolder& folder = ctx.folder;
  const int64_t H = c.hidden, hd = c.hidden / c.heads;
  // Base models usually have no prefix; task models nest the encoder under "bert." / "roberta.".
  QEFF_ASSIGN_OR_RETURN(std::string p,
                        DetectWeightPrefix(folder, f.base_prefix, "embeddings.word_embeddings.weight"));
  const WeightLoader w{g, folder, p};
  const WeightLoader head_w{g, folder, ""};  // classifier.* sit at the top level

  g.Input("input_ids", onnx::TensorProto::INT64, {"batch_size", "seq_len"});
  g.Input("attention_mask", onnx::TensorProto::INT64, {"batch_size", "seq_len"});
  const bool token_types = c.types > 1;
  if (token_types) g.Input("token_type_ids", onnx::TensorProto::INT64, {"batch_size", "seq_len"});
  ctx.progress("export", "embeddings", 0, c.layers);

  QEFF_ASSIGN_OR_RETURN(std::string word, w.Tensor("embeddings.word_embeddings.weight", {c.vocab, H}));
  QEFF_ASSIGN_OR_RETURN(std::string pos_table, w.Tensor("embeddings.position_embeddings.weight", {c.positions, H}));
  QEFF_ASSIGN_OR_RETURN(std::string types, w.Tensor("embeddings.token_type_embeddings.weight", {c.types, H}));
  QEFF_ASSIGN_OR_RETURN(LayerNormWeights emb_ln, LoadLayerNorm(w, "embeddings.LayerNorm", H));

  // Everything from the input's own shape, so one graph serves every seq_len.
  std::string seq = g.Node("Gather", {g.Node("Shape", {"input_ids"}, {}, "ids_shape"), g.ScalarI64(1)},
                           {AttrInt("axis", 0)}, "seq_len");
  std::string positions = f.positions == PositionIds::kAbsolute
                              ? g.Node("Range", {g.ScalarI64(0), seq, g.ScalarI64(1)}, {}, "positions")
                              : PaddingOffsetPositions(g, seq, c.pad);
  // HF order: (word + token type) + position.
  std::string h = g.Node("Gather", {word, "input_ids"}, {AttrInt("axis", 0)}, "word_emb");
  std::string type_ids = token_types ? std::string("token_type_ids") : g.ScalarI64(0);
  h = g.Node("Add", {h, g.Node("Gather", {types, type_ids}, {AttrInt("axis", 0)}, "type_emb")}, {}, "embed");
  h = g.Node("Add", {h, g.Node("Gather", {pos_table, positions}, {AttrInt("axis", 0)}, "pos_emb")}, {}, "embed");
  h = LayerNorm(g, h, emb_ln, c.epsilon);

  // HF's extended mask: (1 - mask) * float32 lowest added to the scores, [B,1,1,S].
  std::string maskf = g.Node("Cast", {"attention_mask"}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "maskf");
  std::string inv = g.Node("Sub", {g.ScalarF32(1.0f), maskf}, {}, "inv_mask");
  std::string bias = g.Node("Mul", {inv, g.ScalarF32(std::numeric_limits<float>::lowest())}, {}, "mask_bias");
  bias = g.Node("Unsqueeze", {bias, g.VectorI64({1, 2})}, {}, "mask_bias4");
  const std::string scale = g.ScalarF32(std::sqrt(static_cast<float>(hd)));

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("encoder.layer.", i, ".");
    QEFF_ASSIGN_OR_RETURN(std::string q, Dense(g, w, l + "attention.self.query", h, H, H));
    QEFF_ASSIGN_OR_RETURN(std::string k, Dense(g, w, l + "attention.self.key", h, H, H));
    QEFF_ASSIGN_OR_RETURN(std::string v, Dense(g, w, l + "attention.self.value", h, H, H));
    q = SplitHeads(g, q, c.heads, hd);
    k = SplitHeads(g, k, c.heads, hd);
    v = SplitHeads(g, v, c.heads, hd);
    std::string kt = g.Node("Transpose", {k}, {AttrInts("perm", {0, 1, 3, 2})}, "k_t");
    std::string scores = g.Node("Div", {g.Node("MatMul", {q, kt}, {}, "qk"), scale}, {}, "scores");
    scores = g.Node("Add", {scores, bias}, {}, "masked_scores");
    std::string probs = g.Node("Softmax", {scores}, {AttrInt("axis", -1)}, "probs");
    std::string attn = MergeHeads(g, g.Node("MatMul", {probs, v}, {}, "attn"), H);
    QEFF_ASSIGN_OR_RETURN(attn, Dense(g, w, l + "attention.output.dense", attn, H, H));
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln1, LoadLayerNorm(w, l + "attention.output.LayerNorm", H));
    h = LayerNorm(g, g.Node("Add", {attn, h}, {}, "attn_res"), ln1, c.epsilon);
    QEFF_ASSIGN_OR_RETURN(std::string ff, Dense(g, w, l + "intermediate.dense", h, c.inner, H));
    QEFF_ASSIGN_OR_RETURN(ff, Dense(g, w, l + "output.dense", GeluErf(g, ff), H, c.inner));
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln2, LoadLayerNorm(w, l + "output.LayerNorm", H));
    h = LayerNorm(g, g.Node("Add", {ff, h}, {}, "ff_res"), ln2, c.epsilon);
    ReportLayer(ctx, i, c.layers);
  }

  auto first = [&] { return g.Node("Gather", {h, g.ScalarI64(0)}, {AttrInt("axis", 1)}, "cls_hidden"); };  // [B,H]
  nlohmann::json extra = {{"hidden_size", H},
                          {"num_heads", c.heads},
                          {"max_positions", c.positions},
                          {"vocab_size", c.vocab},
                          {"type_vocab_size", c.types},
                          {"pad_token_id", c.pad},
                          {"position_ids", f.positions == PositionIds::kAbsolute ? "absolute" : "padding_offset"}};
  if (arch.head == EncoderHead::kFeatures) {
    g.NodeNamed("Identity", {h}, {"last_hidden_state"});
    g.Output("last_hidden_state", onnx::TensorProto::FLOAT, {"batch_size", "seq_len", H});
    // The pooler is optional for RobertaModel-style checkpoints (add_pooling_layer=False).
    const bool pooler = folder.HasTensor(p + "pooler.dense.weight");
    if (pooler) {
      QEFF_ASSIGN_OR_RETURN(std::string pooled, Dense(g, w, "pooler.dense", first(), H, H));
      g.NodeNamed("Tanh", {pooled}, {"pooler_output"});
      g.Output("pooler_output", onnx::TensorProto::FLOAT, {"batch_size", H});
    }
    extra["task"] = "feature-extraction";
    extra["pooler"] = pooler;
  } else {
    std::string logits;
    if (arch.head == EncoderHead::kPoolerClassifier) {
      QEFF_ASSIGN_OR_RETURN(std::string pooled, Dense(g, w, "pooler.dense", first(), H, H));
      pooled = g.Node("Tanh", {pooled}, {}, "pooler_output");
      QEFF_ASSIGN_OR_RETURN(logits, Dense(g, head_w, "classifier", pooled, c.num_labels, H));
    } else {
      QEFF_ASSIGN_OR_RETURN(std::string x, Dense(g, head_w, "classifier.dense", first(), H, H));
      x = g.Node("Tanh", {x}, {}, "head_tanh");
      QEFF_ASSIGN_OR_RETURN(logits, Dense(g, head_w, "classifier.out_proj", x, c.num_labels, H));
    }
    g.NodeNamed("Identity", {logits}, {"logits"});
    g.Output("logits", onnx::TensorProto::FLOAT, {"batch_size", c.num_labels});
    extra["task"] = "text-classification";
    extra["num_labels"] = c.num_labels;
    extra["problem_type"] = c.problem_type;
    if (!c.id2label.is_null()) extra["id2label"] = c.id2label;
  }
  summary->num_layers = static_cast<int>(c.layers);
  summary->manifest_extra = std::move(extra);
  return absl::OkStatus();
}

void RegisterEncoder(ModelRegistry& registry, const std::string& architecture, EncoderArch arch) {
  registry.Register(architecture,
                    [arch](BuildContext& ctx, ExportSummary* summary) { return BuildEncoder(arch, ctx, summary); });
}

}  // namespace

void RegisterBert(ModelRegistry& registry) {
  RegisterEncoder(registry, "BertModel", {&kBert, EncoderHead::kFeatures});
  RegisterEncoder(registry, "BertForSequenceClassification", {&kBert, EncoderHead::kPoolerClassifier});
  RegisterEncoder(registry, "RobertaModel", {&kRoberta, EncoderHead::kFeatures});
  RegisterEncoder(registry, "XLMRobertaModel", {&kRoberta, EncoderHead::kFeatures});
  RegisterEncoder(registry, "RobertaForSequenceClassification", {&kRoberta, EncoderHead::kClsClassifier});
  RegisterEncoder(registry, "XLMRobertaForSequenceClassification", {&kRoberta, EncoderHead::kClsClassifier});
}

}  // namespace qeff::exporter
