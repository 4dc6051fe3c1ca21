#include "clients/qeffctl/prompt_batch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "clients/qeffctl/client.h"

namespace qeffctl {

absl::StatusOr<std::vector<PromptLine>> ReadPromptsFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open the prompts file ", path));
  std::vector<PromptLine> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": ", why,
                                                     " (each line is {\"prompt\": \"...\"} or {\"input_ids\": [...]})"));
    };
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
    const bool has_prompt = j.contains("prompt"), has_ids = j.contains("input_ids");
    if (has_prompt == has_ids) return bad("needs exactly one of \"prompt\" and \"input_ids\"");
    PromptLine p;
    if (has_prompt) {
      if (!j["prompt"].is_string() || j["prompt"].get<std::string>().empty()) return bad("\"prompt\" must be a non-empty string");
      p.prompt = j["prompt"].get<std::string>();
    } else {
      if (!j["input_ids"].is_array() || j["input_ids"].empty()) return bad("\"input_ids\" must be a non-empty array");
      for (const auto& id : j["input_ids"]) {
        if (!id.is_number_integer()) return bad("\"input_ids\" must hold integers");
        p.input_ids.push_back(id.get<int64_t>());
      }
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("the prompts file ", path, " has no prompts"));
  return out;
}

std::vector<PromptResult> GenerateAll(const std::string& address, const std::vector<qeff::v1::GenerateRequest>& requests,
                                      int concurrency, BatchStats* stats) {
  using Clock = std::chrono::steady_clock;
  std::vector<PromptResult> results(requests.size());
  std::atomic<size_t> next{0};
  const auto t0 = Clock::now();
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < requests.size(); i = next.fetch_add(1)) {
      PromptResult& r = results[i];
      auto last = Generate(address, requests[i], [&](const qeff::v1::GenerateEvent& ev) {
        r.generated.insert(r.generated.end(), ev.token_ids().begin(), ev.token_ids().end());
        r.text += ev.text();
      });
      if (last.ok()) {
        r.last = *last;
      } else {
        r.status = last.status();
      }
    }
  };
  const int n = std::max(1, std::min<int>(concurrency, static_cast<int>(requests.size())));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  const double e2e = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  BatchStats s;
  s.prompts = static_cast<int>(requests.size());
  s.e2e_ms = e2e;
  double ttft = 0;
  int ok = 0;
  for (const auto& r : results) {
    if (!r.status.ok()) continue;
    ++ok;
    s.generated_tokens += static_cast<int64_t>(r.generated.size());
    ttft += r.last.stats().ttft_ms();
  }
  s.ttft_ms_avg = ok > 0 ? ttft / ok : 0;
  s.total_tokens_per_s = e2e > 0 ? s.generated_tokens / (e2e / 1000.0) : 0;
  const double decode_ms = e2e - s.ttft_ms_avg;
  s.decode_tokens_per_s = decode_ms > 0 ? (s.generated_tokens - ok) / (decode_ms / 1000.0) : 0;
  *stats = s;
  return results;
}

}  // namespace qeffctl
