#include "deedkit/eventstore/binary_params.hpp"

#include <array>
#include <bit>

namespace deedkit {

namespace {

template <typename Int>
std::array<char, sizeof(Int)> big_endian(Int value) {
  std::array<char, sizeof(Int)> bytes{};
  auto unsigned_value = static_cast<std::make_unsigned_t<Int>>(value);
  for (std::size_t i = 0; i < sizeof(Int); ++i) {
    bytes[sizeof(Int) - 1 - i] = static_cast<char>(unsigned_value & 0xff);
    unsigned_value >>= 8;
  }
  return bytes;
}

// PostgreSQL counts timestamps in microseconds from 2000-01-01 00:00:00 UTC.
constexpr std::int64_t kPostgresEpochMicros = 946684800LL * 1000000LL;

}  // namespace

BinaryParams& BinaryParams::text(std::string_view value) {
  values_.emplace_back(value.data(), value.size());
  return *this;
}

BinaryParams& BinaryParams::bytea(std::string_view value) { return text(value); }

BinaryParams& BinaryParams::int4(std::int32_t value) {
  const auto bytes = big_endian(value);
  values_.emplace_back(bytes.data(), bytes.size());
  return *this;
}

BinaryParams& BinaryParams::int8(std::int64_t value) {
  const auto bytes = big_endian(value);
  values_.emplace_back(bytes.data(), bytes.size());
  return *this;
}

BinaryParams& BinaryParams::boolean(bool value) {
  const char byte = value ? 1 : 0;
  values_.emplace_back(&byte, 1);
  return *this;
}

BinaryParams& BinaryParams::uuid(const Uuid& value) {
  values_.emplace_back(value.data, value.size());
  return *this;
}

BinaryParams& BinaryParams::jsonb(std::string_view json_text) {
  // jsonb's binary input is a version byte (1) followed by the JSON text.
  std::string encoded;
  encoded.reserve(json_text.size() + 1);
  encoded.push_back('\x01');
  encoded.append(json_text);
  values_.emplace_back(encoded);
  return *this;
}

BinaryParams& BinaryParams::timestamptz(Timestamp value) {
  return int8(value.time_since_epoch().count() - kPostgresEpochMicros);
}

}  // namespace deedkit
