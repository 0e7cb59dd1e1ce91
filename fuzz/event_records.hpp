#pragma once

// The input format of fuzz_event_decode, shared with the tool that writes its seeds.
//
// An input is one byte choosing the decider (even: asset, odd: lease), then records, each
// one stored event as eventstore would hand it to the codec:
//
//   selector  u8       < 0x80: the type is kKnownTypes[selector % size]
//                      >= 0x80: the type name follows as [length u8][bytes]
//   version   i32 LE   the stored schema version (any value, negative included)
//   length    u16 LE   payload length; a truncated input gives the payload what is left
//   payload   bytes
//
// A record cut short before its payload ends the input.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace deedkit::fuzz {

// Every concrete event type of both deciders, so a record can carry one decider's event to
// the other's codec.
inline constexpr std::array<std::string_view, 12> kKnownTypes = {
    "deedkit.realestate.v1.AssetRegistered",   "deedkit.realestate.v1.AssetDetailsUpdated",
    "deedkit.realestate.v1.AssetReappraised",  "deedkit.realestate.v1.AssetListedForSale",
    "deedkit.realestate.v1.ListingWithdrawn",  "deedkit.realestate.v1.OfferAccepted",
    "deedkit.realestate.v1.SaleCompleted",     "deedkit.realestate.v1.AssetArchived",
    "deedkit.realestate.v1.LeaseDrafted",      "deedkit.realestate.v1.LeaseSigned",
    "deedkit.realestate.v1.RentPaymentRecorded", "deedkit.realestate.v1.LeaseTerminated",
};

struct EventRecord {
  std::string event_type;
  std::int32_t schema_version = 0;
  std::string payload;
};

// Reads records from the front of `input`, consuming what it read.
class RecordReader {
 public:
  explicit RecordReader(std::string_view input) : input_(input) {}

  std::optional<EventRecord> next() {
    EventRecord record;
    const auto selector = byte();
    if (!selector) return std::nullopt;
    if (*selector < 0x80) {
      record.event_type = kKnownTypes[*selector % kKnownTypes.size()];
    } else {
      const auto length = byte();
      if (!length || input_.size() < *length) return std::nullopt;
      record.event_type = input_.substr(0, *length);
      input_.remove_prefix(*length);
    }

    std::uint32_t version = 0;
    for (int shift = 0; shift < 32; shift += 8) {
      const auto part = byte();
      if (!part) return std::nullopt;
      version |= static_cast<std::uint32_t>(*part) << shift;
    }
    record.schema_version = static_cast<std::int32_t>(version);

    const auto low = byte();
    const auto high = byte();
    if (!low || !high) return std::nullopt;
    const std::size_t length = std::min<std::size_t>(*low | (*high << 8), input_.size());
    record.payload = input_.substr(0, length);
    input_.remove_prefix(length);
    return record;
  }

 private:
  std::optional<std::uint8_t> byte() {
    if (input_.empty()) return std::nullopt;
    const auto value = static_cast<std::uint8_t>(input_.front());
    input_.remove_prefix(1);
    return value;
  }

  std::string_view input_;
};

// The inverse of RecordReader::next, for the seed writer.
inline void append_record(std::string& out, const EventRecord& record, bool name_inline) {
  if (name_inline) {
    out.push_back(static_cast<char>(0x80));
    out.push_back(static_cast<char>(record.event_type.size()));
    out += record.event_type;
  } else {
    std::size_t index = 0;
    while (index < kKnownTypes.size() && kKnownTypes[index] != record.event_type) ++index;
    out.push_back(static_cast<char>(index));
  }
  const auto version = static_cast<std::uint32_t>(record.schema_version);
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(version >> shift));
  out.push_back(static_cast<char>(record.payload.size() & 0xff));
  out.push_back(static_cast<char>((record.payload.size() >> 8) & 0xff));
  out += record.payload;
}

}  // namespace deedkit::fuzz
