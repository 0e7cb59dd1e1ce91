// End-to-end command workloads against a real PostgreSQL, each next to its floor in the
// same run (ratios hold on a shared machine; absolute numbers drift):
//
//   W1-full  idempotent RegisterAsset as the service runs it: plan, then the claim, event,
//            outbox row and stored response in one statement. Floor: the same three rows by
//            one hand-written statement (one round trip). Beside it, the transactional path
//            (with_idempotency: BEGIN, claim, append, outbox, response, COMMIT).
//   replay   the same keys again: the stored response comes back.
//   W2       ReappraiseAsset on streams of 20 events: load, decide, append at the exact
//            version. Floor: read the 20 rows, insert one.
//   W3       load one stream of 10,000 events with and without a snapshot. Floor: fetch the
//            same rows without decoding.
//
//   bench_commands --database URI [--seconds S] [--clients N] [--json FILE] [--quick]

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <pqxx/binarystring>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/eventstore/binary_params.hpp"
#include "deedkit/eventstore/migrations.hpp"
#include "deedkit/service/command_catalog.hpp"
#include "load_driver.hpp"

namespace {

using namespace deedkit;
namespace v1 = realestate::v1;
using AssetHandler = CommandHandler<realestate::AssetDecider>;

struct Flags {
  std::string database;
  std::string json_path;
  double seconds = 3;
  bool quick = false;
  std::vector<int> clients = {1, 4, 16};
};

std::string register_json() {
  return R"({"kind":"HOUSE","name":"Canal house with a long enough name to look real",)"
         R"("address":{"line1":"Herengracht 1","city":"Amsterdam","postal_code":"1015 BA",)"
         R"("country":"NL"},"owner_id":"5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10",)"
         R"("valuation":{"amount_minor":25000000,"currency":"EUR"}})";
}

// The floor of W1-full: key with its response, event and outbox row in one statement.
bool full_floor(ConnectionPool& pool, const std::string& payload) {
  auto lease = pool.acquire();
  if (!lease) return false;
  lease->ensure_prepared(
      "bench_full_floor",
      "WITH claim AS (INSERT INTO deedkit.idempotency_keys (scope, idempotency_key, "
      "command_name, fingerprint, fingerprint_version, response_status, response_headers, "
      "response_body) VALUES ('bench', $1::text, 'RegisterAsset', $2::text, 1, 201, "
      "ARRAY['Location: /v1/assets/x'], $3::bytea)), "
      "event AS (INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, "
      "payload, metadata) VALUES ($4::text, 1, $5::uuid, 'deedkit.realestate.v1.AssetRegistered', "
      "$6::bytea, $7::jsonb)) "
      "INSERT INTO deedkit.outbox (event_id, stream_id, stream_version, event_type, "
      "schema_version, payload, metadata) VALUES ($5::uuid, $4::text, 1, "
      "'deedkit.realestate.v1.AssetRegistered', 1, $6::bytea, $7::jsonb)");
  const Uuid event_id = new_uuid();
  BinaryParams params;
  params.text("floor-" + to_string(new_uuid()))
      .text(std::string(64, 'f'))
      .bytea(R"({"asset_id":"x","stream_id":"asset-x","version":1})")
      .text("floorasset-" + to_string(new_uuid()))
      .uuid(event_id)
      .bytea(payload)
      .jsonb(R"({"principal":"bench"})");
  try {
    pqxx::nontransaction tx(lease->connection());
    tx.exec_prepared("bench_full_floor", params.dynamic());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void report(const Flags& flags, const bench::LoadResult& result, const bench::LoadResult* floor) {
  bench::print_row(result, floor);
  if (!flags.json_path.empty()) bench::append_json(flags.json_path, result, floor);
}

void run_w1_full(const Flags& flags, ConnectionPool& pool, const service::CommandCatalog& catalog,
                 int clients) {
  const auto duration = std::chrono::milliseconds(static_cast<long>(flags.seconds * 1000));
  const auto* entry = catalog.find("RegisterAsset");
  const std::string payload = std::string(300, 'p');

  const auto floor = bench::run_load("W1-full floor: 1 stmt", clients, duration,
                                     [&](int) { return full_floor(pool, payload); });

  // What the service runs: plan, then one statement. The request is parsed once (the HTTP
  // layer's work, not the command's); each plan registers a new asset with a new id.
  const auto parsed = entry->parse(register_json());
  if (!parsed) std::abort();
  std::vector<std::vector<std::string>> keys(clients);
  const auto full = bench::run_load("W1-full idempotent", clients, duration, [&](int client) {
    const std::string key = "bench-" + to_string(new_uuid());
    auto result = with_idempotency_in_one_statement(
        pool, {"bench", key}, "RegisterAsset", parsed->fingerprint,
        [&](UnitOfWork& reads) { return parsed->plan(reads, CommandContext{}); });
    if (!result) return false;
    keys[client].push_back(key);
    return true;
  });

  // The general path, for a command that writes more than one stream's events.
  const auto in_transaction =
      bench::run_load("W1-full idempotent, transaction", clients, duration, [&](int) {
        auto result = with_idempotency(
            pool, {"bench", "bench-" + to_string(new_uuid())}, "RegisterAsset",
            parsed->fingerprint,
            [&](UnitOfWork& unit) { return parsed->execute(unit, CommandContext{}); });
        return result.has_value();
      });

  std::vector<std::size_t> next(clients, 0);
  const auto replay = bench::run_load("W1-full replay", clients, duration, [&](int client) {
    auto& own = keys[client];
    if (own.empty()) return false;
    const std::string& key = own[next[client]++ % own.size()];
    auto result = with_idempotency_in_one_statement(
        pool, {"bench", key}, "RegisterAsset", parsed->fingerprint,
        [&](UnitOfWork& reads) { return parsed->plan(reads, CommandContext{}); });
    return result.has_value() && result->replayed;
  });
  report(flags, floor, nullptr);
  report(flags, full, &floor);
  report(flags, in_transaction, &floor);
  report(flags, replay, &full);
}

v1::AssetCommand reappraisal(const std::string& asset_id, long long amount) {
  v1::AssetCommand command;
  command.mutable_reappraise_asset()->set_asset_id(asset_id);
  command.mutable_reappraise_asset()->mutable_valuation()->set_amount_minor(amount);
  command.mutable_reappraise_asset()->mutable_valuation()->set_currency("EUR");
  return command;
}

// `count` asset streams of 20 events each (registered, then 19 reappraisals), written as
// whole streams rather than through the handler so that thousands take a second or two.
std::vector<std::string> prefilled_assets(const AssetHandler& handler, const EventStore& store,
                                          int count) {
  v1::AssetCommand registration;
  if (!service::parse_json_message(register_json(), *registration.mutable_register_asset())) {
    std::abort();
  }
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    const std::string id = to_string(new_uuid());
    registration.mutable_register_asset()->set_asset_id(id);
    auto decided = realestate::AssetDecider::decide(registration, {});
    if (!decided) std::abort();
    std::vector<v1::AssetEvent> events = *decided;
    for (int j = 0; j < 19; ++j) {
      v1::AssetEvent event;
      event.mutable_asset_reappraised()->set_asset_id(id);
      event.mutable_asset_reappraised()->mutable_valuation()->set_amount_minor(1000 + j);
      event.mutable_asset_reappraised()->mutable_valuation()->set_currency("EUR");
      events.push_back(std::move(event));
    }

    std::vector<NewEvent> stored;
    for (const auto& event : events) {
      auto encoded = handler.codec().encode(event);
      if (!encoded) std::abort();
      stored.push_back({new_uuid(), encoded->event_type, encoded->schema_version,
                        encoded->payload, {}});
    }
    if (!store.append("asset-" + id, ExpectedVersion::no_stream(), stored)) std::abort();
    ids.push_back(id);
  }
  return ids;
}

void run_w2(const Flags& flags, ConnectionPool& pool, const AssetHandler& handler,
            const EventStore& store, int clients) {
  const auto duration = std::chrono::milliseconds(static_cast<long>(flags.seconds * 1000));
  // Enough streams that each grows by a few events at most during the run: the workload is
  // "a stream of about 20 events", not "a stream that keeps growing".
  const int streams_per_client = flags.quick ? 4 : 2048 / clients;
  const auto ids = prefilled_assets(handler, store, clients * streams_per_client);
  std::vector<int> next(clients, 0);
  std::atomic<long long> amount{5000};

  const auto pick = [&](int client) -> const std::string& {
    const int offset = next[client]++ % streams_per_client;
    return ids[client * streams_per_client + offset];
  };
  const auto floor = bench::run_load("W2 floor: read 20+insert", clients, duration, [&](int c) {
    auto lease = pool.acquire();
    if (!lease) return false;
    try {
      pqxx::nontransaction tx(lease->connection());
      const std::string stream = "asset-" + pick(c);
      lease->ensure_prepared("bench_w2_read",
                             "SELECT stream_version, payload FROM deedkit.events "
                             "WHERE stream_id = $1 ORDER BY stream_version");
      const auto rows = tx.exec_prepared("bench_w2_read", stream);
      BinaryParams params;
      params.text("w2floor-" + to_string(new_uuid())).uuid(new_uuid()).bytea(std::string(60, 'p'));
      lease->ensure_prepared("bench_w2_insert",
                             "INSERT INTO deedkit.events (stream_id, stream_version, event_id, "
                             "event_type, payload) VALUES ($1::text, 1, $2::uuid, 'x', $3::bytea)");
      tx.exec_prepared("bench_w2_insert", params.dynamic());
      return rows.size() >= 20;
    } catch (const std::exception&) {
      return false;
    }
  });
  std::fill(next.begin(), next.end(), 0);
  const auto update = bench::run_load("W2 update", clients, duration, [&](int c) {
    // Each client works its own streams, so conflicts do not blur the measure.
    const std::string& id = pick(c);
    auto outcome = handler.handle(reappraisal(id, amount++), {});
    return outcome.has_value() && !outcome->rejection;
  });
  report(flags, floor, nullptr);
  report(flags, update, &floor);
}

void run_w3(const Flags& flags, ConnectionPool& pool, const EventStore& store) {
  const int event_count = flags.quick ? 1000 : 10000;
  AssetHandler with_snapshot(store, {.snapshot_every = 1000});
  AssetHandler without(store, {.use_snapshots = false});
  const auto id = prefilled_assets(without, store, 1).front();
  // Fill to one short of the count: the command below crosses the snapshot multiple.
  for (int i = 20; i < event_count - 1; i += 16) {
    std::vector<NewEvent> batch;
    for (int j = 0; j < 16 && i + j < event_count - 1; ++j) {
      v1::AssetEvent event;
      *event.mutable_asset_reappraised() = v1::AssetReappraised();
      event.mutable_asset_reappraised()->set_asset_id(id);
      event.mutable_asset_reappraised()->mutable_valuation()->set_amount_minor(i + j);
      event.mutable_asset_reappraised()->mutable_valuation()->set_currency("EUR");
      auto encoded = without.codec().encode(event);
      batch.push_back({new_uuid(), encoded->event_type, 1, encoded->payload, {}});
    }
    if (!store.append("asset-" + id, ExpectedVersion::any(), batch)) std::abort();
  }
  // One command through the snapshotting handler leaves a snapshot at the last multiple.
  if (!with_snapshot.handle(reappraisal(id, 1), {})) std::abort();

  const auto duration = std::chrono::milliseconds(static_cast<long>(flags.seconds * 1000));
  const std::string stream = "asset-" + id;
  // The same reads the handler makes (the store's statement, batch size and row parsing),
  // without decoding the payloads or folding them.
  const int batch = without.options().load_batch_size;
  const auto floor = bench::run_load("W3 floor: fetch rows", 1, duration, [&](int) {
    auto unit = UnitOfWork::autocommit(pool);
    if (!unit) return false;
    std::size_t bytes = 0;
    const auto fetched = store.fold_stream(*unit, stream, 1, batch,
                                           [&](const RecordedEvent& row) -> Result<void> {
                                             bytes += row.payload.size();
                                             return {};
                                           });
    return fetched.has_value() && bytes > 0;
  });
  const auto full = bench::run_load("W3 load, no snapshot", 1, duration, [&](int) {
    auto unit = UnitOfWork::begin(pool);
    return unit && without.load(*unit, stream).has_value();
  });
  const auto snapshot = bench::run_load("W3 load, snapshot", 1, duration, [&](int) {
    auto unit = UnitOfWork::begin(pool);
    return unit && with_snapshot.load(*unit, stream).has_value();
  });
  std::printf("W3 stream of %d events\n", event_count);
  report(flags, floor, nullptr);
  report(flags, full, &floor);
  report(flags, snapshot, &floor);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") flags.quick = true;
    if (i + 1 >= argc) continue;
    if (arg == "--database") flags.database = argv[i + 1];
    if (arg == "--seconds") flags.seconds = std::stod(argv[i + 1]);
    if (arg == "--json") flags.json_path = argv[i + 1];
    if (arg == "--clients") flags.clients = {std::stoi(argv[i + 1])};
  }
  if (flags.quick) flags.seconds = 0.3;
  if (auto migrated = migrate(flags.database); !migrated) {
    std::fprintf(stderr, "bench_commands: %s\n", migrated.error().to_string().c_str());
    return 1;
  }
  // Each row then says where the server's time went (WAL flushes, locks, CPU, the client).
  bench::sample_waits_in(flags.database);

  for (const int clients : flags.clients) {
    ConnectionPool pool({.database_uri = flags.database, .max_connections = clients});
    EventStore store(pool);
    AssetHandler handler(store);
    service::CommandCatalog catalog;
    catalog.add(handler);
    run_w1_full(flags, pool, catalog, clients);
    run_w2(flags, pool, handler, store, clients);
  }
  ConnectionPool pool({.database_uri = flags.database, .max_connections = 2});
  EventStore store(pool);
  run_w3(flags, pool, store);
  return 0;
}
