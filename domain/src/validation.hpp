#pragma once

// Input checks shared by the asset and lease deciders. Each check looks at one value of a
// command, without any state, and returns the rejection for the first thing wrong with it,
// or nullopt when the value is acceptable. Rejection codes are listed in docs/domain.md.

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "deedkit/engine/decider.hpp"
#include "deedkit/realestate/v1/common.pb.h"

namespace deedkit::realestate::internal {

using Check = std::optional<Rejection>;

inline constexpr std::size_t kMaxNameLength = 200;    // names and address parts, in bytes
inline constexpr std::size_t kMaxReasonLength = 1000;  // free-text reasons, in bytes

// The first failed check, in the order given; nullopt when all pass. Every check is
// evaluated (they are cheap and pure), only the first failure is reported.
Check first_failure(std::initializer_list<Check> checks);

// missing_id when `value` is empty, invalid_id when it is not a canonical UUID.
Check check_id(std::string_view field, std::string_view value);

// The lower-case canonical form of a UUID; `value` unchanged when it is not one, so that a
// bad id still reaches decide and is rejected there by name.
std::string canonical_id(std::string_view value);

// non_positive_amount unless amount_minor > 0; invalid_currency unless the currency is three
// upper-case ASCII letters. An unset Money fails the first.
Check check_money(std::string_view field, const v1::Money& money);

// currency_mismatch unless `money` is in `expected_currency`.
Check check_same_currency(std::string_view field, const v1::Money& money,
                          std::string_view expected_currency);

// empty_name when blank; text_too_long beyond kMaxNameLength; control_character when it
// holds a byte below 0x20 or 0x7f.
Check check_name(std::string_view name);

// incomplete_address when line1, city or postal_code is blank; text_too_long when one of
// them exceeds kMaxNameLength; control_character as for names; invalid_country_code unless
// two upper-case ASCII letters.
Check check_address(const v1::Address& address);

// missing_reason when blank; text_too_long beyond kMaxReasonLength; control_character for
// any control byte but line feed, carriage return and tab.
Check check_reason(std::string_view reason);

// A real calendar date written "YYYY-MM-DD" (year 0001 to 9999); nullopt otherwise.
std::optional<std::chrono::year_month_day> parse_date(std::string_view text);

// A calendar month written "YYYY-MM"; nullopt otherwise.
std::optional<std::chrono::year_month> parse_period(std::string_view text);

// invalid_date unless parse_date accepts `text`.
Check check_date(std::string_view field, std::string_view text);

// invalid_period unless parse_period accepts `text`.
Check check_period(std::string_view text);

// "125000 EUR": the amount in minor units and the currency, for reasons.
std::string describe(const v1::Money& money);

// `text` in double quotes for a reason, cut short if long (on a UTF-8 character boundary,
// so valid text stays valid): clients may send anything.
std::string quoted(std::string_view text);

}  // namespace deedkit::realestate::internal
