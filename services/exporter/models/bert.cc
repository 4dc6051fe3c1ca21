// BertModel (sentence-transformers encoders such as all-MiniLM-L6-v2): absolute positions,
// token type 0, post-LN blocks with erf GELU, and the tanh pooler. Exported like QEfficient's
// QEFFAutoModel: inputs input_ids and attention_mask [batch_size, seq_len], outputs
// last_hidden_state [B,S,H] and pooler_output [B,H]; pooling (mean / cls / max) is the
// runner's job. No KV cache, so the compiler emits a single "Embedding" specialization.
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

struct BertConfig {
  int64_t hidden = 0, heads = 0, layers = 0, vocab = 0, positions = 0, inner = 0, types = 0;
  float epsilon = 1e-12f;
};

absl::StatusOr<BertConfig> ReadConfig(const nlohmann::json& c) {
  BertConfig b;
  QEFF_ASSIGN_OR_RETURN(b.hidden, ConfigInt(c, "hidden_size", 1, 1 << 16));
  QEFF_ASSIGN_OR_RETURN(b.heads, ConfigInt(c, "num_attention_heads", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(b.layers, ConfigInt(c, "num_hidden_layers", 1, 1024));
  QEFF_ASSIGN_OR_RETURN(b.vocab, ConfigInt(c, "vocab_size", 1, 1 << 22));
  QEFF_ASSIGN_OR_RETURN(b.positions, ConfigInt(c, "max_position_embeddings", 1, 1 << 20));
  QEFF_ASSIGN_OR_RETURN(b.inner, ConfigInt(c, "intermediate_size", 1, 1 << 18));
  const int64_t default_types = 2;
  QEFF_ASSIGN_OR_RETURN(b.types, ConfigInt(c, "type_vocab_size", 1, 1 << 10, &default_types));
  QEFF_ASSIGN_OR_RETURN(double eps, ConfigFloat(c, "layer_norm_eps", 0.0, 1.0, 1e-12));
  b.epsilon = static_cast<float>(eps);
  QEFF_ASSIGN_OR_RETURN(std::string act, ConfigString(c, "hidden_act", "gelu"));
  QEFF_ASSIGN_OR_RETURN(std::string pos_type, ConfigString(c, "position_embedding_type", "absolute"));
  QEFF_RETURN_IF_ERROR(CheckHeadsDivide(b.hidden, b.heads));
  if (act != "gelu") return absl::UnimplementedError(absl::StrCat("BERT hidden_act \"", act, "\" is not supported (gelu)"));
  if (pos_type != "absolute") {
    return absl::UnimplementedError(absl::StrCat("BERT position_embedding_type \"", pos_type, "\" is not supported"));
  }
  return b;
}

absl::Status BuildBert(BuildContext& ctx, ExportSummary* summary) {
  QEFF_ASSIGN_OR_RETURN(BertConfig c, ReadConfig(ctx.folder.config()));
  GraphBuilder& g = ctx.graph;
  const hf::ModelFolder& folder = ctx.folder;
  const int64_t H = c.hidden, hd = c.hidden / c.heads;
  // BertModel checkpoints have no prefix; BertFor* task models nest it under "bert.".
  QEFF_ASSIGN_OR_RETURN(std::string p,
                        DetectWeightPrefix(folder, "bert.", "embeddings.word_embeddings.weight"));
  const WeightLoader w{g, folder, p};

  g.Input("input_ids", onnx::TensorProto::INT64, {"batch_size", "seq_len"});
  g.Input("attention_mask", onnx::TensorProto::INT64, {"batch_size", "seq_len"});
  ctx.progress("export", "embeddings", 0, c.layers);

  QEFF_ASSIGN_OR_RETURN(std::string word, w.Tensor("embeddings.word_embeddings.weight", {c.vocab, H}));
  QEFF_ASSIGN_OR_RETURN(std::string pos_table, w.Tensor("embeddings.position_embeddings.weight", {c.positions, H}));
  QEFF_ASSIGN_OR_RETURN(std::string types, w.Tensor("embeddings.token_type_embeddings.weight", {c.types, H}));
  QEFF_ASSIGN_OR_RETURN(LayerNormWeights emb_ln, LoadLayerNorm(w, "embeddings.LayerNorm", H));

  // Positions 0..S-1 from the input's own shape, so one graph serves every seq_len.
  std::string seq = g.Node("Gather", {g.Node("Shape", {"input_ids"}, {}, "ids_shape"), g.ScalarI64(1)},
                           {AttrInt("axis", 0)}, "seq_len");
  std::string positions = g.Node("Range", {g.ScalarI64(0), seq, g.ScalarI64(1)}, {}, "positions");
  std::string h = g.Node("Gather", {word, "input_ids"}, {AttrInt("axis", 0)}, "word_emb");
  h = g.Node("Add", {h, g.Node("Gather", {pos_table, positions}, {AttrInt("axis", 0)}, "pos_emb")}, {}, "embed");
  // Token type 0 for every token (the exported interface, like QEfficient's, has no token types).
  h = g.Node("Add", {h, g.Node("Gather", {types, g.ScalarI64(0)}, {AttrInt("axis", 0)}, "type0_emb")}, {}, "embed");
  h = LayerNorm(g, h, emb_ln, c.epsilon);

  // HF's extended mask: (1 - mask) * float32 lowest added to the scores, [B,1,1,S].
  std::string maskf = g.Node("Cast", {"attention_mask"}, {AttrInt("to", onnx::TensorProto::FLOAT)}, "maskf");
  std::string inv = g.Node("Sub", {g.ScalarF32(1.0f), maskf}, {}, "inv_mask");
  std::string bias = g.Node("Mul", {inv, g.ScalarF32(std::numeric_limits<float>::lowest())}, {}, "mask_bias");
  bias = g.Node("Unsqueeze", {bias, g.VectorI64({1, 2})}, {}, "mask_bias4");
  const std::string scale = g.ScalarF32(std::sqrt(static_cast<float>(hd)));

  for (int i = 0; i < c.layers; ++i) {
    const std::string l = absl::StrCat("encoder.layer.", i, ".");
    QEFF_ASSIGN_OR_RETURN(std::string wq, w.Lin(l + "attention.self.query.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bq, w.Vec(l + "attention.self.query.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string wk, w.Lin(l + "attention.self.key.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bk, w.Vec(l + "attention.self.key.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string wv, w.Lin(l + "attention.self.value.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bv, w.Vec(l + "attention.self.value.bias", H));
    QEFF_ASSIGN_OR_RETURN(std::string wo, w.Lin(l + "attention.output.dense.weight", H, H));
    QEFF_ASSIGN_OR_RETURN(std::string bo, w.Vec(l + "attention.output.dense.bias", H));
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln1, LoadLayerNorm(w, l + "attention.output.LayerNorm", H));
    QEFF_ASSIGN_OR_RETURN(std::string wi, w.Lin(l + "intermediate.dense.weight", c.inner, H));
    QEFF_ASSIGN_OR_RETURN(std::string bi, w.Vec(l + "intermediate.dense.bias", c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string wout, w.Lin(l + "output.dense.weight", H, c.inner));
    QEFF_ASSIGN_OR_RETURN(std::string bout, w.Vec(l + "output.dense.bias", H));
    QEFF_ASSIGN_OR_RETURN(LayerNormWeights ln2, LoadLayerNorm(w, l + "output.LayerNorm", H));

    std::string q = SplitHeads(g, Linear(g, h, wq, bq), c.heads, hd);
    std::string k = SplitHeads(g, Linear(g, h, wk, bk), c.heads, hd);
    std::string v = SplitHeads(g, Linear(g, h, wv, bv), c.heads, hd);
    std::string kt = g.Node("Transpose", {k}, {AttrInts("perm", {0, 1, 3, 2})}, "k_t");
    std::string scores = g.Node("Div", {g.Node("MatMul", {q, kt}, {}, "qk"), scale}, {}, "scores");
    scores = g.Node("Add", {scores, bias}, {}, "masked_scores");
    std::string probs = g.Node("Softmax", {scores}, {AttrInt("axis", -1)}, "probs");
    std::string attn = MergeHeads(g, g.Node("MatMul", {probs, v}, {}, "attn"), H);
    attn = Linear(g, attn, wo, bo);
    h = LayerNorm(g, g.Node("Add", {attn, h}, {}, "attn_res"), ln1, c.epsilon);
    std::string ff = GeluErf(g, Linear(g, h, wi, bi));
    ff = Linear(g, ff, wout, bout);
    h = LayerNorm(g, g.Node("Add", {ff, h}, {}, "ff_res"), ln2, c.epsilon);
    ReportLayer(ctx, i, c.layers);
  }
  g.NodeNamed("Identity", {h}, {"last_hidden_state"});
  g.Output("last_hidden_state", onnx::TensorProto::FLOAT, {"batch_size", "seq_len", H});

  QEFF_ASSIGN_OR_RETURN(std::string wp, w.Lin("pooler.dense.weight", H, H));
  QEFF_ASSIGN_OR_RETURN(std::string bp, w.Vec("pooler.dense.bias", H));
  std::string first = g.Node("Gather", {h, g.ScalarI64(0)}, {AttrInt("axis", 1)}, "cls_hidden");
  g.NodeNamed("Tanh", {Linear(g, first, wp, bp)}, {"pooler_output"});
  g.Output("pooler_output", onnx::TensorProto::FLOAT, {"batch_size", H});

  summary->num_layers = static_cast<int>(c.layers);
  summary->manifest_extra = {{"task", "feature-extraction"},
                             {"hidden_size", H},
                             {"num_heads", c.heads},
                             {"max_positions", c.positions},
                             {"vocab_size", c.vocab}};
  return absl::OkStatus();
}

}  // namespace

void RegisterBert(ModelRegistry& registry) { registry.Register("BertModel", BuildBert); }

}  // namespace qeff::exporter
