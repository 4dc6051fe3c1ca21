// BERT-family encoders end to end against HF transformers' outputs, for every encoder fixture:
//
// - feature extraction (bert, roberta, xlm_roberta): the exported ONNX in onnxruntime and the cpu
//   qpc through the runner's Embed give last_hidden_state (real positions), pooler_output and the
//   mean / normalized-mean / CLS embeddings within 1e-4, on the fixture's right-padded batch;
// - sequence classification (bert_cross_encoder, xlm_roberta_reranker): logits and scores
//   (sigmoid for one label) within 1e-4 with the fixture's token_type_ids, in onnxruntime and
//   through Classify, with the batch split over a smaller compiled batch size; and the same pairs
//   as texts through a tokenizer with the model's pair template.
//
// Shapes (batch, lengths, hidden size, labels) come from the fixture's own tensors.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/hf/model_folder.h"
#include "common/hf/safetensors.h"
#include "common/tokenizer/tokenizer.h"
#include "device/session.h"
#include "services/compiler/compiler.h"
#include "services/exporter/exporter.h"
#include "services/runner/classifier.h"
#include "services/runner/embedder.h"
#include "tests/integration/fixture_tokenizer.h"

namespace qeff {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kFixtures = fs::path(QEFF_SOURCE_DIR) / "tests/fixtures/hf";

json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// One encoder fixture: its padded batch (ids, mask, token types) and HF's outputs, exported once.
class EncoderFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = kFixtures / GetParam();
    work_ = fs::temp_directory_path() / ("qeff-enc-" + GetParam() + "-" + std::to_string(::getpid()));
    fs::remove_all(work_);
    fs::create_directories(work_ / "export");
    config_ = ReadJson(dir_ / "config.json");
    auto o = hf::SafetensorsFile::Open(dir_ / "outputs.safetensors");
    ASSERT_TRUE(o.ok()) << o.status();
    outputs_ = std::make_unique<hf::SafetensorsFile>(std::move(*o));
    auto folder = hf::ModelFolder::Open(dir_);
    ASSERT_TRUE(folder.ok()) << folder.status();
    auto e = exporter::ExportModel(*folder, {}, work_ / "export", [](auto&&...) {});
    ASSERT_TRUE(e.ok()) << e.status();
    manifest_ = e->manifest_extra;
    // Every HF parameter is in the graph (the pooler and the classification head included).
    EXPECT_EQ(e->num_parameters, ReadJson(dir_ / "reference.json")["model"]["num_parameters"].get<int64_t>());
    const hf::TensorView* ids = outputs_->Find("input_ids");
    const hf::TensorView* mask = outputs_->Find("attention_mask");
    const hf::TensorView* types = outputs_->Find("token_type_ids");
    ASSERT_TRUE(ids && mask && types);
    ASSERT_EQ(ids->shape.size(), 2u);
    B_ = ids->shape[0];
    T_ = ids->shape[1];
    ids_.assign(reinterpret_cast<const int64_t*>(ids->data), reinterpret_cast<const int64_t*>(ids->data) + B_ * T_);
    mask_.assign(reinterpret_cast<const int64_t*>(mask->data), reinterpret_cast<const int64_t*>(mask->data) + B_ * T_);
    types_.assign(reinterpret_cast<const int64_t*>(types->data),
                  reinterpret_cast<const int64_t*>(types->data) + B_ * T_);
    for (int64_t b = 0; b < B_; ++b) {
      runner::EncoderInput in;
      for (int64_t t = 0; t < T_ && mask_[b * T_ + t] != 0; ++t) {
        in.ids.push_back(static_cast<int32_t>(ids_[b * T_ + t]));
        in.token_type_ids.push_back(static_cast<int32_t>(types_[b * T_ + t]));
      }
      inputs_.push_back(std::move(in));
    }
  }
  void TearDown() override { fs::remove_all(work_); }

  const hf::TensorView& Ref(const std::string& name) {
    const hf::TensorView* t = outputs_->Find(name);
    EXPECT_NE(t, nullptr) << name;
    static const hf::TensorView empty;
    return t ? *t : empty;
  }
  const float* RefData(const std::string& name) { return reinterpret_cast<const float*>(Ref(name).data); }
  bool TakesTokenTypes() const { return config_.value("type_vocab_size", 2) > 1; }

  // The fixture's padded batch through onnxruntime (tests/node/run_model.js); every output.
  json RunOnnxruntime() {
    json feeds;
    feeds["input_ids"] = {{"type", "int64"}, {"dims", {B_, T_}}, {"data", ids_}};
    feeds["attention_mask"] = {{"type", "int64"}, {"dims", {B_, T_}}, {"data", mask_}};
    if (TakesTokenTypes()) feeds["token_type_ids"] = {{"type", "int64"}, {"dims", {B_, T_}}, {"data", types_}};
    std::ofstream(work_ / "inputs.json") << feeds.dump();
    const std::string cmd = "cd " + (fs::path(QEFF_SOURCE_DIR) / "tests/node").string() + " && node run_model.js " +
                            (work_ / "export/model.onnx").string() + " " + (work_ / "inputs.json").string();
    FILE* p = ::popen(cmd.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (p == nullptr) return json();
    std::string out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << out;
    return json::parse(out, nullptr, false);
  }

  // A cpu qpc of the export with this batch size and seq_len, loaded.
  std::unique_ptr<device::Session> Compile(int batch, int seq) {
    const fs::path qpc = work_ / ("qpc-" + std::to_string(batch) + "-" + std::to_string(seq));
    fs::create_directories(qpc);
    compiler::CompileOptions opt;
    opt.batch_size = batch;
    opt.prefill_seq_len = seq;
    auto c = compiler::CompileModel(work_ / "export", opt, qpc, [](auto&&...) {});
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    EXPECT_EQ(c->specializations.size(), 1u);
    EXPECT_EQ(c->specializations[0].name, "Embedding");
    auto session = device::Session::Load(qpc, 2);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? std::move(*session) : nullptr;
  }

  fs::path dir_, work_;
  json config_, manifest_;
  std::unique_ptr<hf::SafetensorsFile> outputs_;
  int64_t B_ = 0, T_ = 0;
  std::vector<int64_t> ids_, mask_, types_;
  std::vector<runner::EncoderInput> inputs_;  // the real tokens of each row
};

