#pragma once

// The one error model of deedkit. Every module API that can fail returns
// Result<T> = std::expected<T, Error>. The code set is closed so callers can switch on it; the
// message is for people and names the stream, id or field that is wrong.
//
// A domain rejection (a business rule said no) is not an Error: deciders return it as a value.

#include <expected>
#include <string>
#include <string_view>

namespace deedkit {

enum class ErrorCode {
  kInvalidArgument,   // the caller's input is malformed; retrying the same input cannot help
  kNotFound,          // the stream, aggregate or row named does not exist
  kConflict,          // optimistic concurrency: the expected version did not match
  kAlreadyExists,     // a unique thing (id, key) is taken by something else
  kFailedPrecondition,// the system is in a state where this cannot run (e.g. changed migration)
  kPermissionDenied,  // the database role or the caller's principal may not do this
  kDataLoss,          // stored data cannot be decoded: a corrupt row, an unknown event type
  kUnavailable,       // the database or broker cannot be reached; safe to retry later
  kAborted,           // the transaction was rolled back (deadlock, serialization); retry
  kOutcomeUnknown,    // the commit was sent but its result was lost; never retry blindly
  kDeadlineExceeded,  // a bounded wait ran out
  kInternal,          // a bug or an unexpected server error
};

// Returns a stable lower-case name such as "conflict", used in logs and problem documents.
std::string_view error_code_name(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;

  // "conflict: stream asset-... expected version 3, actual 4"
  std::string to_string() const;
};

template <typename T>
using Result = std::expected<T, Error>;

// Shorthand for the failure branch: `return fail(ErrorCode::kNotFound, "stream x")`.
inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace deedkit
