#include "services/runner/metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "absl/strings/str_cat.h"

namespace qeff::runner {
namespace {

// vLLM's buckets (vllm/v1/metrics/loggers.py), so dashboards built for vLLM read ours.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kLatencyBuckets = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                                             30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
// 1-2-5 steps, as vLLM's build_1_2_5_buckets up to a context length.
const std::vector<double> kTokenBuckets = {1,    2,    5,    10,    20,    50,    100,    200,   500,
                                           1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000};

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Label values escape backslash, double quote and newline (text format 0.0.4).
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// logfmt value: quoted when it has spaces, quotes or '='.
std::string LogValue(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \"=\t\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

constexpr const char* kReasons[] = {"stop", "length", "abort"};

}  // namespace

std::string OpenAiFinishReason(const std::string& engine_reason) {
  return engine_reason == "eos" ? "stop" : engine_reason;
}

void Histogram::Observe(double v) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  ++counts_[i];  // `le` is inclusive: v == bound lands in that bucket
  sum_ += v;
  ++count_;
}

Metrics::PerModel::PerModel()
    : ttft(kTtftBuckets),
      itl(kItlBuckets),
      e2e(kLatencyBuckets),
      queue(kLatencyBuckets),
      prefill(kLatencyBuckets),
      decode(kLatencyBuckets),
      prompt_len(kTokenBuckets),
      generation_len(kTokenBuckets) {
  for (const char* r : kReasons) success[r] = 0;
}

Metrics& Metrics::Global() {
  static Metrics* m = new Metrics();  // never destroyed: front-end threads may record during exit
  return *m;
}

Metrics::PerModel& Metrics::Model(const std::string& name) { return models_[name]; }

void Metrics::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  models_.clear();
}

void Metrics::RecordRequest(const RequestRecord& r) {
  std::string reason = r.status.ok() ? OpenAiFinishReason(r.finish_reason) : "abort";
  if (reason != "stop" && reason != "length") reason = "abort";
  {
    std::lock_guard<std::mutex> l(mu_);
    PerModel& m = Model(r.model);
    m.prompt_tokens += static_cast<uint64_t>(std::max(r.prompt_tokens, 0));
    m.generation_tokens += static_cast<uint64_t>(std::max(r.generated_tokens, 0));
    ++m.success[reason];
    // Latency distributions describe requests that ran to their end; an aborted request's
    // intervals stop at an arbitrary point.
    if (reason != "abort") {
      const GenerationStats& s = r.stats;
      m.queue.Observe(s.queue_ms / 1e3);
      m.e2e.Observe(s.e2e_ms / 1e3);
      m.prompt_len.Observe(r.prompt_tokens);
      m.generation_len.Observe(r.generated_tokens);
      if (r.generated_tokens > 0) {
        m.ttft.Observe(s.ttft_ms / 1e3);
        m.prefill.Observe(s.prefill_ms / 1e3);
        m.decode.Observe(std::max(0.0, s.e2e_ms - s.ttft_ms) / 1e3);
      }
      for (size_t i = 1; i < r.token_times.size(); ++i) {
        m.itl.Observe(std::chrono::duration<double>(r.token_times[i] - r.token_times[i - 1]).count());
      }
    }
  }
  spdlog::info(
      "request_done id={} model={} frontend={} prompt_tokens={} generated_tokens={} ttft_ms={:.2f} "
      "e2e_ms={:.2f} finish_reason={} status={}",
      LogValue(r.request_id), LogValue(r.model), LogValue(r.frontend), r.prompt_tokens, r.generated_tokens,
      r.stats.ttft_ms, r.stats.e2e_ms, reason,
      LogValue(r.status.ok() ? std::string("OK") : std::string(r.status.ToString())));
}

