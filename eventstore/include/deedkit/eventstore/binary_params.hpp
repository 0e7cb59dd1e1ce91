#pragma once

// Statement parameters in PostgreSQL's binary wire format.
//
// libpqxx 6.4 sends strings as text parameters, which stop at the first NUL byte and need
// escaping for bytea. Sending every parameter in binary keeps payloads byte-exact and avoids
// formatting numbers. Each helper matches one SQL type; the statement must cast each
// placeholder to that type ($1::uuid, $2::int8, ...) so the server knows what to expect.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/binarystring>
#include <pqxx/prepared_statement>

#include "deedkit/core/clock.hpp"
#include "deedkit/core/ids.hpp"

namespace deedkit {

class BinaryParams {
 public:
  BinaryParams& text(std::string_view value);
  BinaryParams& bytea(std::string_view value);
  BinaryParams& int4(std::int32_t value);
  BinaryParams& int8(std::int64_t value);
  BinaryParams& boolean(bool value);
  BinaryParams& uuid(const Uuid& value);
  BinaryParams& jsonb(std::string_view json_text);
  BinaryParams& timestamptz(Timestamp value);

  std::size_t size() const { return values_.size(); }
  // Pass to exec_prepared: tx.exec_prepared(name, params.dynamic()).
  auto dynamic() const { return pqxx::prepare::make_dynamic_params(values_); }

 private:
  std::vector<pqxx::binarystring> values_;
};

}  // namespace deedkit
