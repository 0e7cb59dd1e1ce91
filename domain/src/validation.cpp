#include "validation.hpp"

#include <algorithm>

#include "deedkit/core/ids.hpp"

namespace deedkit::realestate::internal {

namespace {

constexpr std::size_t kMaxQuotedLength = 40;

bool is_blank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

bool is_upper_code(std::string_view text, std::size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// Reads `count` decimal digits starting at `from`; nullopt if any is not a digit.
std::optional<int> read_digits(std::string_view text, std::size_t from, std::size_t count) {
  int value = 0;
  for (std::size_t i = from; i < from + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

Rejection rejection(std::string code, std::string reason) {
  return Rejection{std::move(code), std::move(reason)};
}

// Control characters in a name or an address end up in registries, letters and terminal
// output where they hide or forge text; a reason may hold line breaks and tabs.
enum class Lines { kOne, kMany };

Check check_text(std::string_view field, std::string_view text, std::size_t limit,
                 Lines lines) {
  if (text.size() > limit) {
    return rejection("text_too_long", std::string(field) + " is " +
                                          std::to_string(text.size()) + " bytes long; at most " +
                                          std::to_string(limit) + " are allowed");
  }

  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool layout = lines == Lines::kMany && (c == '\n' || c == '\r' || c == '\t');
    if ((c < 0x20 || c == 0x7f) && !layout) {
      return rejection("control_character", std::string(field) +
                                                " has a control character at byte " +
                                                std::to_string(i));
    }
  }
  return std::nullopt;
}

}  // namespace

Check first_failure(std::initializer_list<Check> checks) {
  for (const Check& check : checks) {
    if (check) return check;
  }
  return std::nullopt;
}

Check check_id(std::string_view field, std::string_view value) {
  if (value.empty()) return rejection("missing_id", std::string(field) + " is required");

  if (!parse_uuid(value)) {
    return rejection("invalid_id", std::string(field) + " " + quoted(value) +
                                       " is not a UUID (8-4-4-4-12 hex digits)");
  }
  return std::nullopt;
}

std::string canonical_id(std::string_view value) {
  const auto id = parse_uuid(value);
  return id ? to_string(*id) : std::string(value);
}

Check check_money(std::string_view field, const v1::Money& money) {
  if (money.amount_minor() <= 0) {
    return rejection("non_positive_amount",
                     std::string(field) + " must be positive, got " +
                         std::to_string(money.amount_minor()) + " minor units");
  }

  if (!is_upper_code(money.currency(), 3)) {
    return rejection("invalid_currency",
                     std::string(field) + " currency " + quoted(money.currency()) +
                         " is not an ISO 4217 code of three upper-case letters");
  }
  return std::nullopt;
}

Check check_same_currency(std::string_view field, const v1::Money& money,
                          std::string_view expected_currency) {
  if (money.currency() == expected_currency) return std::nullopt;
  return rejection("currency_mismatch", std::string(field) + " " + describe(money) +
                                            " is not in " + std::string(expected_currency) +
                                            ", the currency of this record");
}

Check check_name(std::string_view name) {
  if (is_blank(name)) return rejection("empty_name", "name must not be blank");
  return check_text("name", name, kMaxNameLength, Lines::kOne);
}

Check check_address(const v1::Address& address) {
  const std::pair<std::string_view, const std::string&> parts[] = {
      {"address.line1", address.line1()},
      {"address.city", address.city()},
      {"address.postal_code", address.postal_code()},
  };
  for (const auto& [field, value] : parts) {
    if (is_blank(value)) {
      return rejection("incomplete_address", std::string(field) + " must not be blank");
    }
    if (auto bad = check_text(field, value, kMaxNameLength, Lines::kOne)) return bad;
  }

  if (!is_upper_code(address.country(), 2)) {
    return rejection("invalid_country_code",
                     "address.country " + quoted(address.country()) +
                         " is not an ISO 3166-1 alpha-2 code of two upper-case letters");
  }
  return std::nullopt;
}

Check check_reason(std::string_view reason) {
  if (is_blank(reason)) return rejection("missing_reason", "reason must not be blank");
  return check_text("reason", reason, kMaxReasonLength, Lines::kMany);
}

std::optional<std::chrono::year_month_day> parse_date(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;

  const auto year = read_digits(text, 0, 4);
  const auto month = read_digits(text, 5, 2);
  const auto day = read_digits(text, 8, 2);
  if (!year || !month || !day || *year == 0) return std::nullopt;

  // year_month_day::ok() knows month lengths and leap years; out-of-range parts fail it.
  const std::chrono::year_month_day date{std::chrono::year{*year},
                                         std::chrono::month{static_cast<unsigned>(*month)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  return date;
}

std::optional<std::chrono::year_month> parse_period(std::string_view text) {
  if (text.size() != 7 || text[4] != '-') return std::nullopt;

  const auto year = read_digits(text, 0, 4);
  const auto month = read_digits(text, 5, 2);
  if (!year || !month || *year == 0) return std::nullopt;

  const std::chrono::year_month period{std::chrono::year{*year},
                                       std::chrono::month{static_cast<unsigned>(*month)}};
  if (!period.ok()) return std::nullopt;
  return period;
}

Check check_date(std::string_view field, std::string_view text) {
  if (parse_date(text)) return std::nullopt;
  return rejection("invalid_date", std::string(field) + " " + quoted(text) +
                                       " is not a calendar date written YYYY-MM-DD");
}

Check check_period(std::string_view text) {
  if (parse_period(text)) return std::nullopt;
  return rejection("invalid_period",
                   "period " + quoted(text) + " is not a calendar month written YYYY-MM");
}

std::string describe(const v1::Money& money) {
  return std::to_string(money.amount_minor()) + " " + money.currency();
}

std::string quoted(std::string_view text) {
  if (text.size() <= kMaxQuotedLength) return "\"" + std::string(text) + "\"";

  // Never cut inside a UTF-8 character: back off over continuation bytes (10xxxxxx) to the
  // start of the character the limit falls in, and leave that character out.
  std::size_t cut = kMaxQuotedLength;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return "\"" + std::string(text.substr(0, cut)) + "...\"";
}

}  // namespace deedkit::realestate::internal
