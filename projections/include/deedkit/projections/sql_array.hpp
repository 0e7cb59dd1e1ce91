#pragma once

// Array parameters for batched projection writes.
//
// A projection writes a whole batch with one statement per table by passing each column as
// an array and expanding them with unnest:
//
//   INSERT INTO {t} (id, name) SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT ...
//
// libpqxx 6.4 has no array parameters, so SqlArray builds PostgreSQL's text form of a
// one-dimensional array ("{...}"), quoting every element so that any text survives intact.
// Pass str() as a text parameter and cast the placeholder to the element's array type.
//
// Not thread-safe; cheap to build and discard per batch.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "deedkit/core/ids.hpp"

namespace deedkit {

class SqlArray {
 public:
  SqlArray() : text_("{") {}

  SqlArray& add(std::string_view value);
  SqlArray& add(const char* value) { return add(std::string_view(value)); }
  SqlArray& add(std::int64_t value);
  SqlArray& add(const Uuid& value);
  SqlArray& add_null();

  // A value, or NULL when empty.
  template <typename T>
  SqlArray& add(const std::optional<T>& value) {
    return value ? add(*value) : add_null();
  }

  std::size_t size() const { return size_; }

  // The array literal, e.g. {"a","b c",NULL}.
  std::string str() const { return text_ + "}"; }

 private:
  void separate();

  std::string text_;
  std::size_t size_ = 0;
};

}  // namespace deedkit
