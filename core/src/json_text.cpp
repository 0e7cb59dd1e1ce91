#include "deedkit/core/json_text.hpp"

#include <cstdio>

namespace deedkit {

namespace {

// The length of the well-formed UTF-8 sequence that starts at value[at], or 0 when none
// does. Well-formed per RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF,
// which is what the second byte's range after E0, ED, F0 and F4 rules out.
std::size_t utf8_sequence_length(std::string_view value, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(value[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;

  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) second_min = 0xa0;
    if (lead == 0xed) second_max = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) second_min = 0x90;
    if (lead == 0xf4) second_max = 0x8f;
  } else {
    return 0;
  }

  if (value.size() - at < length) return 0;
  if (byte(at + 1) < second_min || byte(at + 1) > second_max) return 0;
  for (std::size_t i = at + 2; i < at + length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
  }
  return length;
}

}  // namespace

void append_json_string(std::string& out, std::string_view value) {
  out.push_back('"');
  for (std::size_t at = 0; at < value.size(); ++at) {
    const char c = value[at];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const std::size_t length = utf8_sequence_length(value, at);
      if (length == 0) {
        out += "\\ufffd";
      } else {
        out.append(value.substr(at, length));
        at += length - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace deedkit
