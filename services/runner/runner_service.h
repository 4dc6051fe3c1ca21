// gRPC Runner service: model lifecycle, streamed generation, embeddings, classification and
// tokenization.
#pragma once

#include "qeff/v1/runner.grpc.pb.h"
#include "services/runner/model_registry.h"

namespace qeff::runner {

class RunnerService final : public qeff::v1::Runner::Service {
 public:
  explicit RunnerService(ModelRegistry* registry) : registry_(registry) {}

  grpc::Status Load(grpc::ServerContext*, const qeff::v1::LoadRequest*, qeff::v1::LoadResponse*) override;
  grpc::Status Unload(grpc::ServerContext*, const qeff::v1::UnloadRequest*, qeff::v1::UnloadResponse*) override;
  grpc::Status List(grpc::ServerContext*, const qeff::v1::ListRequest*, qeff::v1::ListResponse*) override;
  grpc::Status Generate(grpc::ServerContext*, const qeff::v1::GenerateRequest*,
                        grpc::ServerWriter<qeff::v1::GenerateEvent>*) override;
  grpc::Status Embed(grpc::ServerContext*, const qeff::v1::EmbedRequest*, qeff::v1::EmbedResponse*) override;
  grpc::Status Classify(grpc::ServerContext*, const qeff::v1::ClassifyRequest*, qeff::v1::ClassifyResponse*) override;
  grpc::Status Tokenize(grpc::ServerContext*, const qeff::v1::TokenizeRequest*, qeff::v1::TokenizeResponse*) override;
  grpc::Status Detokenize(grpc::ServerContext*, const qeff::v1::DetokenizeRequest*,
                          qeff::v1::DetokenizeResponse*) override;

 private:
  ModelRegistry* registry_;
};

}  // namespace qeff::runner