// ---- feature extraction ----
using EmbeddingTest = EncoderFixture;

TEST_P(EmbeddingTest, OnnxruntimeMatchesTransformers) {
  const json r = RunOnnxruntime();
  ASSERT_TRUE(r.is_object());
  const auto got = r["last_hidden_state"]["data"].get<std::vector<float>>();
  const hf::TensorView& want_view = Ref("last_hidden_state");
  ASSERT_EQ(want_view.shape.size(), 3u);
  const int64_t H = want_view.shape[2];
  ASSERT_EQ(got.size(), static_cast<size_t>(B_ * T_ * H));
  const float* want = RefData("last_hidden_state");
  double worst = 0;
  for (int64_t b = 0; b < B_; ++b)
    for (size_t t = 0; t < inputs_[b].ids.size(); ++t)
      for (int64_t d = 0; d < H; ++d) {
        const size_t i = (b * T_ + t) * H + d;
        worst = std::max(worst, static_cast<double>(std::fabs(got[i] - want[i])));
      }
  EXPECT_LE(worst, 1e-4);
  const auto pooled = r["pooler_output"]["data"].get<std::vector<float>>();
  const float* want_pool = RefData("pooler_output");
  ASSERT_EQ(pooled.size(), static_cast<size_t>(B_ * H));
  for (int64_t i = 0; i < B_ * H; ++i) EXPECT_NEAR(pooled[i], want_pool[i], 1e-4) << i;
  std::printf("%s onnxruntime: max |last_hidden_state - HF| (real positions) = %.3g\n", GetParam().c_str(), worst);
}

