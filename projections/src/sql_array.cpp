#include "deedkit/projections/sql_array.hpp"

#include <charconv>
#include <iterator>

namespace deedkit {

void SqlArray::separate() {
  if (size_ > 0) text_ += ',';
  ++size_;
}

SqlArray& SqlArray::add(std::string_view value) {
  separate();
  // Quoted, with quote and backslash escaped, any text reads back as itself: commas,
  // braces, blanks and the word NULL included.
  // Most values (ids, codes, amounts) have neither and are copied whole.
  text_ += '"';
  std::size_t copied = 0;
  for (std::size_t at = value.find_first_of("\"\\"); at != std::string_view::npos;
       at = value.find_first_of("\"\\", at + 1)) {
    text_.append(value.substr(copied, at - copied));
    text_ += '\\';
    copied = at;
  }
  text_.append(value.substr(copied));
  text_ += '"';
  return *this;
}

SqlArray& SqlArray::add(std::int64_t value) {
  separate();
  char digits[24];
  const auto [end, error] = std::to_chars(std::begin(digits), std::end(digits), value);
  text_.append(digits, end);
  return *this;
}

SqlArray& SqlArray::add(const Uuid& value) {
  separate();
  text_ += to_string(value);
  return *this;
}

SqlArray& SqlArray::add_null() {
  separate();
  text_ += "NULL";
  return *this;
}

}  // namespace deedkit
