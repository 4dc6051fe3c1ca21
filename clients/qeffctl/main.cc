// qeffctl: the command-line client of qeff.
//
//   qeffctl infer --model DIR|org/name --prompt "Hi" [--max-new-tokens N] [--json]
//   qeffctl infer --model DIR --full-batch-size 4 --prompts-file FILE [--json]   (continuous batching)
//   qeffctl embed --model DIR --text "..." [--text ...] [--pooling mean|cls|max|pooler] [--normalize]
//   qeffctl embed --model DIR --input-ids IDS [--token-type-ids IDS] [--input-ids ...]
//   qeffctl classify --model DIR --input-ids IDS [--token-type-ids IDS] [--input-ids ...] [--json]
//   qeffctl classify --model DIR --text "query" --text-pair "document" [--text ... --text-pair ...]
//   qeffctl export | compile | load | generate | list | unload | tokenize | cache ls|gc
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "clients/qeffctl/chat_template_command.h"
#include "clients/qeffctl/client.h"
#include "clients/qeffctl/prompt_batch.h"
#include "clients/qeffctl/tokenize_command.h"
#include "common/artifacts/store.h"

namespace {

struct Common {
  std::string server;
  std::string exporter, compiler, runner;  // per-service overrides of --server
  bool json = false;
  const std::string& ExporterAddr() const { return exporter.empty() ? server : exporter; }
  const std::string& CompilerAddr() const { return compiler.empty() ? server : compiler; }
  const std::string& RunnerAddr() const { return runner.empty() ? server : runner; }
};

struct CompileArgs {
  std::string target = "cpu";
  int batch_size = 1, prefill_seq_len = 32, ctx_len = 128, num_cores = 0, full_batch_size = 0;
  std::string weight_dtype = "fp32";
  std::string kv_cache_dtype = "fp32";
};

struct GenArgs {
  std::string prompt, input_ids, prompts_file;
  int max_new_tokens = 0;
  bool stop_at_eos = false;
  float temperature = 0, top_p = 1, repetition_penalty = 1;
  int top_k = 0;
  std::optional<uint64_t> seed;  // unset: the runner draws a fresh one (and reports it)
};

// Streams a --prompts-file keeps open at once (the runner queues what it cannot batch yet).
constexpr int kPromptsInFlight = 16;

int Fail(const absl::Status& s) {
  std::cerr << "error: " << s.message() << " [" << absl::StatusCodeToString(s.code()) << "]\n";
  return 1;
}

void AddCompileOptions(CLI::App* cmd, CompileArgs& a) {
  cmd->add_option("--target", a.target, "cpu | qaic | qnn")->capture_default_str();
  cmd->add_option("--batch-size", a.batch_size)->capture_default_str();
  cmd->add_option("--prefill-seq-len,--prompt-len", a.prefill_seq_len, "prefill chunk length")->capture_default_str();
  cmd->add_option("--ctx-len", a.ctx_len, "context length (KV cache rows)")->capture_default_str();
  cmd->add_option("--num-cores", a.num_cores, "device cores/threads (0 = all)")->capture_default_str();
  cmd->add_option("--weight-dtype", a.weight_dtype, "fp32 | bf16 | int8 | int4")->capture_default_str();
  cmd->add_option("--full-batch-size", a.full_batch_size, "continuous-batching slots (0 = off)");
  cmd->add_option("--kv-cache-dtype", a.kv_cache_dtype, "fp32 | bf16 (KV cache precision)")->capture_default_str();
}

void AddGenerateOptions(CLI::App* cmd, GenArgs& g) {
  cmd->add_option("--prompt", g.prompt, "prompt text");
  cmd->add_option("--input-ids", g.input_ids, "comma-separated prompt token ids");
  cmd->add_option("--prompts-file", g.prompts_file,
                  "JSON lines, each {\"prompt\": \"...\"} or {\"input_ids\": [...]}: all prompts run concurrently");
  cmd->add_option("--max-new-tokens,--generation-len", g.max_new_tokens, "0 = fill the context");
  cmd->add_flag("--stop-at-eos", g.stop_at_eos, "stop when the EOS token is generated");
  cmd->add_option("--temperature", g.temperature, "0 = greedy");
  cmd->add_option("--top-k", g.top_k);
  cmd->add_option("--top-p", g.top_p);
  cmd->add_option("--repetition-penalty", g.repetition_penalty);
  cmd->add_option("--seed", g.seed, "sampling seed (default: a fresh one, printed with --json)");
}

// "1,2,3" -> ids; INVALID_ARGUMENT naming the flag otherwise.
absl::StatusOr<std::vector<int64_t>> ParseIds(const std::string& text, const std::string& flag) {
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t id;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(flag + " must be comma-separated integers, got '" + std::string(part) + "'");
    }
    ids.push_back(id);
  }
  return ids;
}

