// Server-Sent Events over httplib's chunked responses: `data: <json>\n\n` frames ending with
// `data: [DONE]`, as OpenAI streams.
#pragma once

#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace qeff::http {

inline constexpr char kSseDone[] = "data: [DONE]\n\n";
// A comment frame: clients ignore it; writing it probes a connection that is otherwise idle
// (a request waiting for a KV slot), so a vanished client is noticed.
inline constexpr char kSseKeepAlive[] = ": keep-alive\n\n";

// `data: <json>\n\n`.
std::string SseData(const nlohmann::ordered_json& data);

// Writes one frame; false when the client is gone (checked before writing, so the caller can
// cancel the request at once).
bool SseSend(httplib::DataSink& sink, const std::string& frame);

}  // namespace qeff::http
