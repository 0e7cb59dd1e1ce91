// Fuzz target: the small parsers and writers that guard the HTTP edge.
//
//  - validate_idempotency_key: accepts exactly the keys of 1..255 bytes, each in 0x20..0x7e;
//    every refusal is kInvalidArgument.
//  - parse_token_lines (load_token_file's parser): agrees with an independent reading of the
//    documented format, names the first bad line, and what it accepts re-renders to text that
//    parses to the same map.
//  - json_string (core/json_text.hpp): whatever the bytes, the result is valid JSON, and
//    UTF-8 text reads back unchanged. Principals from token files reach the events' jsonb
//    metadata through it, and client input reaches problem documents.
//  - parse_uuid: accepts exactly the canonical 8-4-4-4-12 hex form and round-trips with
//    to_string; any 16 bytes survive to_string -> parse_uuid unchanged.
//
// The whole input is tried as a key, a token file and an id; so is each of its lines, which
// gives short, realistic values a chance inside longer inputs.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "deedkit/core/ids.hpp"
#include "deedkit/core/json_text.hpp"
#include "deedkit/idempotency/idempotency.hpp"
#include "deedkit/service/http_service.hpp"
#include "fuzz_property.hpp"
#include "json_oracle.hpp"

namespace {

using deedkit::fuzz::require;

constexpr std::string_view kOrigin = "fuzz-tokens.txt";

bool is_token_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t from = 0;
  for (std::size_t at = text.find(separator); at != std::string_view::npos;
       at = text.find(separator, from)) {
    parts.push_back(text.substr(from, at - from));
    from = at + 1;
  }
  parts.push_back(text.substr(from));
  return parts;
}

void check_idempotency_key(std::string_view key) {
  const bool printable = std::all_of(key.begin(), key.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7e;
  });
  const bool acceptable = !key.empty() && key.size() <= 255 && printable;

  const auto valid = deedkit::validate_idempotency_key(key);

  require(valid.has_value() == acceptable,
          "validate_idempotency_key accepts exactly 1..255 bytes of 0x20..0x7e",
          valid ? "accepted" : valid.error().message);
  if (!valid) {
    require(valid.error().code == deedkit::ErrorCode::kInvalidArgument,
            "a refused idempotency key is kInvalidArgument", valid.error().message);
  }
}

// What the documented format says the text means: per line, skip it when it is empty, only
// whitespace or starts with '#'; otherwise it must be exactly two whitespace-separated
// fields. nullopt carries the 1-based number of the first malformed line in `bad_line`.
std::optional<std::map<std::string, std::string>> expected_tokens(std::string_view text,
                                                                  int& bad_line) {
  std::map<std::string, std::string> tokens;
  auto lines = split(text, '\n');
  // getline does not report the empty remainder after a final newline as a line.
  if (lines.back().empty()) lines.pop_back();

  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty() || line[0] == '#') continue;

    std::vector<std::string> fields;
    std::size_t at = 0;
    while (at < line.size()) {
      while (at < line.size() && is_token_space(line[at])) ++at;
      const std::size_t start = at;
      while (at < line.size() && !is_token_space(line[at])) ++at;
      if (at > start) fields.emplace_back(line.substr(start, at - start));
    }
    if (fields.empty()) continue;
    if (fields.size() != 2) {
      bad_line = static_cast<int>(i) + 1;
      return std::nullopt;
    }
    tokens[fields[0]] = fields[1];
  }
  return tokens;
}

void check_json_string(std::string_view text) {
  const std::string json = deedkit::json_string(text);

  const auto read = deedkit::fuzz::read_json(json);

  require(read && read->kind_case() == google::protobuf::Value::kStringValue,
          "json_string writes a valid JSON string for any bytes", json);
  if (deedkit::fuzz::is_utf8(text)) {
    require(read->string_value() == text, "json_string keeps UTF-8 text unchanged", json);
  }
}

void check_token_file(std::string_view text) {
  int bad_line = 0;
  const auto expected = expected_tokens(text, bad_line);

  const auto parsed = deedkit::service::parse_token_lines(text, kOrigin);

  require(parsed.has_value() == expected.has_value(),
          "parse_token_lines accepts exactly the files of 'token principal' lines",
          parsed ? "accepted" : parsed.error().message);
  if (!parsed) {
    require(parsed.error().code == deedkit::ErrorCode::kInvalidArgument,
            "a malformed token file is kInvalidArgument", parsed.error().message);
    const std::string where = std::string(kOrigin) + ":" + std::to_string(bad_line) + ":";
    require(parsed.error().message.starts_with(where),
            "a malformed token file is reported as <origin>:<first bad line>:",
            parsed.error().message);
    return;
  }
  require(*parsed == *expected, "parse_token_lines maps each token to its principal");
  for (const auto& [token, principal] : *parsed) check_json_string(principal);

  // What was accepted must survive being written back out, as an operator's tool would.
  std::string rendered = "# rendered\n\n";
  for (const auto& [token, principal] : *parsed) rendered += token + " " + principal + "\n";
  const auto reparsed = deedkit::service::parse_token_lines(rendered, kOrigin);
  require(reparsed.has_value() && *reparsed == *parsed,
          "accepted tokens re-render to a file that parses to the same map");
}

void check_uuid_text(std::string_view text) {
  bool canonical = text.size() == 36;
  for (std::size_t i = 0; canonical && i < text.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    canonical = dash_position ? text[i] == '-' : is_hex(text[i]);
  }

  const auto id = deedkit::parse_uuid(text);

  require(id.has_value() == canonical, "parse_uuid accepts exactly 8-4-4-4-12 hex digits",
          std::string(text.substr(0, 64)));
  if (!id) return;
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c + 32) : c; });
  require(deedkit::to_string(*id) == lower, "to_string gives the lower-case form parsed",
          lower);
  require(deedkit::parse_uuid(deedkit::to_string(*id)) == id,
          "parse_uuid(to_string(id)) == id");
}

void check_uuid_bytes(const std::uint8_t* data, std::size_t size) {
  if (size < 16) return;
  deedkit::Uuid id{};
  std::copy(data, data + 16, id.begin());

  const std::string text = deedkit::to_string(id);

  require(text.size() == 36, "to_string gives 36 characters", text);
  require(deedkit::parse_uuid(text) == id, "any 16 bytes round-trip through to_string", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (deedkit::fuzz::silence_protobuf_log(), true);
  (void)quiet;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  check_idempotency_key(input);
  check_json_string(input);
  check_token_file(input);
  check_uuid_text(input);
  check_uuid_bytes(data, size);
  for (const std::string_view line : split(input, '\n')) {
    check_idempotency_key(line);
    check_uuid_text(line);
  }
  return 0;
}
