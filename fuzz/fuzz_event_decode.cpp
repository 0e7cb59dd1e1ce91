// Fuzz target: decoding stored events, and folding what decodes.
//
// Each input is a decider choice and a list of stored events (see event_records.hpp): type
// names known, foreign or made up, any schema version, any payload. The codecs are set up as
// an application with some history would be: AssetRegistered at schema version 3 behind two
// upcasters, AssetArchived at version 2 with its upcaster missing, LeaseDrafted at version 2
// behind an upcaster that can refuse its input. For every record:
//
//  - decode succeeds, or fails with kDataLoss naming the stream, the version and the type.
//    Unknown types and schema versions outside 1..current always fail.
//  - a decoded event is the type it was stored as; it re-encodes at the current schema
//    version and decodes again to the same bytes; the typed and untyped decode agree.
//  - the decider's evolve folds every decoded event, in any order, without throwing, and the
//    folded state survives the snapshot round trip (deterministic bytes, parsed back).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "event_records.hpp"
#include "fuzz_property.hpp"
#include "json_oracle.hpp"

namespace {

using deedkit::ErrorCode;
using deedkit::Result;
using deedkit::fuzz::require;
using deedkit::realestate::AssetDecider;
using deedkit::realestate::LeaseDecider;
namespace v1 = deedkit::realestate::v1;

constexpr std::string_view kAssetRegistered = "deedkit.realestate.v1.AssetRegistered";
constexpr std::string_view kAssetArchived = "deedkit.realestate.v1.AssetArchived";
constexpr std::string_view kLeaseDrafted = "deedkit.realestate.v1.LeaseDrafted";

// Parses `payload` as M for an upcaster; kInvalidArgument when it does not parse.
template <typename M>
Result<M> parse_as(std::string_view payload) {
  M message;
  if (!message.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return deedkit::fail(ErrorCode::kInvalidArgument,
                         "not a " + M::descriptor()->full_name() + " payload");
  }
  return message;
}

// Version 1 stored the currency as the client sent it; version 2 is upper case.
Result<std::string> registered_v1_to_v2(std::string_view payload) {
  auto registered = parse_as<v1::AssetRegistered>(payload);
  if (!registered) return std::unexpected(registered.error());
  std::string currency = registered->valuation().currency();
  for (char& c : currency) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  registered->mutable_valuation()->set_currency(currency);
  return deedkit::deterministic_bytes(*registered);
}

// Version 2 had no kind: every asset was land.
Result<std::string> registered_v2_to_v3(std::string_view payload) {
  auto registered = parse_as<v1::AssetRegistered>(payload);
  if (!registered) return std::unexpected(registered.error());
  if (registered->kind() == v1::KIND_UNSPECIFIED) registered->set_kind(v1::LAND);
  return deedkit::deterministic_bytes(*registered);
}

// Version 1 wrote dates as YYYYMMDD; an eight-digit date gets its dashes, anything else is
// a payload this step cannot vouch for.
Result<std::string> drafted_v1_to_v2(std::string_view payload) {
  auto drafted = parse_as<v1::LeaseDrafted>(payload);
  if (!drafted) return std::unexpected(drafted.error());
  for (std::string* date : {drafted->mutable_start_date(), drafted->mutable_end_date()}) {
    if (date->size() != 8) {
      return deedkit::fail(ErrorCode::kInvalidArgument, "v1 date '" + *date + "' is not YYYYMMDD");
    }
    *date = date->substr(0, 4) + "-" + date->substr(4, 2) + "-" + date->substr(6, 2);
  }
  return deedkit::deterministic_bytes(*drafted);
}

template <typename Event>
struct Codec {
  deedkit::EventCodec<Event> codec;
  std::map<std::string, int, std::less<>> current_versions;

