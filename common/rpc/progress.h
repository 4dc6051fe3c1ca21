// Progress events on server streams: Export and Compile both stream `oneof {Progress progress;
// ... result;}` events, so one helper writes the progress half for either.
#pragma once

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

namespace qeff::rpc {

template <typename Event>
void WriteProgress(grpc::ServerWriter<Event>* writer, const std::string& stage, const std::string& message,
                   int64_t done, int64_t total) {
  Event ev;
  auto* p = ev.mutable_progress();
  p->set_stage(stage);
  p->set_message(message);
  p->set_done(done);
  p->set_total(total);
  writer->Write(ev);
}

}  // namespace qeff::rpc