// Encoder inputs (embed, classify): each --input-ids with the --token-type-ids of the same
// position, when given (once per --input-ids, or not at all).
absl::Status AddEncoderInputs(const std::vector<std::string>& ids, const std::vector<std::string>& types,
                              google::protobuf::RepeatedPtrField<qeff::v1::TokenIds>* out) {
  if (!types.empty() && types.size() != ids.size()) {
    return absl::InvalidArgumentError("pass --token-type-ids once per --input-ids (in the same order), or not at all");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    auto* in = out->Add();
    auto parsed = ParseIds(ids[i], "--input-ids");
    if (!parsed.ok()) return parsed.status();
    in->mutable_ids()->Add(parsed->begin(), parsed->end());
    if (types.empty()) continue;
    auto t = ParseIds(types[i], "--token-type-ids");
    if (!t.ok()) return t.status();
    in->mutable_token_type_ids()->Add(t->begin(), t->end());
  }
  return absl::OkStatus();
}

absl::StatusOr<qeff::v1::GenerateRequest> MakeGenerateRequest(const GenArgs& g, const std::string& model_id) {
  qeff::v1::GenerateRequest req;
  req.set_model_id(model_id);
  if (static_cast<int>(!g.prompt.empty()) + static_cast<int>(!g.input_ids.empty()) +
          static_cast<int>(!g.prompts_file.empty()) != 1) {
    return absl::InvalidArgumentError("pass exactly one of --prompt, --input-ids or --prompts-file");
  }
  if (!g.input_ids.empty()) {
    auto ids = ParseIds(g.input_ids, "--input-ids");
    if (!ids.ok()) return ids.status();
    req.mutable_input_ids()->Add(ids->begin(), ids->end());
  }
  req.set_prompt(g.prompt);
  req.set_max_new_tokens(g.max_new_tokens);
  req.set_stop_at_eos(g.stop_at_eos);
  auto* s = req.mutable_sampling();
  s->set_temperature(g.temperature);
  s->set_top_k(g.top_k);
  s->set_top_p(g.top_p);
  s->set_repetition_penalty(g.repetition_penalty);
  if (g.seed) s->set_seed(*g.seed);
  return req;
}

qeff::v1::CompileRequest MakeCompileRequest(const CompileArgs& a, const std::string& export_key) {
  qeff::v1::CompileRequest req;
  req.set_export_key(export_key);
  req.set_target(a.target);
  req.set_batch_size(a.batch_size);
  req.set_prefill_seq_len(a.prefill_seq_len);
  req.set_ctx_len(a.ctx_len);
  req.set_num_cores(a.num_cores);
  req.set_weight_dtype(a.weight_dtype);
  req.set_full_batch_size(a.full_batch_size);
  req.set_kv_cache_dtype(a.kv_cache_dtype);
  return req;
}

nlohmann::json StatsJson(const qeff::v1::GenerationStats& s) {
  return {{"prefill_ms", s.prefill_ms()},
          {"ttft_ms", s.ttft_ms()},
          {"decode_tokens_per_s", s.decode_tokens_per_s()},
          {"total_tokens_per_s", s.total_tokens_per_s()},
          {"e2e_ms", s.e2e_ms()},
          {"prompt_tokens", s.prompt_tokens()},
          {"generated_tokens", s.generated_tokens()},
          {"prefill_chunks", s.prefill_chunks()}};
}