std::string Metrics::Render(const std::vector<ModelGauges>& gauges) const {
  std::lock_guard<std::mutex> l(mu_);
  std::set<std::string> names;
  for (const auto& g : gauges) names.insert(g.model);
  for (const auto& [name, m] : models_) names.insert(name);
  const PerModel zero;
  auto model = [&](const std::string& name) -> const PerModel& {
    auto it = models_.find(name);
    return it == models_.end() ? zero : it->second;
  };
  auto label = [](const std::string& name) { return absl::StrCat("model_name=\"", Escape(name), "\""); };

  std::string out;
  auto family = [&out](const char* name, const char* type, const char* help) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  };
  auto gauge = [&](const char* name, const char* help, auto value) {
    family(name, "gauge", help);
    for (const auto& g : gauges) absl::StrAppend(&out, name, "{", label(g.model), "} ", Num(value(g)), "\n");
  };
  gauge("qeff:num_requests_running", "Number of requests holding a KV slot (prefill or decode).",
        [](const ModelGauges& g) { return static_cast<double>(g.running); });
  gauge("qeff:num_requests_waiting", "Number of requests waiting in the queue for a KV slot.",
        [](const ModelGauges& g) { return static_cast<double>(g.waiting); });
  gauge("qeff:kv_cache_usage_perc", "Fraction of KV-cache slots in use (1 = all slots hold a request).",
        [](const ModelGauges& g) { return g.slots > 0 ? static_cast<double>(g.running) / g.slots : 0.0; });

  family("qeff:prompt_tokens_total", "counter", "Number of prefill tokens processed.");
  for (const auto& n : names) absl::StrAppend(&out, "qeff:prompt_tokens_total{", label(n), "} ", model(n).prompt_tokens, "\n");
  family("qeff:generation_tokens_total", "counter", "Number of generation tokens processed.");
  for (const auto& n : names) {
    absl::StrAppend(&out, "qeff:generation_tokens_total{", label(n), "} ", model(n).generation_tokens, "\n");
  }
  family("qeff:request_success_total", "counter", "Count of finished requests by finish reason (stop, length, abort).");
  for (const auto& n : names) {
    for (const auto& [reason, count] : model(n).success) {
      absl::StrAppend(&out, "qeff:request_success_total{", label(n), ",finished_reason=\"", Escape(reason), "\"} ",
                      count, "\n");
    }
  }

  auto histogram = [&](const char* name, const char* help, Histogram PerModel::*member) {
    family(name, "histogram", help);
    for (const auto& n : names) {
      const Histogram& h = model(n).*member;
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= h.bounds().size(); ++i) {
        cumulative += h.counts()[i];
        const std::string le = i < h.bounds().size() ? Num(h.bounds()[i]) : "+Inf";
        absl::StrAppend(&out, name, "_bucket{", label(n), ",le=\"", le, "\"} ", cumulative, "\n");
      }
      absl::StrAppend(&out, name, "_sum{", label(n), "} ", Num(h.sum()), "\n");
      absl::StrAppend(&out, name, "_count{", label(n), "} ", h.count(), "\n");
    }
  };
  histogram("qeff:time_to_first_token_seconds", "Histogram of time to first token in seconds (from arrival).",
            &PerModel::ttft);
  histogram("qeff:inter_token_latency_seconds", "Histogram of the time between consecutive output tokens in seconds.",
            &PerModel::itl);
  histogram("qeff:e2e_request_latency_seconds", "Histogram of end-to-end request latency in seconds.", &PerModel::e2e);
  histogram("qeff:request_queue_time_seconds", "Histogram of time spent waiting for a KV slot in seconds.",
            &PerModel::queue);
  histogram("qeff:request_prefill_time_seconds",
            "Histogram of time from getting a KV slot to the first token in seconds.", &PerModel::prefill);
  histogram("qeff:request_decode_time_seconds", "Histogram of time from the first to the last token in seconds.",
            &PerModel::decode);
  histogram("qeff:request_prompt_tokens", "Number of prefill tokens processed, per finished request.",
            &PerModel::prompt_len);
  histogram("qeff:request_generation_tokens", "Number of generation tokens processed, per finished request.",
            &PerModel::generation_len);
  return out;
}

}  // namespace qeff::runner
