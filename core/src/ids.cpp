#include "deedkit/core/ids.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

namespace deedkit {

Uuid new_uuid() {
  thread_local boost::uuids::random_generator generator;
  return generator();
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<Uuid> parse_uuid(std::string_view text) {
  // Strict on purpose: Boost's string_generator accepts braces and missing dashes, and
  // throws on garbage; ids arrive from clients and must have exactly one spelling.
  if (text.size() != 36) return std::nullopt;

  Uuid id{};
  std::size_t byte = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    const int high = hex_value(text[i]);
    const int low = hex_value(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    id.data[byte++] = static_cast<std::uint8_t>(high * 16 + low);
    i += 2;
  }
  return id;
}

std::string to_string(const Uuid& id) { return boost::uuids::to_string(id); }

}  // namespace deedkit
