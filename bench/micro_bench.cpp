// In-process costs on the command and read paths (Google Benchmark): Protobuf encode and
// decode of an event, evolve per event, the request fingerprint, JSON to command, and
// problem+json rendering. No database.
//
//   bench_micro [--benchmark_min_time=0.1]

#include <benchmark/benchmark.h>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/idempotency/idempotency.hpp"
#include "deedkit/service/command_catalog.hpp"
#include "deedkit/service/problem.hpp"

namespace {

using namespace deedkit;
namespace v1 = realestate::v1;

const char* kRegisterJson =
    R"({"kind":"HOUSE","name":"Canal house","address":{"line1":"Herengracht 1",)"
    R"("city":"Amsterdam","postal_code":"1015 BA","country":"NL"},)"
    R"("owner_id":"5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10",)"
    R"("valuation":{"amount_minor":25000000,"currency":"EUR"}})";

v1::AssetEvent registered_event() {
  v1::AssetEvent event;
  auto* registered = event.mutable_asset_registered();
  registered->set_asset_id("470fe049-da5f-40df-bc91-b8e0c6225d85");
  registered->set_kind(v1::HOUSE);
  registered->set_name("Canal house");
  registered->mutable_address()->set_city("Amsterdam");
  registered->set_owner_id("5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10");
  registered->mutable_valuation()->set_amount_minor(25000000);
  registered->mutable_valuation()->set_currency("EUR");
  return event;
}

void BM_EncodeEvent(benchmark::State& state) {
  const EventCodec<v1::AssetEvent> codec;
  const auto event = registered_event();
  for (auto _ : state) benchmark::DoNotOptimize(codec.encode(event));
}
BENCHMARK(BM_EncodeEvent);

void BM_DecodeEvent(benchmark::State& state) {
  const EventCodec<v1::AssetEvent> codec;
  const auto encoded = codec.encode(registered_event());
  v1::AssetEvent event;
  for (auto _ : state) {
    benchmark::DoNotOptimize(codec.EventTypeRegistry::decode(
        {"asset-x", 1}, encoded->event_type, encoded->schema_version, encoded->payload, event));
  }
}
BENCHMARK(BM_DecodeEvent);

void BM_DecodeAndEvolve(benchmark::State& state) {
  const EventCodec<v1::AssetEvent> codec;
  v1::AssetEvent reappraised;
  reappraised.mutable_asset_reappraised()->mutable_valuation()->set_amount_minor(1);
  reappraised.mutable_asset_reappraised()->mutable_valuation()->set_currency("EUR");
  const auto encoded = codec.encode(reappraised);
  auto asset = realestate::AssetDecider::evolve(realestate::AssetDecider::initial_state(),
                                                registered_event());
  v1::AssetEvent event;
  for (auto _ : state) {
    (void)codec.EventTypeRegistry::decode({"asset-x", 2}, encoded->event_type, 1,
                                          encoded->payload, event);
    asset = realestate::AssetDecider::evolve(std::move(asset), event);
  }
  benchmark::DoNotOptimize(asset);
}
BENCHMARK(BM_DecodeAndEvolve);

void BM_Fingerprint(benchmark::State& state) {
  v1::RegisterAsset command;
  (void)service::parse_json_message(kRegisterJson, command);
  for (auto _ : state) benchmark::DoNotOptimize(fingerprint_request("RegisterAsset", command));
}
BENCHMARK(BM_Fingerprint);

void BM_JsonToCommand(benchmark::State& state) {
  for (auto _ : state) {
    v1::RegisterAsset command;
    benchmark::DoNotOptimize(service::parse_json_message(kRegisterJson, command));
  }
}
BENCHMARK(BM_JsonToCommand);

void BM_ProblemJson(benchmark::State& state) {
  const service::Problem problem{409, "rejected/asset_already_listed", "The command was rejected",
                                 "asset 470fe049 is already listed at 300000.00 EUR",
                                 "asset_already_listed"};
  for (auto _ : state) benchmark::DoNotOptimize(problem.to_json());
}
BENCHMARK(BM_ProblemJson);

}  // namespace

BENCHMARK_MAIN();
