#include "internal/message_builder.hpp"

#include <cctype>

#include <google/protobuf/util/json_util.h>

#include "deedkit/core/json_text.hpp"
#include "deedkit/eventstore/types.hpp"
#include "deedkit/outbox/v1/envelope.pb.h"

namespace deedkit::internal {

namespace {

constexpr std::string_view kProtobufContentType =
    "application/protobuf; proto=deedkit.outbox.v1.Envelope";
constexpr std::string_view kJsonContentType = "application/json";

bool allowed_in_literal(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte > 0x20 && byte != 0x7f && c != '*' && c != '>' && c != '{' && c != '}';
}

// Header values end at a line break on the wire, so a stream id or type carrying one (the
// database allows any text) must not reach a header verbatim.
std::string header_value(std::string_view value) {
  std::string safe(value);
  for (char& c : safe) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return safe;
}

Result<void> check_tokens(const std::string& sample, const std::string& subject_template) {
  if (sample.empty() || sample.front() == '.' || sample.back() == '.' ||
      sample.find("..") != std::string::npos) {
    return fail(ErrorCode::kInvalidArgument,
                "subject template '" + subject_template + "' has an empty subject token");
  }
  return {};
}

void set_envelope(const OutboxRow& row, deedkit::outbox::v1::Envelope& envelope) {
  envelope.set_event_id(row.event_id);
  envelope.set_stream_id(row.stream_id);
  envelope.set_stream_version(row.stream_version);
  envelope.set_event_type(row.event_type);
  envelope.set_schema_version(row.schema_version);

  // Floor division keeps nanos in [0, 1e9) for times before 1970 too.
  constexpr std::int64_t kMicrosPerSecond = 1000000;
  std::int64_t seconds = row.recorded_at_micros / kMicrosPerSecond;
  std::int64_t micros = row.recorded_at_micros % kMicrosPerSecond;
  if (micros < 0) {
    micros += kMicrosPerSecond;
    --seconds;
  }
  envelope.mutable_recorded_at()->set_seconds(seconds);
  envelope.mutable_recorded_at()->set_nanos(static_cast<std::int32_t>(micros * 1000));

  envelope.set_correlation_id(row.correlation_id);
  envelope.set_causation_id(row.causation_id);
  envelope.set_principal(row.principal);
  envelope.set_payload(row.payload);
}

}  // namespace

std::size_t OutboundMessage::wire_size() const {
  // "NATS/1.0\r\n", then "Key: Value\r\n" per header, then "\r\n".
  std::size_t header_block = 10 + 2;
  for (const auto& [key, value] : headers) header_block += key.size() + 2 + value.size() + 2;
  return header_block + body.size();
}

std::string subject_token(std::string_view value) {
  if (value.empty()) return "_";
  std::string token(value);
  for (char& c : token) {
    const auto byte = static_cast<unsigned char>(c);
    if (!std::isalnum(byte) && c != '_' && c != '-') c = '_';
  }
  return token;
}

bool subject_covers(std::string_view pattern, std::string_view subject) {
  while (true) {
    const std::size_t pattern_dot = pattern.find('.');
    const std::size_t subject_dot = subject.find('.');
    const std::string_view pattern_token = pattern.substr(0, pattern_dot);
    const std::string_view subject_token = subject.substr(0, subject_dot);
    if (pattern_token == ">") return true;
    if (subject_token == ">") return false;
    if (pattern_token != "*" && (subject_token == "*" || pattern_token != subject_token)) {
      return false;
    }
    if (pattern_dot == std::string_view::npos || subject_dot == std::string_view::npos) {
      return pattern_dot == subject_dot;
    }
    pattern.remove_prefix(pattern_dot + 1);
    subject.remove_prefix(subject_dot + 1);
  }
}

Result<MessageBuilder> MessageBuilder::create(const std::string& subject_template,
                                              EnvelopeFormat format) {
  std::vector<Piece> pieces;
  std::string sample;
  std::size_t i = 0;
  while (i < subject_template.size()) {
    if (subject_template[i] == '{') {
      const std::size_t close = subject_template.find('}', i);
      if (close == std::string::npos) {
        return fail(ErrorCode::kInvalidArgument,
                    "subject template '" + subject_template + "' has an unclosed '{'");
      }
      const std::string name = subject_template.substr(i + 1, close - i - 1);
      Piece::Kind kind;
      if (name == "category") {
        kind = Piece::Kind::kCategory;
      } else if (name == "type") {
        kind = Piece::Kind::kType;
      } else if (name == "stream") {
        kind = Piece::Kind::kStream;
      } else {
        return fail(ErrorCode::kInvalidArgument,
                    "subject template '" + subject_template + "' names an unknown placeholder {" +
                        name + "}; known: {category}, {type}, {stream}");
      }
      pieces.push_back({kind, {}});
      sample += 'x';
      i = close + 1;
      continue;
    }

    if (!allowed_in_literal(subject_template[i])) {
      return fail(ErrorCode::kInvalidArgument,
                  "subject template '" + subject_template +
                      "' contains a space, control character, wildcard or stray brace");
    }
    if (pieces.empty() || pieces.back().kind != Piece::Kind::kLiteral) {
      pieces.push_back({Piece::Kind::kLiteral, {}});
    }
    pieces.back().literal += subject_template[i];
    sample += subject_template[i];
    ++i;
  }

  if (auto tokens = check_tokens(sample, subject_template); !tokens) {
    return std::unexpected(tokens.error());
  }
  return MessageBuilder(std::move(pieces), format);
}

std::string MessageBuilder::subject_pattern() const {
  std::string pattern;
  for (const Piece& piece : pieces_) {
    pattern += piece.kind == Piece::Kind::kLiteral ? piece.literal : std::string("*");
  }
  return pattern;
}

std::string MessageBuilder::subject_for(const OutboxRow& row) const {
  std::string subject;
  for (const Piece& piece : pieces_) {
    switch (piece.kind) {
      case Piece::Kind::kLiteral: subject += piece.literal; break;
      case Piece::Kind::kCategory: subject += subject_token(stream_category(row.stream_id)); break;
      case Piece::Kind::kType: subject += subject_token(row.event_type); break;
      case Piece::Kind::kStream: subject += subject_token(row.stream_id); break;
    }
  }
  return subject;
}

Result<OutboundMessage> MessageBuilder::build(const OutboxRow& row) const {
  deedkit::outbox::v1::Envelope envelope;
  set_envelope(row, envelope);

  OutboundMessage message;
  message.message_id = row.event_id;
  message.subject = subject_for(row);
  if (format_ == EnvelopeFormat::kJson) {
    const auto status = google::protobuf::util::MessageToJsonString(envelope, &message.body);
    if (!status.ok()) {
      return fail(ErrorCode::kInternal, "cannot render the envelope of event " + row.event_id +
                                            " as JSON: " + status.ToString());
    }
  } else {
    envelope.SerializeToString(&message.body);
  }

  message.headers = {
      {"Nats-Msg-Id", row.event_id},
      {"Deedkit-Stream", header_value(row.stream_id)},
      {"Deedkit-Version", std::to_string(row.stream_version)},
      {"Deedkit-Event-Type", header_value(row.event_type)},
      {"Content-Type", std::string(format_ == EnvelopeFormat::kJson ? kJsonContentType
                                                                    : kProtobufContentType)},
  };
  return message;
}

std::string json_line(const OutboundMessage& message) {
  std::string line = "{\"subject\":";
  append_json_string(line, message.subject);
  line += ",\"headers\":{";
  bool first = true;
  for (const auto& [key, value] : message.headers) {
    if (!first) line += ',';
    first = false;
    append_json_string(line, key);
    line += ':';
    append_json_string(line, value);
  }
  line += "},\"envelope\":";
  line += message.body;
  line += '}';
  return line;
}

}  // namespace deedkit::internal
