// Errors at the HTTP edge: absl::Status inside, OpenAI's error JSON and an HTTP status outside.
//
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
//
// The request field at fault travels with the status as a payload (BadParam), so handlers stay
// in absl::Status and only ToHttp() knows HTTP.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace qeff::http {

// INVALID_ARGUMENT naming the request field at fault (OpenAI's error.param).
absl::Status BadParam(const std::string& param, const std::string& message);
// The same status with `param` attached (keeps code and message).
absl::Status WithParam(absl::Status status, const std::string& param);

struct HttpError {
  int status = 500;
  std::string body;  // OpenAI's error JSON
};

// The one mapping from absl status codes to HTTP statuses and OpenAI error types:
// INVALID_ARGUMENT/OUT_OF_RANGE/FAILED_PRECONDITION 400, NOT_FOUND 404, RESOURCE_EXHAUSTED 429
// (queue full: retry later), UNAVAILABLE 503 (loading, unloading), DEADLINE_EXCEEDED 504,
// UNIMPLEMENTED 501, CANCELLED 499 (nginx's "client closed request"), the rest 500.
int HttpStatusFor(absl::StatusCode code);
HttpError ToHttp(const absl::Status& status);
// An error body for a status the HTTP layer decides itself (413 body too large, 404 no route).
HttpError MakeHttpError(int http_status, const std::string& type, const std::string& message,
                        const std::string& code = "");

}  // namespace qeff::http
