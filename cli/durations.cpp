#include "durations.hpp"

#include <cctype>

namespace deedkit::cli {

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  if (digits == 0 || digits > 12) return std::nullopt;
  const long long value = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  if (unit == "ms") return std::chrono::milliseconds(value);
  if (unit == "s") return std::chrono::seconds(value);
  if (unit == "m") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  if (unit.empty() && value == 0) return std::chrono::milliseconds(0);
  return std::nullopt;
}

const CLI::Validator& duration_validator() {
  static const CLI::Validator validator(
      [](std::string& text) {
        return parse_duration(text) ? std::string()
                                    : "'" + text + "' is not a duration like 500ms, 5s, 2m or 1h";
      },
      "DURATION");
  return validator;
}

std::chrono::milliseconds duration(const std::string& text) { return *parse_duration(text); }

}  // namespace deedkit::cli
