#include "deedkit/projections/sql_array.hpp"

namespace deedkit {

void SqlArray::separate() {
  if (size_ > 0) text_ += ',';
  ++size_;
}

SqlArray& SqlArray::add(std::string_view value) {
  separate();
  // Quoted, with quote and backslash escaped, any text reads back as itself: commas,
  // braces, blanks and the word NULL included.
  text_ += '"';
  for (const char c : value) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
  return *this;
}

SqlArray& SqlArray::add(std::int64_t value) {
  separate();
  text_ += std::to_string(value);
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
