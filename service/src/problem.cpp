#include "deedkit/service/problem.hpp"

#include "deedkit/core/json_text.hpp"

namespace deedkit::service {

std::string Problem::to_json() const {
  std::string json = "{\"type\":";
  append_json_string(json, "https://deedkit.dev/problems/" + slug);
  json += ",\"title\":";
  append_json_string(json, title);
  json += ",\"status\":" + std::to_string(status) + ",\"detail\":";
  append_json_string(json, detail);
  if (!code.empty()) {
    json += ",\"code\":";
    append_json_string(json, code);
  }
  return json + "}";
}

Problem problem_for(const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      return {400, "invalid-request", "The request is invalid", error.message, ""};
    case ErrorCode::kNotFound:
      return {404, "not-found", "Not found", error.message, ""};
    case ErrorCode::kConflict:
      return {409, "concurrency-conflict",
              "The aggregate changed concurrently; retries were exhausted", error.message, ""};
    case ErrorCode::kAlreadyExists:
      return {422, "idempotency-key-reused",
              "The Idempotency-Key was already used for a different request", error.message,
              ""};
    case ErrorCode::kDeadlineExceeded:
      return {409, "request-in-progress",
              "A request with this Idempotency-Key is still in progress", error.message, ""};
    case ErrorCode::kPermissionDenied:
      return {403, "forbidden", "Not allowed", error.message, ""};
    case ErrorCode::kUnavailable:
      return {503, "unavailable", "The database is unavailable", error.message, ""};
    case ErrorCode::kOutcomeUnknown:
      return {503, "outcome-unknown",
              "The commit's outcome is unknown; retry with the same Idempotency-Key",
              error.message, ""};
    case ErrorCode::kAborted:
      return {503, "aborted", "The transaction was aborted; retry", error.message, ""};
    case ErrorCode::kDataLoss:
      return {500, "corrupt-data", "Stored data could not be read", error.message, ""};
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kInternal:
      break;
  }
  return {500, "internal", "Internal error", error.message, ""};
}

}  // namespace deedkit::service
