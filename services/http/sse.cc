#include "services/http/sse.h"

#include "services/http/openai_json.h"

namespace qeff::http {

std::string SseData(const nlohmann::ordered_json& data) { return "data: " + Dump(data) + "\n\n"; }

bool SseSend(httplib::DataSink& sink, const std::string& frame) {
  if (sink.is_writable && !sink.is_writable()) return false;
  return sink.write(frame.data(), frame.size());
}

}  // namespace qeff::http
