// The OpenAI-compatible endpoints on the runner's model registry: /v1/completions,
// /v1/chat/completions (both also as SSE streams), /v1/embeddings, /v1/models, /health, and the
// Jina/Cohere/TEI-style /v1/rerank. Handlers validate and translate; generation goes through
// runner::Completion (the same engine the gRPC Runner uses), embeddings through runner::Embed
// and reranking through runner::Classify (as Runner.Classify).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <httplib.h>

#include "absl/status/status.h"
#include "services/http/readiness.h"
#include "services/runner/model_registry.h"

namespace qeff::http {

class OpenAiApi {
 public:
  OpenAiApi(runner::ModelRegistry* registry, std::shared_ptr<const Readiness> readiness,
            const std::atomic<bool>* stopping);

  void Completions(const httplib::Request& req, httplib::Response& res) const;
  void ChatCompletions(const httplib::Request& req, httplib::Response& res) const;
  void Embeddings(const httplib::Request& req, httplib::Response& res) const;
  void Rerank(const httplib::Request& req, httplib::Response& res) const;
  void Models(const httplib::Request& req, httplib::Response& res) const;
  void Health(const httplib::Request& req, httplib::Response& res) const;

  // SSE streams still open (the server lets them end with an event before it stops).
  int open_streams() const { return open_streams_->load(); }

 private:
  // The model by id: 404 when nobody serves it, 503 while a --serve model is still loading.
  absl::StatusOr<std::shared_ptr<runner::LoadedModel>> Lookup(const std::string& id) const;

  runner::ModelRegistry* registry_;
  std::shared_ptr<const Readiness> readiness_;
  const std::atomic<bool>* stopping_;
  int64_t created_;  // server start (unix seconds): /v1/models' "created"
  std::shared_ptr<std::atomic<int>> open_streams_ = std::make_shared<std::atomic<int>>(0);
};

// Writes the OpenAI error JSON for `status` with its HTTP status.
void SendError(httplib::Response& res, const absl::Status& status);

}  // namespace qeff::http