// QEfficient's four performance lines (CloudAI100ExecInfo).
void PrintStats(const qeff::v1::GenerationStats& s) {
  std::printf("\n========================= Performance Stats =========================\n");
  std::printf("Average Prefill time a.k.a TTFT is= %.4f sec\n", s.ttft_ms() / 1000.0);
  std::printf("Decode is= %.2f tokens/sec\n", s.decode_tokens_per_s());
  std::printf("Total is= %.2f tokens/sec\n", s.total_tokens_per_s());
  std::printf("Total (E2E) inference time is= %.4f sec\n", s.e2e_ms() / 1000.0);
  std::printf("=====================================================================\n");
}

// Runs a generation, streaming text to stdout unless --json; returns the final event.
int RunGenerate(const Common& c, const GenArgs& g, const std::string& model_id, nlohmann::json* out) {
  auto req = MakeGenerateRequest(g, model_id);
  if (!req.ok()) return Fail(req.status());
  std::vector<int64_t> generated;
  std::string text;
  auto last = qeffctl::Generate(c.RunnerAddr(), *req, [&](const qeff::v1::GenerateEvent& ev) {
    for (int64_t id : ev.token_ids()) generated.push_back(id);
    text += ev.text();
    if (!c.json) {
      std::fwrite(ev.text().data(), 1, ev.text().size(), stdout);
      std::fflush(stdout);
    }
  });
  if (!last.ok()) return Fail(last.status());
  (*out)["prompt_token_ids"] = std::vector<int64_t>(last->prompt_token_ids().begin(), last->prompt_token_ids().end());
  (*out)["generated_token_ids"] = generated;
  (*out)["text"] = text;
  (*out)["finish_reason"] = last->finish_reason();
  (*out)["seed"] = last->seed();
  (*out)["stats"] = StatsJson(last->stats());
  if (!c.json) {
    std::printf("\n");
    PrintStats(last->stats());
  }
  return 0;
}

