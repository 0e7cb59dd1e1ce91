#pragma once

// Turns an outbox row into the message the relay publishes: subject, headers and body.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/outbox/relay.hpp"
#include "internal/outbox_row.hpp"

namespace deedkit::internal {

struct OutboundMessage {
  std::string message_id;  // the event id, also the Nats-Msg-Id header
  std::string subject;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The bytes NATS counts against a server's max_payload: the encoded header block plus the
  // body. A server closes the whole connection on a message above its limit, so the relay
  // compares this with the limit before it publishes anything.
  std::size_t wire_size() const;
};

// Replaces every character outside [A-Za-z0-9_-] with '_' (an empty value becomes "_"), so
// any value is exactly one valid subject token.
std::string subject_token(std::string_view value);

// True when the stream subject `pattern` takes every subject `subject` matches (`subject`
// may itself hold wildcards).
bool subject_covers(std::string_view pattern, std::string_view subject);

class MessageBuilder {
 public:
  // Parses the subject template. Fails with kInvalidArgument for an unknown placeholder, an
  // unclosed brace, an empty token, whitespace or a wildcard.
  [[nodiscard]] static Result<MessageBuilder> create(const std::string& subject_template,
                                                     EnvelopeFormat format);

  // Fails with kInternal only if Protobuf cannot render the JSON mapping.
  [[nodiscard]] Result<OutboundMessage> build(const OutboxRow& row) const;

  // Every subject this builder can produce, as a NATS pattern: each placeholder is '*'
  // (a placeholder always fills exactly one token).
  std::string subject_pattern() const;

 private:
  struct Piece {
    enum class Kind { kLiteral, kCategory, kType, kStream } kind;
    std::string literal;
  };

  MessageBuilder(std::vector<Piece> pieces, EnvelopeFormat format)
      : pieces_(std::move(pieces)), format_(format) {}
  std::string subject_for(const OutboxRow& row) const;

  std::vector<Piece> pieces_;
  EnvelopeFormat format_;
};

// One JSON line for the stdout mode: {"subject":..,"headers":{..},"envelope":<JSON mapping>}.
// `message` must have been built with EnvelopeFormat::kJson. No trailing newline.
std::string json_line(const OutboundMessage& message);

}  // namespace deedkit::internal
