#include "services/http/errors.h"

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"

namespace qeff::http {
namespace {

constexpr char kParamPayload[] = "type.qeff/http.param";

std::string ErrorJson(const std::string& message, const std::string& type, const std::string& param,
                      const std::string& code) {
  nlohmann::ordered_json e = {{"message", message},
                      {"type", type},
                      {"param", param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param)},
                      {"code", code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(code)}};
  return nlohmann::ordered_json{{"error", e}}.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace

absl::Status BadParam(const std::string& param, const std::string& message) {
  return WithParam(absl::InvalidArgumentError(message), param);
}

absl::Status WithParam(absl::Status status, const std::string& param) {
  if (!status.ok() && !param.empty()) status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpError ToHttp(const absl::Status& status) {
  const int http_status = HttpStatusFor(status.code());
  std::string type = "invalid_request_error", code;
  switch (http_status) {
    case 404:
      code = "model_not_found";
      break;
    case 429:
      type = "requests";  // OpenAI's type for request-rate limits
      code = "rate_limit_exceeded";
      break;
    case 499:
    case 501:
    case 503:
    case 504:
    case 500:
      type = "server_error";
      break;
    default:
      break;
  }
  std::string param;
  if (auto p = status.GetPayload(kParamPayload)) param = std::string(*p);
  return {http_status, ErrorJson(std::string(status.message()), type, param, code)};
}

HttpError MakeHttpError(int http_status, const std::string& type, const std::string& message,
                        const std::string& code) {
  return {http_status, ErrorJson(message, type, "", code)};
}

}  // namespace qeff::http