void PrintJson(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

// --prompts-file: every prompt as its own concurrent stream (the runner batches them), printed
// in input order. --json: one object per prompt with the fields of a single `infer --json`
// (plus `base`'s keys), and the batch's aggregate as {"aggregate": ...} on stderr, so stdout
// holds exactly one line per prompt. Otherwise each prompt and its completion, as QEfficient
// prints them, then the batch's performance stats.
int RunPromptsFile(const Common& c, const GenArgs& g, const std::string& model_id, int concurrency,
                   const nlohmann::json& base) {
  auto lines = qeffctl::ReadPromptsFile(g.prompts_file);
  if (!lines.ok()) return Fail(lines.status());
  auto tmpl = MakeGenerateRequest(g, model_id);
  if (!tmpl.ok()) return Fail(tmpl.status());
  std::vector<qeff::v1::GenerateRequest> requests;
  for (const auto& line : *lines) {
    qeff::v1::GenerateRequest r = *tmpl;
    r.set_prompt(line.prompt);
    for (int64_t id : line.input_ids) r.add_input_ids(id);
    requests.push_back(std::move(r));
  }
  qeffctl::BatchStats agg;
  auto results = qeffctl::GenerateAll(c.RunnerAddr(), requests, concurrency, &agg);
  int failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (!r.status.ok()) ++failed;
    if (c.json) {
      nlohmann::json j = base;
      if (r.status.ok()) {
        j["prompt_token_ids"] = std::vector<int64_t>(r.last.prompt_token_ids().begin(), r.last.prompt_token_ids().end());
        j["generated_token_ids"] = r.generated;
        j["text"] = r.text;
        j["finish_reason"] = r.last.finish_reason();
        j["seed"] = r.last.seed();
        j["stats"] = StatsJson(r.last.stats());
      } else {
        j["error"] = std::string(r.status.message());
        j["code"] = absl::StatusCodeToString(r.status.code());
      }
      PrintJson(j);
      continue;
    }
    std::printf("========================= Prompt %zu =========================\n", i);
    const auto& line = (*lines)[i];
    if (!line.prompt.empty()) {
      std::printf("Prompt : %s\n", line.prompt.c_str());
    } else {
      std::printf("Prompt : (%zu token ids)\n", line.input_ids.size());
    }
    if (r.status.ok()) {
      std::printf("Completion : %s\n", r.text.c_str());
    } else {
      std::printf("error: %s [%s]\n", std::string(r.status.message()).c_str(),
                  absl::StatusCodeToString(r.status.code()).c_str());
    }
  }
  const nlohmann::json aggregate = {{"prompts", agg.prompts},
                                    {"failed", failed},
                                    {"generated_tokens", agg.generated_tokens},
                                    {"e2e_ms", agg.e2e_ms},
                                    {"ttft_ms_avg", agg.ttft_ms_avg},
                                    {"decode_tokens_per_s", agg.decode_tokens_per_s},
                                    {"total_tokens_per_s", agg.total_tokens_per_s}};
  if (c.json) {
    std::cerr << nlohmann::json{{"aggregate", aggregate}}.dump() << std::endl;
  } else {
    std::printf("\n========================= Performance Stats =========================\n");
    std::printf("Average Prefill time a.k.a TTFT is= %.4f sec\n", agg.ttft_ms_avg / 1000.0);
    std::printf("Decode is= %.2f tokens/sec\n", agg.decode_tokens_per_s);
    std::printf("Total is= %.2f tokens/sec\n", agg.total_tokens_per_s);
    std::printf("Total (E2E) inference time is= %.4f sec\n", agg.e2e_ms / 1000.0);
    std::printf("=====================================================================\n");
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

namespace {

int Main(int argc, char** argv) {
  CLI::App app{"qeffctl: export, compile and run HuggingFace models with qeff"};
  app.require_subcommand(1);
  // Global flags (--server, --json, ...) may come before or after the subcommand, as scripts use both.
  app.fallthrough();
  Common c;
  const char* env_server = std::getenv("QEFF_SERVER");
  c.server = env_server != nullptr ? env_server : "127.0.0.1:50051";
  app.add_option("--server", c.server, "qeffd address (or QEFF_SERVER)")->capture_default_str();
  app.add_option("--exporter", c.exporter, "Exporter address when services run separately");
  app.add_option("--compiler", c.compiler, "Compiler address when services run separately");
  app.add_option("--runner", c.runner, "Runner address when services run separately");
  app.add_flag("--json", c.json, "print one JSON object for scripts");
  // Transport security and deadlines, for every command that talks to a server.
  qeffctl::ClientOptions client_options;
  std::string token_file;
  app.add_option("--tls-ca", client_options.tls_ca, "PEM CA that signed the servers' certificates: connect with TLS");
  app.add_option("--tls-cert", client_options.tls_cert, "PEM client certificate for servers with --tls-client-ca (mTLS)");
  app.add_option("--tls-key", client_options.tls_key, "PEM private key of --tls-cert");
  app.add_option("--token-file", token_file,
                 "file holding the bearer token (its first line that is not blank or a # comment); "
                 "default: $QEFF_TOKEN");
  app.add_option("--timeout", client_options.timeout_s,
                 "deadline of every call in seconds (default: 30 for list/unload, 600 for load/embed/classify, "
                 "3600 for export/compile/generate)");

  std::string model, revision = "main", export_key, qpc_key, model_id, tokenizer_dir, jsonl, text, cache_dir;
  bool fp16_clip = false, cb = false;
  CompileArgs ca;
  GenArgs ga;

  auto add_model_opts = [&](CLI::App* cmd) {
    cmd->add_option("--model,--model-name", model, "HF model folder or org/name in the HF cache")->required();
    cmd->add_option("--revision", revision)->capture_default_str();
    cmd->add_flag("--fp16-clip", fp16_clip, "clip constants to the fp16 range");
    cmd->add_flag("--continuous-batching", cb, "export with batch_index for continuous batching");
  };
  auto* export_cmd = app.add_subcommand("export", "export a HF model to a QEff ONNX graph");
  add_model_opts(export_cmd);
  auto* compile_cmd = app.add_subcommand("compile", "compile an export into a qpc");
  compile_cmd->add_option("--export-key", export_key)->required();
  AddCompileOptions(compile_cmd, ca);
  auto* load_cmd = app.add_subcommand("load", "load a qpc on the runner");
  load_cmd->add_option("--qpc-key", qpc_key)->required();
  load_cmd->add_option("--model-id", model_id, "name for the loaded model (default: the qpc key)");
  auto* gen_cmd = app.add_subcommand("generate", "generate text with a loaded model");
  gen_cmd->add_option("--model-id", model_id)->required();
  AddGenerateOptions(gen_cmd, ga);
  auto* infer_cmd = app.add_subcommand("infer", "export + compile + load + generate (like QEfficient.cloud.infer)");
  add_model_opts(infer_cmd);
  AddCompileOptions(infer_cmd, ca);
  AddGenerateOptions(infer_cmd, ga);
  // Encoders (embed, classify): texts or ids (+ token types), and the Embedding specialization's shapes.
  std::vector<std::string> enc_texts, enc_pairs, enc_ids, enc_types;
  auto add_encoder_opts = [&](CLI::App* cmd, const char* what) {
    add_model_opts(cmd);
    cmd->add_option("--text", enc_texts, std::string("a text to ") + what + " (repeat for more)");
    cmd->add_option("--input-ids", enc_ids, "comma-separated ids of one sequence (repeat for more)");
    cmd->add_option("--token-type-ids", enc_types,
                    "comma-separated token types of the --input-ids at the same position (e.g. 0 for the query, "
                    "1 for the document of a BERT pair)");
    cmd->add_option("--seq-len", ca.prefill_seq_len, "compiled sequence length")->capture_default_str();
    cmd->add_option("--batch-size", ca.batch_size)->capture_default_str();
    cmd->add_option("--num-cores", ca.num_cores, "device cores/threads (0 = all)");
  };
  auto* embed_cmd =
      app.add_subcommand("embed", "export + compile + load an encoder (BERT, RoBERTa, XLM-R) and embed texts or ids");
  add_encoder_opts(embed_cmd, "embed");
  std::string pooling = "mean";
  bool normalize = false;
  embed_cmd->add_option("--pooling", pooling, "mean | cls | max | pooler")->capture_default_str();
  embed_cmd->add_flag("--normalize", normalize, "L2-normalize the embeddings");
  auto* classify_cmd = app.add_subcommand(
      "classify", "export + compile + load a sequence classifier / cross-encoder reranker and score inputs or pairs");
  add_encoder_opts(classify_cmd, "classify");
  classify_cmd->add_option("--text-pair", enc_pairs,
                           "the second text of the --text at the same position (e.g. the document for a query)");
  auto* list_cmd = app.add_subcommand("list", "list loaded models");
  auto* unload_cmd = app.add_subcommand("unload", "unload a model");
  unload_cmd->add_option("--model-id", model_id)->required();
  auto* tok_cmd = app.add_subcommand("tokenize", "tokenize locally with a tokenizer folder (no server)");
  tok_cmd->add_option("--tokenizer", tokenizer_dir, "folder with tokenizer.json (or vocab.json + merges.txt)")->required();
  tok_cmd->add_option("--jsonl", jsonl, "file of {\"text\", \"add_special_tokens\"} lines");
  tok_cmd->add_option("--text", text, "one text");
  auto* chat_cmd = app.add_subcommand("chat-template", "render a tokenizer folder's chat template locally (no server)");
  std::string chat_now;
  chat_cmd->add_option("--tokenizer", tokenizer_dir, "folder with tokenizer_config.json")->required();
  chat_cmd->add_option("--jsonl", jsonl, "file of {\"messages\", \"tools\", \"add_generation_prompt\", \"kwargs\"} lines")
      ->required();
  chat_cmd->add_option("--now", chat_now, "freeze strftime_now, e.g. \"2025-01-15 14:30:00\"");
  auto* cache_cmd = app.add_subcommand("cache", "inspect the local artifact cache");
  cache_cmd->require_subcommand(1);
  cache_cmd->add_option("--cache-dir", cache_dir, "default $QEFF_CACHE or ~/.cache/qeff");
  auto* cache_ls = cache_cmd->add_subcommand("ls", "list artifacts");
  auto* cache_gc = cache_cmd->add_subcommand("gc", "remove leftovers of interrupted builds");
  auto* cache_verify = cache_cmd->add_subcommand(
      "verify", "check every artifact (or KEY) against its manifest; damaged ones move to quarantine and are "
                "rebuilt on the next request; exit 1 if any was damaged");
  std::string cache_key;
  cache_verify->add_option("KEY", cache_key, "one artifact key (export or qpc)");
  auto* cache_rm = cache_cmd->add_subcommand("rm", "remove one artifact (refused while a process uses it)");
  cache_rm->add_option("KEY", cache_key, "the artifact key (export or qpc)")->required();

  CLI11_PARSE(app, argc, argv);
  const bool quiet = c.json;
  if (!token_file.empty()) {
    auto t = qeffctl::ReadTokenFile(token_file);
    if (!t.ok()) return Fail(t.status());
    client_options.token = *t;
  } else if (const char* env_token = std::getenv("QEFF_TOKEN"); env_token != nullptr) {
    client_options.token = env_token;
  }
  if (absl::Status st = qeffctl::Configure(client_options); !st.ok()) return Fail(st);

  auto do_export = [&](nlohmann::json* out) -> absl::StatusOr<qeff::v1::ExportResult> {
    qeff::v1::ExportRequest req;
    req.set_model(model);
    req.set_revision(revision);
    req.mutable_options()->set_fp16_clip(fp16_clip);
    req.mutable_options()->set_continuous_batching(cb);
    qeffctl::ProgressPrinter progress("export", quiet);
    auto r = qeffctl::Export(c.ExporterAddr(), req, progress);
    if (r.ok()) {
      progress.Finish(r->artifact().key() + (r->cache_hit() ? " (cache hit)" : " (exported)") + " " + r->architecture());
      (*out)["export_key"] = r->artifact().key();
      (*out)["export_cache_hit"] = r->cache_hit();
      (*out)["architecture"] = r->architecture();
    }
    return r;
  };
  auto do_compile = [&](const std::string& key, nlohmann::json* out) -> absl::StatusOr<qeff::v1::CompileResult> {
    qeffctl::ProgressPrinter progress("compile", quiet);
    auto r = qeffctl::Compile(c.CompilerAddr(), MakeCompileRequest(ca, key), progress);
    if (r.ok()) {
      progress.Finish(r->artifact().key() + (r->cache_hit() ? " (cache hit)" : " (compiled)"));
      (*out)["qpc_key"] = r->artifact().key();
      (*out)["compile_cache_hit"] = r->cache_hit();
      if (!r->command().empty()) (*out)["command"] = std::vector<std::string>(r->command().begin(), r->command().end());
    }
    return r;
  };

  nlohmann::json out = nlohmann::json::object();
  if (*export_cmd) {
    auto r = do_export(&out);
    if (!r.ok()) return Fail(r.status());
    out["path"] = r->artifact().path();
    out["num_layers"] = r->num_layers();
    out["num_parameters"] = r->num_parameters();
  } else if (*compile_cmd) {
    auto r = do_compile(export_key, &out);
    if (!r.ok()) return Fail(r.status());
    out["path"] = r->artifact().path();
  } else if (*load_cmd) {
    qeff::v1::LoadRequest req;
    req.set_qpc_key(qpc_key);
    req.set_model_id(model_id);
    auto r = qeffctl::Load(c.RunnerAddr(), req);
    if (!r.ok()) return Fail(r.status());
    out["model_id"] = r->model_id();
    out["ctx_len"] = r->ctx_len();
    out["prefill_seq_len"] = r->prefill_seq_len();
    out["batch_size"] = r->batch_size();
    out["full_batch_size"] = r->full_batch_size();
  } else if (*gen_cmd) {
    if (!ga.prompts_file.empty()) return RunPromptsFile(c, ga, model_id, kPromptsInFlight, out);
    if (int rc = RunGenerate(c, ga, model_id, &out); rc != 0) return rc;
  } else if (*infer_cmd) {
    // QEfficient: a full_batch_size means a continuous-batching export.
    if (ca.full_batch_size > 0) cb = true;
    // Without an explicit --prefill-seq-len, an --input-ids prompt longer than the default chunk
    // is prefilled in one call (chunk = the next power of two, within ctx_len), as HF processes
    // a prompt: models whose rotary depends on the call's length (longrope) then match HF too.
    if (infer_cmd->count("--prefill-seq-len") == 0 && infer_cmd->count("--prompt-len") == 0 &&
        !ga.input_ids.empty()) {
      const int64_t n = std::count(ga.input_ids.begin(), ga.input_ids.end(), ',') + 1;
      int64_t chunk = ca.prefill_seq_len;
      while (chunk < n && chunk < ca.ctx_len) chunk *= 2;
      ca.prefill_seq_len = static_cast<int>(std::min<int64_t>(chunk, ca.ctx_len));
    }
    auto e = do_export(&out);
    if (!e.ok()) return Fail(e.status());
    auto q = do_compile(e->artifact().key(), &out);
    if (!q.ok()) return Fail(q.status());
    qeff::v1::LoadRequest lreq;
    lreq.set_qpc_key(q->artifact().key());
    auto l = qeffctl::Load(c.RunnerAddr(), lreq);
    if (!l.ok()) return Fail(l.status());
    if (!ga.prompts_file.empty()) {
      // Enough streams to keep every KV slot busy while finished ones are replaced.
      return RunPromptsFile(c, ga, l->model_id(), std::max(kPromptsInFlight, 2 * ca.full_batch_size), out);
    }
    if (int rc = RunGenerate(c, ga, l->model_id(), &out); rc != 0) return rc;
  } else if (*embed_cmd || *classify_cmd) {
    if (enc_texts.empty() == enc_ids.empty()) {
      std::cerr << "error: pass --text or --input-ids (one or more times), not both\n";
      return 1;
    }
    if (!enc_pairs.empty() && enc_pairs.size() != enc_texts.size()) {
      std::cerr << "error: pass --text-pair once per --text (in the same order), or not at all\n";
      return 1;
    }
    if (!enc_types.empty() && enc_ids.empty()) {
      std::cerr << "error: --token-type-ids goes with --input-ids (text pairs get their types from the tokenizer)\n";
      return 1;
    }
    qeff::v1::EmbedRequest ereq;
    qeff::v1::ClassifyRequest creq;
    if (absl::Status st = AddEncoderInputs(enc_ids, enc_types, *embed_cmd ? ereq.mutable_inputs() : creq.mutable_inputs());
        !st.ok()) {
      return Fail(st);
    }
    for (size_t i = 0; i < enc_texts.size(); ++i) {
      if (*embed_cmd) {
        ereq.add_texts(enc_texts[i]);
      } else {
        auto* t = creq.add_texts();
        t->set_text(enc_texts[i]);
        if (!enc_pairs.empty()) t->set_text_pair(enc_pairs[i]);
      }
    }
    auto e = do_export(&out);
    if (!e.ok()) return Fail(e.status());
    auto q = do_compile(e->artifact().key(), &out);
    if (!q.ok()) return Fail(q.status());
    qeff::v1::LoadRequest lreq;
    lreq.set_qpc_key(q->artifact().key());
    auto l = qeffctl::Load(c.RunnerAddr(), lreq);
    if (!l.ok()) return Fail(l.status());
    if (*embed_cmd) {
      ereq.set_model_id(l->model_id());
      ereq.set_pooling(pooling);
      ereq.set_normalize(normalize);
      auto r = qeffctl::Embed(c.RunnerAddr(), ereq);
      if (!r.ok()) return Fail(r.status());
      out["embeddings"] = nlohmann::json::array();
      for (const auto& emb : r->embeddings()) {
        out["embeddings"].push_back(std::vector<float>(emb.values().begin(), emb.values().end()));
      }
      out["pooling"] = pooling;
      out["normalized"] = normalize;
      out["e2e_ms"] = r->e2e_ms();
    } else {
      creq.set_model_id(l->model_id());
      auto r = qeffctl::Classify(c.RunnerAddr(), creq);
      if (!r.ok()) return Fail(r.status());
      out["logits"] = nlohmann::json::array();
      out["scores"] = nlohmann::json::array();
      for (const auto& res : r->results()) {
        out["logits"].push_back(std::vector<float>(res.logits().begin(), res.logits().end()));
        out["scores"].push_back(std::vector<float>(res.scores().begin(), res.scores().end()));
      }
      out["labels"] = std::vector<std::string>(r->labels().begin(), r->labels().end());
      out["e2e_ms"] = r->e2e_ms();
    }
  } else if (*list_cmd || *unload_cmd) {
    if (*unload_cmd) {
      if (absl::Status s = qeffctl::Unload(c.RunnerAddr(), model_id); !s.ok()) return Fail(s);
      out["unloaded"] = model_id;
    } else {
      auto listed = qeffctl::List(c.RunnerAddr());
      if (!listed.ok()) return Fail(listed.status());
      const qeff::v1::ListResponse& resp = *listed;
      out["models"] = nlohmann::json::array();
      for (const auto& m : resp.models()) {
        out["models"].push_back({{"model_id", m.model_id()}, {"qpc_key", m.qpc_key()},
                                 {"architecture", m.architecture()}, {"ctx_len", m.ctx_len()},
                                 {"prefill_seq_len", m.prefill_seq_len()}, {"batch_size", m.batch_size()},
                                 {"full_batch_size", m.full_batch_size()}, {"slots", m.slots()},
                                 {"active_requests", m.active_requests()}, {"queued_requests", m.queued_requests()},
                                 {"max_queued_requests", m.max_queued_requests()}});
      }
    }
  } else if (*tok_cmd) {
    if (jsonl.empty() == (tok_cmd->count("--text") == 0)) {
      std::cerr << "error: pass exactly one of --jsonl FILE or --text TEXT\n";
      return 1;
    }
    return RunTokenizeCommand(tokenizer_dir, jsonl, text, std::cout, std::cerr);
  } else if (*chat_cmd) {
    return RunChatTemplateCommand(tokenizer_dir, jsonl, chat_now, std::cout, std::cerr);
  } else if (*cache_cmd) {
    auto store = qeff::artifacts::Store::Open(cache_dir.empty() ? qeff::artifacts::DefaultCacheRoot()
                                                                 : std::filesystem::path(cache_dir));
    if (!store.ok()) return Fail(store.status());
    if (*cache_verify) {
      out["artifacts"] = nlohmann::json::array();
      int damaged = 0;
      for (const auto& a : store->List()) {
        if (!cache_key.empty() && a.key != cache_key) continue;
        absl::Status v = store->Verify(a.kind, a.key);
        nlohmann::json item = {{"kind", qeff::artifacts::KindName(a.kind)}, {"key", a.key}, {"ok", v.ok()}};
        if (!v.ok()) {
          ++damaged;
          item["error"] = std::string(v.message());
          if (v.code() == absl::StatusCode::kDataLoss) {
            item["quarantined"] = store->Quarantine(a.kind, a.key, std::string(v.message())).ok();
          }
        }
        if (!c.json) {
          std::printf("%-6s %s %s\n", qeff::artifacts::KindName(a.kind), a.key.c_str(),
                      v.ok() ? "ok" : ("DAMAGED (moved to quarantine): " + std::string(v.message())).c_str());
        }
        out["artifacts"].push_back(item);
      }
      out["damaged"] = damaged;
      if (c.json) std::printf("%s\n", out.dump(2).c_str());
      return damaged > 0 ? 1 : 0;
    } else if (*cache_rm) {
      absl::Status removed = absl::NotFoundError("no artifact with key " + cache_key + " in the cache");
      for (auto kind : {qeff::artifacts::Kind::kExport, qeff::artifacts::Kind::kQpc}) {
        if (store->Find(kind, cache_key).ok()) removed = store->Remove(kind, cache_key);
      }
      if (!removed.ok()) return Fail(removed);
      out["removed"] = cache_key;
    } else if (*cache_gc) {
      out["removed"] = store->CollectGarbage();
    } else if (*cache_ls) {
      out["artifacts"] = nlohmann::json::array();
      for (const auto& a : store->List()) {
        nlohmann::json item = {{"kind", qeff::artifacts::KindName(a.kind)},
                               {"key", a.key},
                               {"bytes", a.bytes},
                               {"architecture", a.manifest.value("architecture", std::string())},
                               {"path", a.path.string()}};
        out["artifacts"].push_back(std::move(item));
      }
    }
  }
  if (c.json) {
    PrintJson(out);
  } else if (!*infer_cmd && !*gen_cmd) {
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  }
  return 0;
}

}  // namespace

// Prints first, then tears gRPC down: the results are flushed before any channel goes, every
// call has finished (streams read to the end and Finish()ed), and the channels are closed here
// rather than by static destructors. If gRPC's library shutdown still blocks, a watchdog ends
// the process with the command's exit code after 5 s (_exit after the flush: nothing is lost).
int main(int argc, char** argv) {
  // gRPC's own log lines (e.g. a failed TLS handshake) repeat what the error message says.
  ::setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  const int rc = Main(argc, argv);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::thread([rc] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    ::_exit(rc);
  }).detach();
  qeffctl::CloseChannels();
  return rc;
}
