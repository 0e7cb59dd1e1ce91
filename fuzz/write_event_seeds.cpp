// Writes the seed corpus of fuzz_event_decode: real encoded events of both deciders, and the
// ways stored events go wrong (old schema versions, missing upcasters, unknown and foreign
// types, truncated and corrupted payloads). Run it after an event message changes:
//
//   fuzz_write_event_seeds fuzz/corpus/fuzz_event_decode
//
// The files are committed; the corpus replay test reads them from the source tree.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "deedkit/engine/event_codec.hpp"
#include "deedkit/realestate/v1/asset.pb.h"
#include "deedkit/realestate/v1/lease.pb.h"
#include "event_records.hpp"

namespace {

using deedkit::fuzz::EventRecord;
namespace v1 = deedkit::realestate::v1;

constexpr char kAsset = 0;
constexpr char kLease = 1;
const std::string kAssetId = "5f0c6c1e-27a4-4b8e-9d1a-0c3f4e2b7a10";
const std::string kOwnerId = "0e9b3c55-8d1f-4a62-b7e0-6f2d9a4c1b33";
const std::string kBuyerId = "a47d2e90-13c6-4f58-8e2b-9b0c5d7f6e21";
const std::string kLeaseId = "c2e8f4a1-6b3d-4e97-a05c-1d8f2b6e9c47";
const std::string kTenantId = "7b1a9e3c-4d5f-4c28-b6e1-2a9d0f8c3e54";

v1::Money money(long long amount_minor, const std::string& currency = "EUR") {
  v1::Money value;
  value.set_amount_minor(amount_minor);
  value.set_currency(currency);
  return value;
}

EventRecord record(const google::protobuf::Message& event, int version) {
  return {event.GetDescriptor()->full_name(), version, deedkit::deterministic_bytes(event)};
}

v1::AssetRegistered registered(const std::string& currency = "EUR") {
  v1::AssetRegistered event;
  event.set_asset_id(kAssetId);
  event.set_kind(v1::HOUSE);
  event.set_name("Canal house");
  event.mutable_address()->set_line1("Herengracht 1");
  event.mutable_address()->set_city("Amsterdam");
  event.mutable_address()->set_postal_code("1015 BA");
  event.mutable_address()->set_country("NL");
  event.set_owner_id(kOwnerId);
  *event.mutable_valuation() = money(90'000'000, currency);
  return event;
}

std::vector<EventRecord> asset_lifecycle() {
  std::vector<EventRecord> records{record(registered(), 3)};

  v1::AssetReappraised reappraised;
  reappraised.set_asset_id(kAssetId);
  *reappraised.mutable_previous_valuation() = money(90'000'000);
  *reappraised.mutable_valuation() = money(92'000'000);
  records.push_back(record(reappraised, 1));

  v1::AssetListedForSale listed;
  listed.set_asset_id(kAssetId);
  listed.set_owner_id(kOwnerId);
  *listed.mutable_asking_price() = money(95'000'000);
  records.push_back(record(listed, 1));

  v1::OfferAccepted accepted;
  accepted.set_asset_id(kAssetId);
  accepted.set_seller_id(kOwnerId);
  accepted.set_buyer_id(kBuyerId);
  *accepted.mutable_price() = money(93'000'000);
  *accepted.mutable_asking_price() = money(95'000'000);
  records.push_back(record(accepted, 1));

  v1::SaleCompleted sold;
  sold.set_asset_id(kAssetId);
  sold.set_previous_owner_id(kOwnerId);
  sold.set_new_owner_id(kBuyerId);
  *sold.mutable_price() = money(93'000'000);
  records.push_back(record(sold, 1));

  v1::AssetArchived archived;
  archived.set_asset_id(kAssetId);
  archived.set_owner_id(kBuyerId);
  archived.set_reason("demolished");
  archived.set_previous_status(v1::SOLD);
  records.push_back(record(archived, 2));
  return records;
}

v1::LeaseDrafted drafted(const std::string& start, const std::string& end) {
  v1::LeaseDrafted event;
  event.set_lease_id(kLeaseId);
  event.set_asset_id(kAssetId);
  event.set_tenant_id(kTenantId);
  *event.mutable_monthly_rent() = money(150'000);
  event.set_start_date(start);
  event.set_end_date(end);
  return event;
}

std::vector<EventRecord> lease_lifecycle() {
  std::vector<EventRecord> records{record(drafted("2025-01-15", "2026-01-14"), 2)};

  v1::LeaseSigned signed_lease;
  signed_lease.set_lease_id(kLeaseId);
  signed_lease.set_asset_id(kAssetId);
  signed_lease.set_tenant_id(kTenantId);
  *signed_lease.mutable_monthly_rent() = money(150'000);
  signed_lease.set_start_date("2025-01-15");
  signed_lease.set_end_date("2026-01-14");
  records.push_back(record(signed_lease, 1));

  v1::RentPaymentRecorded paid;
  paid.set_lease_id(kLeaseId);
  paid.set_asset_id(kAssetId);
  paid.set_tenant_id(kTenantId);
  paid.set_period("2025-02");
  *paid.mutable_amount() = money(150'000);
  records.push_back(record(paid, 1));

  v1::LeaseTerminated terminated;
  terminated.set_lease_id(kLeaseId);
  terminated.set_asset_id(kAssetId);
  terminated.set_tenant_id(kTenantId);
  terminated.set_date("2025-06-30");
  terminated.set_reason("tenant moved abroad");
  records.push_back(record(terminated, 1));
  return records;
}

class SeedWriter {
 public:
  explicit SeedWriter(std::filesystem::path directory) : directory_(std::move(directory)) {}

  void write(const std::string& name, char decider, const std::vector<EventRecord>& records,
             bool names_inline = false) {
    std::string bytes(1, decider);
    for (const auto& each : records) deedkit::fuzz::append_record(bytes, each, names_inline);
    std::ofstream(directory_ / name, std::ios::binary) << bytes;
    ++written_;
  }

  int written() const { return written_; }

 private:
  std::filesystem::path directory_;
  int written_ = 0;
};

void write_asset_seeds(SeedWriter& seeds) {
  const auto lifecycle = asset_lifecycle();
  seeds.write("asset_lifecycle", kAsset, lifecycle);
  seeds.write("asset_lifecycle_named_inline", kAsset, lifecycle, true);
  seeds.write("asset_registered_v1_lowercase_currency", kAsset,
              {record(registered("eur"), 1)});
  seeds.write("asset_registered_v2", kAsset, {record(registered(), 2)});
  seeds.write("asset_registered_v1_not_protobuf", kAsset,
              {{std::string(deedkit::fuzz::kKnownTypes[0]), 1, "\xff\xff\xff\xff"}});
  seeds.write("asset_archived_v1_no_upcaster", kAsset, {{lifecycle.back().event_type, 1,
                                                         lifecycle.back().payload}});

  for (const int version : {0, -1, 4, 99, 2147483647, -2147483647 - 1}) {
    EventRecord stale = lifecycle.front();
    stale.schema_version = version;
    seeds.write("asset_registered_version_" + std::to_string(version), kAsset, {stale});
  }

  EventRecord unknown = lifecycle[1];
  unknown.event_type = "deedkit.realestate.v1.AssetDemolished";
  seeds.write("asset_unknown_type", kAsset, {unknown}, true);
  unknown.event_type = "";
  seeds.write("asset_empty_type", kAsset, {unknown}, true);
  seeds.write("asset_stream_with_lease_event", kAsset, {lifecycle[0], lease_lifecycle()[0]});

  EventRecord truncated = lifecycle.front();
  truncated.payload.resize(truncated.payload.size() / 2);
  seeds.write("asset_registered_truncated", kAsset, {truncated});
  EventRecord flipped = lifecycle.front();
  flipped.payload[1] = static_cast<char>(flipped.payload[1] ^ 0x80);
  seeds.write("asset_registered_bit_flipped", kAsset, {flipped});
  EventRecord empty = lifecycle[4];
  empty.payload.clear();
  seeds.write("asset_sale_completed_empty_payload", kAsset, {empty});
  // name (field 3) as two bytes that are not UTF-8: proto3 strings refuse them on parse.
  seeds.write("asset_registered_invalid_utf8", kAsset,
              {{lifecycle.front().event_type, 3, std::string("\x1a\x02\xff\xfe", 4)}});
  // field 1 with wire type 7, which does not exist.
  seeds.write("asset_registered_bad_wire_type", kAsset,
              {{lifecycle.front().event_type, 3, std::string("\x0f\x01", 2)}});
  seeds.write("asset_listed_before_registered", kAsset, {lifecycle[2], lifecycle[0]});
}

void write_lease_seeds(SeedWriter& seeds) {
  const auto lifecycle = lease_lifecycle();
  seeds.write("lease_lifecycle", kLease, lifecycle);
  seeds.write("lease_drafted_v1_compact_dates", kLease,
              {record(drafted("20250115", "20260114"), 1)});
  seeds.write("lease_drafted_v1_dashed_dates_refused", kLease,
              {record(drafted("2025-01-15", "2026-01-14"), 1)});
  seeds.write("lease_terminated_before_drafted", kLease, {lifecycle[3], lifecycle[0]});
  seeds.write("lease_payment_twice", kLease,
              {lifecycle[0], lifecycle[1], lifecycle[2], lifecycle[2]});
  seeds.write("lease_stream_with_asset_event", kLease, {lifecycle[0], asset_lifecycle()[0]});

  EventRecord varint = lifecycle[2];
  varint.payload = std::string("\x2a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13);
  seeds.write("lease_payment_amount_huge_varint", kLease, {varint});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::create_directories(argv[1]);
  SeedWriter seeds(argv[1]);

  write_asset_seeds(seeds);
  write_lease_seeds(seeds);
  std::printf("wrote %d seeds to %s\n", seeds.written(), argv[1]);
  return 0;
}
