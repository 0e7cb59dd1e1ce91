// W1: append one event (~300 bytes) to a new stream, next to a bare prepared INSERT of the
// same row through the same kind of connection, at 1, 4 and 16 clients, in one run.
//
//   bench_append --database URI [--seconds S] [--json FILE]

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <pqxx/nontransaction>

#include "deedkit/eventstore/binary_params.hpp"
#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/eventstore/migrations.hpp"
#include "load_driver.hpp"

namespace {

using namespace deedkit;

std::string payload_of_300_bytes() { return std::string(300, 'p'); }

// The floor: the same row by one prepared INSERT in autocommit mode, the least any append
// can cost (one round trip, one statement).
bool bare_insert(ConnectionPool& pool, const std::string& payload) {
  auto lease = pool.acquire();
  if (!lease) return false;
  lease->ensure_prepared(
      "bench_bare_insert",
      "INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, "
      "schema_version, payload, metadata) VALUES ($1::text, 1, $2::uuid, $3::text, 1, "
      "$4::bytea, $5::jsonb)");
  BinaryParams params;
  params.text("floor-" + to_string(new_uuid()))
      .uuid(new_uuid())
      .text("bench.Registered")
      .bytea(payload)
      .jsonb(R"({"principal":"bench"})");
  try {
    pqxx::nontransaction tx(lease->connection());
    tx.exec_prepared("bench_bare_insert", params.dynamic());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

bool store_append(const EventStore& store, const std::string& payload) {
  NewEvent event;
  event.event_id = new_uuid();
  event.event_type = "bench.Registered";
  event.payload = payload;
  event.metadata.principal = "bench";
  return store.append("bench-" + to_string(new_uuid()), ExpectedVersion::no_stream(),
                      std::span(&event, 1))
      .has_value();
}

}  // namespace

int main(int argc, char** argv) {
  std::string database;
  std::string json_path;
  double seconds = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) seconds = 0.3;
    if (i + 1 >= argc) continue;
    if (!std::strcmp(argv[i], "--database")) database = argv[i + 1];
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::stod(argv[i + 1]);
    if (!std::strcmp(argv[i], "--json")) json_path = argv[i + 1];
  }
  if (auto migrated = migrate(database); !migrated) {
    std::fprintf(stderr, "bench_append: %s\n", migrated.error().to_string().c_str());
    return 1;
  }
  // Each row then says where the server's time went (WAL flushes, locks, CPU, the client).
  bench::sample_waits_in(database);

  const auto duration = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  const std::string payload = payload_of_300_bytes();
  for (const int clients : {1, 4, 16}) {
    ConnectionPool pool({.database_uri = database, .max_connections = clients});
    EventStore store(pool);

    const auto floor = bench::run_load("W1 floor: bare INSERT", clients, duration,
                                       [&](int) { return bare_insert(pool, payload); });
    const auto append = bench::run_load("W1 append", clients, duration,
                                        [&](int) { return store_append(store, payload); });
    bench::print_row(floor, nullptr);
    bench::print_row(append, &floor);
    if (!json_path.empty()) {
      bench::append_json(json_path, floor, nullptr);
      bench::append_json(json_path, append, &floor);
    }
  }
  return 0;
}