TEST_P(EmbeddingTest, CpuQpcEmbeddingsMatchTransformers) {
  auto session = Compile(static_cast<int>(B_), static_cast<int>(T_));
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(runner::IsEncoder(*session));
  const runner::EncoderInfo info = runner::DescribeEncoder(*session, config_);
  EXPECT_FALSE(info.classifier);
  EXPECT_EQ(info.token_type_input, TakesTokenTypes());
  EXPECT_EQ(info.pad_token_id, config_.value("pad_token_id", 0));
  const int64_t H = Ref("mean_pooled").shape.back();
  struct Case {
    const char* pooling;
    bool normalize;
    const char* tensor;
  } cases[] = {{"mean", false, "mean_pooled"},
               {"mean", true, "mean_pooled_normalized"},
               {"cls", false, "cls_embedding"},
               {"pooler", false, "pooler_output"}};
  for (const auto& k : cases) {
    runner::EmbedOptions o;
    o.pooling = k.pooling;
    o.normalize = k.normalize;
    auto e = runner::Embed(*session, info, inputs_, o);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_EQ(e->size(), static_cast<size_t>(B_));
    const float* want = RefData(k.tensor);
    double worst = 0;
    for (int64_t b = 0; b < B_; ++b) {
      ASSERT_EQ((*e)[b].size(), static_cast<size_t>(H));
      for (int64_t d = 0; d < H; ++d) worst = std::max(worst, static_cast<double>(std::fabs((*e)[b][d] - want[b * H + d])));
    }
    EXPECT_LE(worst, 1e-4) << k.tensor;
    std::printf("%s cpu qpc %s: max |diff| = %.3g\n", GetParam().c_str(), k.tensor, worst);
  }
  // One sequence at a time (the rest of the batch is padding) gives the same embeddings.
  runner::EmbedOptions mean;
  auto single = runner::Embed(*session, info, {inputs_.back()}, mean);
  ASSERT_TRUE(single.ok()) << single.status();
  const float* want = RefData("mean_pooled");
  for (int64_t d = 0; d < H; ++d) EXPECT_NEAR((*single)[0][d], want[(B_ - 1) * H + d], 1e-4);
  // More inputs than the compiled batch run in several passes, in order.
  std::vector<runner::EncoderInput> twice = inputs_;
  twice.insert(twice.end(), inputs_.begin(), inputs_.end());
  auto more = runner::Embed(*session, info, twice, mean);
  ASSERT_TRUE(more.ok()) << more.status();
  ASSERT_EQ(more->size(), twice.size());
  for (size_t i = 0; i < twice.size(); ++i)
    for (int64_t d = 0; d < H; ++d) EXPECT_NEAR((*more)[i][d], want[(i % B_) * H + d], 1e-4);
  // Bad input: too long (naming both lengths), empty, token types of the wrong length or out of
  // range, unknown pooling; a classifier call on an embedding model.
  auto too_long = runner::Embed(*session, info, {{std::vector<int32_t>(T_ + 1, 5), {}}}, mean);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find(std::to_string(T_ + 1) + " tokens"), std::string::npos) << too_long.status();
  EXPECT_NE(too_long.status().message().find("seq_len is " + std::to_string(T_)), std::string::npos) << too_long.status();
  EXPECT_EQ(runner::Embed(*session, info, {{}}, mean).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner::Embed(*session, info, {{{5, 6}, {0}}}, mean).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner::Embed(*session, info, {{{5, 6}, {0, static_cast<int32_t>(info.type_vocab_size)}}}, mean)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  runner::EmbedOptions bad;
  bad.pooling = "median";
  EXPECT_EQ(runner::Embed(*session, info, inputs_, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner::Classify(*session, info, inputs_).status().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Encoders, EmbeddingTest, ::testing::Values("bert", "roberta", "xlm_roberta"));

// ---- sequence classification (cross-encoder rerankers) ----
using ClassifierTest = EncoderFixture;

TEST_P(ClassifierTest, OnnxruntimeMatchesTransformers) {
  EXPECT_EQ(manifest_["task"], "text-classification");
  const json r = RunOnnxruntime();
  ASSERT_TRUE(r.is_object());
  const hf::TensorView& want = Ref("logits");
  ASSERT_EQ(want.shape.size(), 2u);
  EXPECT_EQ(r["logits"]["dims"], json(want.shape));
  const auto got = r["logits"]["data"].get<std::vector<float>>();
  ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel());
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(got[i], RefData("logits")[i], 1e-4) << i;
}

TEST_P(ClassifierTest, CpuQpcLogitsAndScoresMatchTransformers) {
  // A compiled batch smaller than the fixture's, so Classify splits it.
  const int batch = B_ > 1 ? static_cast<int>(B_ - 1) : 1;
  auto session = Compile(batch, static_cast<int>(T_) + 3);
  ASSERT_NE(session, nullptr);
  const runner::EncoderInfo info = runner::DescribeEncoder(*session, config_);
  const hf::TensorView& want = Ref("logits");
  const int64_t L = want.shape[1];
  ASSERT_TRUE(info.classifier);
  EXPECT_EQ(info.num_labels, L);
  EXPECT_EQ(info.token_type_input, TakesTokenTypes());
  ASSERT_EQ(info.labels.size(), static_cast<size_t>(L));
  EXPECT_EQ(info.labels[0], config_["id2label"]["0"].get<std::string>());
  auto c = runner::Classify(*session, info, inputs_);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->size(), static_cast<size_t>(B_));
  double worst_logit = 0, worst_score = 0;
  for (int64_t b = 0; b < B_; ++b) {
    ASSERT_EQ((*c)[b].logits.size(), static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) {
      worst_logit = std::max(worst_logit, std::fabs(double((*c)[b].logits[l]) - RefData("logits")[b * L + l]));
      worst_score = std::max(worst_score, std::fabs(double((*c)[b].scores[l]) - RefData("scores")[b * L + l]));
    }
  }
  EXPECT_LE(worst_logit, 1e-4);
  EXPECT_LE(worst_score, 1e-4);
  std::printf("%s cpu qpc: max |logits - HF| = %.3g, max |scores - HF| = %.3g\n", GetParam().c_str(), worst_logit,
              worst_score);
  // Token types matter where the model has them: all-zero types give other logits.
  if (info.token_type_input) {
    std::vector<runner::EncoderInput> zeros = inputs_;
    for (auto& in : zeros) in.token_type_ids.clear();
    auto z = runner::Classify(*session, info, zeros);
    ASSERT_TRUE(z.ok()) << z.status();
    double moved = 0;
    for (int64_t b = 0; b < B_; ++b) moved = std::max(moved, std::fabs(double((*z)[b].logits[0]) - (*c)[b].logits[0]));
    EXPECT_GT(moved, 1e-3) << "token_type_ids were ignored";
  } else {
    std::vector<runner::EncoderInput> typed = {{inputs_[0].ids, std::vector<int32_t>(inputs_[0].ids.size(), 1)}};
    EXPECT_EQ(runner::Classify(*session, info, typed).status().code(), absl::StatusCode::kInvalidArgument);
  }
  // RoBERTa's position table ends before the compiled seq_len: a clear error, not a bad Gather.
  if (config_["architectures"][0].get<std::string>().find("Roberta") != std::string::npos) {
    json small = config_;
    small["max_position_embeddings"] = T_ + 1 + config_.value("pad_token_id", 1);  // room for T_ tokens
    const runner::EncoderInfo limited = runner::DescribeEncoder(*session, small);
    EXPECT_EQ(limited.max_tokens, T_);
    auto s = runner::Classify(*session, limited, {{std::vector<int32_t>(T_ + 1, inputs_[0].ids[1]), {}}});
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find("positions for " + std::to_string(T_)), std::string::npos) << s.status();
  }
  // An embedding call on a classifier says what to use instead.
  auto e = runner::Embed(*session, info, inputs_, {});
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(e.status().message().find("Classify"), std::string::npos) << e.status();
  // Text without a tokenizer: FAILED_PRECONDITION telling to send ids.
  runner::ClassifyInput text;
  text.is_text = true;
  text.text = "a";
  text.text_pair = "b";
  EXPECT_EQ(runner::TokenizeInputs(nullptr, info, {text}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// The text path: (query, document) texts through a tokenizer with the model's pair template
// give the fixture's ids and token types, and HF's logits.
TEST_P(ClassifierTest, TextPairsThroughTheTokenizerMatchTransformers) {
  const json ref = ReadJson(dir_ / "reference.json");
  auto tok = tokenizer::Tokenizer::FromJson(testing::FixtureTokenizer(config_, ref).dump());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<runner::ClassifyInput> pairs;
  for (const auto& in : ref["inputs"]) {
    runner::ClassifyInput c;
    c.is_text = true;
    c.text = testing::FixtureText(in["query_ids"].get<std::vector<int64_t>>());
    c.text_pair = testing::FixtureText(in["document_ids"].get<std::vector<int64_t>>());
    pairs.push_back(std::move(c));
  }
  auto session = Compile(static_cast<int>(B_), static_cast<int>(T_));
  ASSERT_NE(session, nullptr);
  const runner::EncoderInfo info = runner::DescribeEncoder(*session, config_);
  auto enc = runner::TokenizeInputs(tok->get(), info, pairs);
  ASSERT_TRUE(enc.ok()) << enc.status();
  ASSERT_EQ(enc->size(), inputs_.size());
  for (size_t b = 0; b < inputs_.size(); ++b) {
    EXPECT_EQ((*enc)[b].ids, inputs_[b].ids) << b;
    if (info.token_type_input) {
      EXPECT_EQ((*enc)[b].token_type_ids, inputs_[b].token_type_ids) << b;
    } else {
      EXPECT_TRUE((*enc)[b].token_type_ids.empty()) << b;
    }
  }
  auto c = runner::Classify(*session, info, *enc);
  ASSERT_TRUE(c.ok()) << c.status();
  const int64_t L = Ref("logits").shape[1];
  for (int64_t b = 0; b < B_; ++b)
    for (int64_t l = 0; l < L; ++l) EXPECT_NEAR((*c)[b].logits[l], RefData("logits")[b * L + l], 1e-4) << b;
}

INSTANTIATE_TEST_SUITE_P(Rerankers, ClassifierTest, ::testing::Values("bert_cross_encoder", "xlm_roberta_reranker"));

// Config fields are validated with errors that name the field (or the weight) at fault.
TEST(EncoderConfig, BadFieldsGetClearErrors) {
  const fs::path work = fs::temp_directory_path() / ("qeff-enc-config-" + std::to_string(::getpid()));
  struct Case {
    const char* fixture;
    const char* patch;  // merged into config.json
    absl::StatusCode code;
    const char* says;
  } cases[] = {
      {"bert_cross_encoder", R"({"problem_type": "ranking"})", absl::StatusCode::kInvalidArgument, "problem_type"},
      {"bert_cross_encoder", R"({"num_labels": 3})", absl::StatusCode::kInvalidArgument, "id2label"},
      {"bert_cross_encoder", R"({"id2label": {"0": "no", "1": "yes"}, "label2id": null})",
       absl::StatusCode::kInvalidArgument, "classifier.weight"},
      {"bert_cross_encoder", R"({"id2label": {"0": null, "1": "yes"}})", absl::StatusCode::kInvalidArgument, "id2label"},
      {"xlm_roberta_reranker", R"({"hidden_act": "swish"})", absl::StatusCode::kUnimplemented, "hidden_act"},
      {"roberta", R"({"position_embedding_type": "relative_key"})", absl::StatusCode::kUnimplemented,
       "position_embedding_type"},
      {"roberta", R"({"max_position_embeddings": 2})", absl::StatusCode::kInvalidArgument, "max_position_embeddings"},
      {"xlm_roberta", R"({"pad_token_id": -1})", absl::StatusCode::kInvalidArgument, "pad_token_id"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(std::string(k.fixture) + " " + k.patch);
    fs::remove_all(work);
    fs::create_directories(work / "model");
    for (const char* f : {"model.safetensors"}) fs::copy_file(kFixtures / k.fixture / f, work / "model" / f);
    json config = ReadJson(kFixtures / k.fixture / "config.json");
    config.merge_patch(json::parse(k.patch));
    std::ofstream(work / "model/config.json") << config.dump();
    auto folder = hf::ModelFolder::Open(work / "model");
    ASSERT_TRUE(folder.ok()) << folder.status();
    auto e = exporter::ExportModel(*folder, {}, work / "export", [](auto&&...) {});
    EXPECT_EQ(e.status().code(), k.code) << e.status();
    EXPECT_NE(e.status().message().find(k.says), std::string::npos) << e.status();
  }
  fs::remove_all(work);
}

TEST(ClassifierScores, SigmoidForOneLabelSoftmaxOtherwise) {
  const auto one = runner::ScoresFromLogits({0.0f});
  EXPECT_FLOAT_EQ(one[0], 0.5f);
  EXPECT_NEAR(runner::ScoresFromLogits({2.0f})[0], 1.0 / (1.0 + std::exp(-2.0)), 1e-7);
  const auto two = runner::ScoresFromLogits({0.0f, std::log(3.0f)});
  EXPECT_NEAR(two[0], 0.25, 1e-6);
  EXPECT_NEAR(two[1], 0.75, 1e-6);
  const auto big = runner::ScoresFromLogits({1000.0f, 1000.0f, -1000.0f});  // no overflow
  EXPECT_NEAR(big[0], 0.5, 1e-6);
  EXPECT_NEAR(big[2], 0.0, 1e-6);
}

}  // namespace
}  // namespace qeff
