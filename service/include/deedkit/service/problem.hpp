#pragma once

// RFC 9457 problem documents (application/problem+json): every error the HTTP API returns.

#include <string>

#include "deedkit/core/error.hpp"

namespace deedkit::service {

struct Problem {
  int status = 500;
  std::string slug;    // becomes the type URI: https://deedkit.dev/problems/<slug>
  std::string title;   // short, the same for every occurrence of this kind
  std::string detail;  // this occurrence: names the field, stream or key involved
  std::string code;    // the rejection code for business-rule refusals, else empty

  std::string to_json() const;
};

inline constexpr const char* kProblemContentType = "application/problem+json";

// The HTTP status and problem for an engine error (e.g. kConflict -> 409 conflict,
// kUnavailable -> 503, kInvalidArgument -> 400).
Problem problem_for(const Error& error);

}  // namespace deedkit::service