  int current(std::string_view event_type) const {
    const auto found = current_versions.find(event_type);
    return found == current_versions.end() ? 1 : found->second;
  }
};

Codec<v1::AssetEvent> make_asset_codec() {
  Codec<v1::AssetEvent> built;
  built.codec.set_schema_version(std::string(kAssetRegistered), 3);
  built.codec.add_upcaster(std::string(kAssetRegistered), 1, registered_v1_to_v2);
  built.codec.add_upcaster(std::string(kAssetRegistered), 2, registered_v2_to_v3);
  // No upcaster from 1: a stored version 1 is a gap this build cannot bridge.
  built.codec.set_schema_version(std::string(kAssetArchived), 2);
  built.current_versions = {{std::string(kAssetRegistered), 3}, {std::string(kAssetArchived), 2}};
  return built;
}

Codec<v1::LeaseEvent> make_lease_codec() {
  Codec<v1::LeaseEvent> built;
  built.codec.set_schema_version(std::string(kLeaseDrafted), 2);
  built.codec.add_upcaster(std::string(kLeaseDrafted), 1, drafted_v1_to_v2);
  built.current_versions = {{std::string(kLeaseDrafted), 2}};
  return built;
}

template <typename D>
void check_decoded(const Codec<typename D::Event>& setup, const deedkit::StoredEventRef& where,
                   const deedkit::fuzz::EventRecord& record, const typename D::Event& event) {
  const auto& codec = setup.codec;
  const int current = setup.current(record.event_type);
  require(codec.knows(record.event_type), "only known types decode", record.event_type);
  require(record.schema_version >= 1 && record.schema_version <= current,
          "only schema versions 1..current decode", std::to_string(record.schema_version));

  const auto* oneof = D::Event::descriptor()->oneof_decl(0);
  const auto* set = event.GetReflection()->GetOneofFieldDescriptor(event, oneof);
  require(set != nullptr && set->message_type()->full_name() == record.event_type,
          "a decoded event is the type it was stored as", record.event_type);

  const auto typed = codec.decode(where, record.event_type, record.schema_version,
                                  record.payload);
  require(typed.has_value() &&
              deedkit::deterministic_bytes(*typed) == deedkit::deterministic_bytes(event),
          "the typed and untyped decode agree", record.event_type);

  const auto encoded = codec.encode(event);
  require(encoded.has_value(), "a decoded event encodes again");
  require(encoded->event_type == record.event_type && encoded->schema_version == current,
          "a decoded event encodes under its type at the current schema version",
          encoded->event_type + " v" + std::to_string(encoded->schema_version));
  const auto again = codec.decode(where, encoded->event_type, encoded->schema_version,
                                  encoded->payload);
  require(again.has_value(), "a re-encoded event decodes", record.event_type);
  const auto reencoded = codec.encode(*again);
  require(reencoded.has_value() && reencoded->payload == encoded->payload,
          "encoding is a fixed point after one decode", record.event_type);
}

void check_failure(const deedkit::Error& error, const deedkit::StoredEventRef& where,
                   const deedkit::fuzz::EventRecord& record) {
  require(error.code == ErrorCode::kDataLoss, "an event that cannot be decoded is kDataLoss",
          error.to_string());
  const std::string location =
      std::string(where.stream_id) + "@" + std::to_string(where.stream_version);
  require(error.message.find(location) != std::string::npos,
          "a decode error names the stream and version", error.message);
  require(error.message.find("'" + record.event_type + "'") != std::string::npos,
          "a decode error names the stored type", error.message);
}

template <typename D>
void replay_stream(const Codec<typename D::Event>& setup, std::string_view records) {
  const std::string stream_id = std::string(D::category()) + "-fuzz-stream";
  deedkit::fuzz::RecordReader reader(records);
  // One wrapper for the whole stream, reused as CommandHandler::load reuses its own.
  typename D::Event event;
  typename D::State state = D::initial_state();

  std::int64_t version = 0;
  while (const auto record = reader.next()) {
    const deedkit::StoredEventRef where{stream_id, ++version};

    const auto decoded = setup.codec.deedkit::EventTypeRegistry::decode(
        where, record->event_type, record->schema_version, record->payload, event);

    if (!decoded) {
      check_failure(decoded.error(), where, *record);
      continue;
    }
    check_decoded<D>(setup, where, *record, event);
    state = D::evolve(std::move(state), event);
  }

  const std::string snapshot = deedkit::deterministic_bytes(state);
  typename D::State restored;
  require(restored.ParseFromString(snapshot), "a folded state survives its snapshot");
  require(deedkit::deterministic_bytes(restored) == snapshot,
          "a snapshot restores the state it was taken of");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (deedkit::fuzz::silence_protobuf_log(), true);
  (void)quiet;
  static const auto assets = make_asset_codec();
  static const auto leases = make_lease_codec();
  if (size == 0) return 0;

  const std::string_view records(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    replay_stream<AssetDecider>(assets, records);
  } else {
    replay_stream<LeaseDecider>(leases, records);
  }
  return 0;
}
