// R1: rebuilding the real-estate projections over N events, next to a raw scan of the same
// events in global order, in one run; and the rebuild's peak memory at 100k and at N
// events, to show that it stays flat.
//
//   bench_projections --database URI [--events N] [--batch-size B] [--json FILE] [--quick]
//
// --quick replays 20,000 events instead of 1,000,000, so the test suite can run it briefly.
//
// The database must hold no events: the bench writes its own history. Events come from the
// real deciders (decide, then evolve), encoded with the real codec, and are loaded with
// COPY, many streams interleaved per transaction: the bench measures rebuilding, not
// appending. Each rebuild runs in a child process, so its peak RSS is its own.
//
// W6 (last): the time from a command's commit to its row in the assets read model, at a
// steady 1,000 commands/s with the projection following live.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/eventstore/migrations.hpp"
#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"
#include "load_driver.hpp"

namespace {

using namespace deedkit;
namespace v1 = realestate::v1;
using realestate::AssetDecider;
using realestate::LeaseDecider;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "bench_projections: %s\n", message.c_str());
  std::exit(1);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

v1::Money money(std::int64_t amount_minor) {
  v1::Money value;
  value.set_amount_minor(amount_minor);
  value.set_currency("EUR");
  return value;
}

// A RegisterAsset with the given id, as a client would send it.
v1::AssetCommand live_registration(const std::string& asset_id) {
  v1::AssetCommand command;
  auto* registered = command.mutable_register_asset();
  registered->set_asset_id(asset_id);
  registered->set_kind(v1::HOUSE);
  registered->set_name("Live " + asset_id.substr(0, 8));
  registered->mutable_address()->set_line1("Damrak 1");
  registered->mutable_address()->set_city("Amsterdam");
  registered->mutable_address()->set_postal_code("1012 LG");
  registered->mutable_address()->set_country("NL");
  registered->set_owner_id(to_string(new_uuid()));
  *registered->mutable_valuation() = money(25'000'000);
  return command;
}

// One stream's events, encoded, in order.
struct StreamHistory {
  std::string stream_id;
  std::vector<EncodedEvent> events;
};

// Runs commands through a decider in memory, the way the command handler would, and keeps
// the encoded events.
template <typename Decider>
class StreamWriter {
 public:
  explicit StreamWriter(const EventCodec<typename Decider::Event>& codec) : codec_(codec) {}

  void handle(const typename Decider::Command& command) {
    auto decided = Decider::decide(command, state_);
    if (!decided) die("generated command rejected: " + decided.error().reason);
    for (const auto& event : *decided) {
      state_ = Decider::evolve(std::move(state_), event);
      auto encoded = codec_.encode(event);
      if (!encoded) die(encoded.error().to_string());
      history_.events.push_back(std::move(*encoded));
    }
  }

  StreamHistory finish(const std::string& id) {
    history_.stream_id = std::string(Decider::category()) + "-" + id;
    return std::move(history_);
  }

 private:
  const EventCodec<typename Decider::Event>& codec_;
  typename Decider::State state_ = Decider::initial_state();
  StreamHistory history_;
};

// One asset's life and one lease of it: about 20 events, mixing every event type.
class HistoryGenerator {
 public:
  explicit HistoryGenerator(std::uint64_t seed) : random_(seed) {}

  void unit(std::vector<StreamHistory>& out) {
    const std::string asset_id = to_string(new_uuid());
    const std::string owner_id = to_string(new_uuid());
    StreamWriter<AssetDecider> asset(asset_codec_);
    v1::AssetCommand command;
    auto* registration = command.mutable_register_asset();
    registration->set_asset_id(asset_id);
    registration->set_kind(v1::APARTMENT);
    registration->set_name("Unit " + asset_id.substr(0, 8));
    registration->mutable_address()->set_line1("Kade 7");
    registration->mutable_address()->set_city(kCities[pick(kCities.size())]);
    registration->mutable_address()->set_postal_code("1011 AB");
    registration->mutable_address()->set_country("NL");
    registration->set_owner_id(owner_id);
    *registration->mutable_valuation() = money(100000 + static_cast<std::int64_t>(pick(900000)));
    asset.handle(command);

    if (chance(30)) {
      command.Clear();
      command.mutable_update_asset_details()->set_asset_id(asset_id);
      command.mutable_update_asset_details()->set_name("Renamed unit");
      *command.mutable_update_asset_details()->mutable_address() = some_address();
      asset.handle(command);
    }
    if (chance(50)) asset.handle(asset_command_reappraise(asset_id));
    asset.handle(asset_command_list(asset_id));
    if (chance(25)) {
      command.Clear();
      command.mutable_withdraw_listing()->set_asset_id(asset_id);
      asset.handle(command);
      asset.handle(asset_command_list(asset_id));
    }
    if (chance(50)) {
      command.Clear();
      command.mutable_accept_offer()->set_asset_id(asset_id);
      command.mutable_accept_offer()->set_buyer_id(to_string(new_uuid()));
      *command.mutable_accept_offer()->mutable_price() = money(150000);
      asset.handle(command);
      command.Clear();
      command.mutable_complete_sale()->set_asset_id(asset_id);
      asset.handle(command);
    }
    out.push_back(asset.finish(asset_id));
    out.push_back(lease_of(asset_id));
  }

 private:
  static inline const std::vector<std::string> kCities = {"Amsterdam", "Rotterdam", "Utrecht",
                                                          "Den Haag", "Eindhoven", "Groningen"};

  std::size_t pick(std::size_t bound) { return random_() % bound; }
  bool chance(int percent) { return static_cast<int>(pick(100)) < percent; }

  v1::Address some_address() {
    v1::Address address;
    address.set_line1("Gracht 12");
    address.set_city(kCities[pick(kCities.size())]);
    address.set_postal_code("1012 CD");
    address.set_country("NL");
    return address;
  }

  v1::AssetCommand asset_command_reappraise(const std::string& asset_id) {
    v1::AssetCommand command;
    command.mutable_reappraise_asset()->set_asset_id(asset_id);
    *command.mutable_reappraise_asset()->mutable_valuation() =
        money(100000 + static_cast<std::int64_t>(pick(900000)));
    return command;
  }

  v1::AssetCommand asset_command_list(const std::string& asset_id) {
    v1::AssetCommand command;
    command.mutable_list_asset_for_sale()->set_asset_id(asset_id);
    *command.mutable_list_asset_for_sale()->mutable_asking_price() =
        money(120000 + static_cast<std::int64_t>(pick(900000)));
    return command;
  }

  StreamHistory lease_of(const std::string& asset_id) {
    const std::string lease_id = to_string(new_uuid());
    StreamWriter<LeaseDecider> lease(lease_codec_);
    v1::LeaseCommand command;
    auto* draft = command.mutable_draft_lease();
    draft->set_lease_id(lease_id);
    draft->set_asset_id(asset_id);
    draft->set_tenant_id(to_string(new_uuid()));
    *draft->mutable_monthly_rent() = money(1500);
    draft->set_start_date("2023-01-01");
    draft->set_end_date("2023-12-31");
    lease.handle(command);
    command.Clear();
    command.mutable_sign_lease()->set_lease_id(lease_id);
    lease.handle(command);
    const int months_paid = 6 + static_cast<int>(pick(7));
    for (int month = 1; month <= months_paid; ++month) {
      command.Clear();
      command.mutable_record_rent_payment()->set_lease_id(lease_id);
      char period[8];
      std::snprintf(period, sizeof period, "2023-%02d", month);
      command.mutable_record_rent_payment()->set_period(period);
      *command.mutable_record_rent_payment()->mutable_amount() = money(1500);
      lease.handle(command);
    }
    if (chance(20)) {
      command.Clear();
      command.mutable_terminate_lease()->set_lease_id(lease_id);
      command.mutable_terminate_lease()->set_date("2023-09-30");
      command.mutable_terminate_lease()->set_reason("moved");
      lease.handle(command);
    }
    return lease.finish(lease_id);
  }

  std::mt19937_64 random_;
  EventCodec<v1::AssetEvent> asset_codec_;
  EventCodec<v1::LeaseEvent> lease_codec_;
};

PGconn* connect(const std::string& database) {
  PGconn* connection = PQconnectdb(database.c_str());
  if (PQstatus(connection) != CONNECTION_OK) die(PQerrorMessage(connection));
  return connection;
}

void exec(PGconn* connection, const char* sql, ExecStatusType expected = PGRES_COMMAND_OK) {
  PGresult* result = PQexec(connection, sql);
  if (PQresultStatus(result) != expected) die(std::string(sql) + ": " + PQerrorMessage(connection));
  PQclear(result);
}

long long count_events(PGconn* connection) {
  PGresult* result = PQexec(connection, "SELECT count(*) FROM deedkit.events");
  if (PQresultStatus(result) != PGRES_TUPLES_OK) die(PQerrorMessage(connection));
  const long long count = std::atoll(PQgetvalue(result, 0, 0));
  PQclear(result);
  return count;
}

void append_copy_row(std::string& buffer, const std::string& stream_id, std::int64_t version,
                     const EncodedEvent& event) {
  static const char* const kHex = "0123456789abcdef";
  buffer += stream_id;
  buffer += '\t';
  buffer += std::to_string(version);
  buffer += '\t';
  buffer += to_string(new_uuid());
  buffer += '\t';
  buffer += event.event_type;
  buffer += '\t';
  buffer += std::to_string(event.schema_version);
  buffer += "\t\\\\x";  // COPY text format: the backslash of bytea's \x is escaped
  for (const unsigned char byte : event.payload) {
    buffer += kHex[byte >> 4];
    buffer += kHex[byte & 15];
  }
  buffer += "\t{\"principal\":\"bench\"}\n";
}

// Appends about `events` events with COPY, each transaction holding a few hundred streams
// whose events are interleaved the way concurrent commands would leave them.
void load_events(PGconn* connection, HistoryGenerator& generator, long long events) {
  std::mt19937_64 shuffle(7);
  long long written = 0;
  while (written < events) {
    std::vector<StreamHistory> streams;
    while (streams.size() < 800) generator.unit(streams);

    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < streams.size(); ++i) {
      order.insert(order.end(), streams[i].events.size(), i);
    }
    std::shuffle(order.begin(), order.end(), shuffle);

    exec(connection, "BEGIN");
    exec(connection,
         "COPY deedkit.events (stream_id, stream_version, event_id, event_type, "
         "schema_version, payload, metadata) FROM STDIN",
         PGRES_COPY_IN);
    std::vector<std::size_t> next(streams.size(), 0);
    std::string buffer;
    for (const std::size_t stream : order) {
      const std::size_t index = next[stream]++;
      append_copy_row(buffer, streams[stream].stream_id, static_cast<std::int64_t>(index + 1),
                      streams[stream].events[index]);
      ++written;
      if (buffer.size() > (1 << 20)) {
        PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size()));
        buffer.clear();
      }
    }
    PQputCopyData(connection, buffer.data(), static_cast<int>(buffer.size()));
    if (PQputCopyEnd(connection, nullptr) != 1) die(PQerrorMessage(connection));
    PGresult* result = PQgetResult(connection);
    if (PQresultStatus(result) != PGRES_COMMAND_OK) die(PQerrorMessage(connection));
    PQclear(result);
    exec(connection, "COMMIT");
  }
  exec(connection, "ANALYZE deedkit.events");
}

// Reads every event in global (commit-safe) order through COPY and throws the bytes away:
// the floor that any reader of the log is measured against.
double raw_scan_rate(PGconn* connection, long long events) {
  const auto start = Clock::now();
  exec(connection,
       "COPY (SELECT * FROM deedkit.events ORDER BY transaction_id, global_position) TO STDOUT",
       PGRES_COPY_OUT);
  long long rows = 0;
  char* line = nullptr;
  int length = 0;
  while ((length = PQgetCopyData(connection, &line, 0)) > 0) {
    ++rows;
    PQfreemem(line);
  }
  PGresult* result = PQgetResult(connection);
  if (PQresultStatus(result) != PGRES_COMMAND_OK) die(PQerrorMessage(connection));
  PQclear(result);
  if (rows != events) die("raw scan read " + std::to_string(rows) + " rows");
  return static_cast<double>(rows) / seconds_since(start);
}

struct RebuildResult {
  double events_per_second = 0;
  long long events_read = 0;
  long long peak_rss_kb = 0;
};

// The projection of the catalog called `name`.
const Projection* named(const std::vector<std::unique_ptr<Projection>>& catalog,
                        const std::string& name) {
  for (const auto& candidate : catalog) {
    if (candidate->name() == name) return candidate.get();
  }
  die("no projection named " + name);
}

// The status of `projection` without counting lags, or nothing while it cannot be read.
std::optional<ProjectionStatus> status_of(ConnectionPool& pool, const Projection& projection) {
  const std::vector<const Projection*> watched{&projection};
  auto statuses = projection_status(pool, watched, false);
  if (!statuses) return std::nullopt;
  // The answer lists every projection the database knows, not only the one watched.
  for (ProjectionStatus& status : *statuses) {
    if (status.name == projection.name()) return std::move(status);
  }
  return std::nullopt;
}

// In the child: asks for a rebuild, leads the projection until the new generation is live,
// and reports through `report_fd`.
[[noreturn]] void rebuild_in_child(const std::string& database, const std::string& name,
                                   int batch_size, int report_fd) {
  ConnectionPool pool(PoolOptions{.database_uri = database, .max_connections = 8});
  const auto catalog = realestate::make_real_estate_projections();
  const Projection* projection = named(catalog, name);

  const auto start = Clock::now();
  const auto request = request_rebuild(pool, *projection);
  if (!request) die(request.error().to_string());
  ProjectionRunner runner(pool, {projection}, RunnerOptions{.batch_size = batch_size});
  runner.start();
  long long events_read = 0;
  while (true) {
    usleep(20000);
    const auto found = status_of(pool, *projection);
    if (!found) continue;
    const ProjectionStatus& status = *found;
    if (status.live && status.live->generation == request->generation) {
      events_read = status.live->events_read;
      break;
    }
    if (status.building && status.building->failure) die(status.building->failure->error);
  }
  const double elapsed = seconds_since(start);
  runner.stop();

  const RebuildResult result{static_cast<double>(events_read) / elapsed, events_read, 0};
  if (write(report_fd, &result, sizeof result) != sizeof result) _exit(2);
  _exit(0);
}

// In the child: brings the live generation of `name` up to the head of the log, as a
// deployment's runner keeps it, so that the rebuild timed next is the only work catching up.
[[noreturn]] void catch_up_in_child(const std::string& database, const std::string& name,
                                    int batch_size, long long log_size) {
  ConnectionPool pool(PoolOptions{.database_uri = database, .max_connections = 4});
  const auto catalog = realestate::make_real_estate_projections();
  const Projection* projection = named(catalog, name);
  ProjectionRunner runner(pool, {projection}, RunnerOptions{.batch_size = batch_size});
  runner.start();
  while (true) {
    usleep(20000);
    // Read counts, not lag counts: counting the lag scans the log after the checkpoint.
    const auto found = status_of(pool, *projection);
    if (found && found->live && found->live->events_read >= log_size) break;
  }
  runner.stop();
  _exit(0);
}

void catch_up_live(const std::string& database, const std::string& name, int batch_size,
                   long long log_size) {
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) catch_up_in_child(database, name, batch_size, log_size);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("catching up failed");
}

RebuildResult measure_rebuild(const std::string& database, const std::string& name,
                              int batch_size, long long log_size) {
  catch_up_live(database, name, batch_size, log_size);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) die("pipe failed");
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    rebuild_in_child(database, name, batch_size, pipe_fds[1]);
  }
  close(pipe_fds[1]);
  RebuildResult result;
  const bool reported = read(pipe_fds[0], &result, sizeof result) == sizeof result;
  close(pipe_fds[0]);

  int status = 0;
  rusage usage{};
  wait4(child, &status, 0, &usage);
  if (!reported || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("rebuild child failed");
  result.peak_rss_kb = usage.ru_maxrss;  // this child's own peak, in kilobytes on Linux
  return result;
}

// W6: commit to read model. Commands at a steady `rate` per second for `duration`, while a
// runner in this process follows the log live with the assets projection; a poller looks
// for each new asset in deedkit_read.asset_summary every millisecond. A sample is the time
// from the command's commit to the poll that first saw its row (so up to a millisecond
// late).
bench::LoadResult measure_live_lag(const std::string& database, int rate,
                                   std::chrono::seconds duration) {
  ConnectionPool pool(PoolOptions{.database_uri = database, .max_connections = 4});
  EventStore store(pool);
  CommandHandler<realestate::AssetDecider> handler(store);
  const auto catalog = realestate::make_real_estate_projections();
  const Projection* assets = named(catalog, "assets");
  ProjectionRunner runner(pool, {assets}, RunnerOptions{});
  runner.start();

  std::mutex mutex;
  std::map<std::string, Clock::time_point> committed;  // guarded by mutex
  std::vector<double> latencies_ms;                    // guarded by mutex
  std::atomic<bool> writing{true};
  std::thread poller([&] {
    pqxx::connection connection(database);
    const auto give_up_after = std::chrono::seconds(30);
    auto last_progress = Clock::now();
    while (true) {
      std::string ids = "{";
      {
        std::lock_guard lock(mutex);
        if (!writing && committed.empty()) return;
        for (const auto& [id, at] : committed) ids += (ids.size() > 1 ? "," : "") + id;
      }
      if (ids.size() > 1) {
        pqxx::nontransaction tx(connection);
        const pqxx::result seen = tx.exec_params(
            "SELECT asset_id::text FROM deedkit_read.asset_summary "
            "WHERE asset_id = ANY($1::uuid[])", ids + "}");
        const auto now = Clock::now();
        std::lock_guard lock(mutex);
        for (const auto& row : seen) {
          const auto found = committed.find(row[0].c_str());
          if (found == committed.end()) continue;
          latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(now - found->second).count());
          committed.erase(found);
          last_progress = now;
        }
      }
      if (Clock::now() - last_progress > give_up_after) die("the projection stopped following");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  const auto start = Clock::now();
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
  const long long commands = rate * duration.count();
  for (long long i = 0; i < commands; ++i) {
    std::this_thread::sleep_until(start + i * interval);
    const std::string asset_id = to_string(new_uuid());
    const auto outcome = handler.handle(live_registration(asset_id), {});
    if (!outcome || outcome->rejection) die("a live-lag command failed");
    std::lock_guard lock(mutex);
    committed.emplace(asset_id, Clock::now());
  }
  writing = false;
  poller.join();
  runner.stop();

  std::sort(latencies_ms.begin(), latencies_ms.end());
  const auto at = [&](double fraction) {
    return latencies_ms[static_cast<std::size_t>(fraction * (latencies_ms.size() - 1))];
  };
  return bench::LoadResult{.name = "W6 commit-to-projection", .clients = 1,
                           .operations = static_cast<long long>(latencies_ms.size()),
                           .per_second = static_cast<double>(rate), .p50_ms = at(0.5),
                           .p99_ms = at(0.99), .max_ms = latencies_ms.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string database;
  long long events = 1'000'000;
  int batch_size = RunnerOptions{}.batch_size;
  std::string json_path;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--quick")) {
      events = 20'000;
      quick = true;
    } else if (has_value && !std::strcmp(argv[i], "--database")) {
      database = argv[++i];
    } else if (has_value && !std::strcmp(argv[i], "--events")) {
      events = std::atoll(argv[++i]);
    } else if (has_value && !std::strcmp(argv[i], "--batch-size")) {
      batch_size = std::atoi(argv[++i]);
    } else if (has_value && !std::strcmp(argv[i], "--json")) {
      json_path = argv[++i];
    } else if (has_value && !std::strcmp(argv[i], "--nats")) {
      ++i;  // scripts/bench hands every bench the broker; this one does not need it
    } else {
      die(std::string("unknown argument ") + argv[i]);
    }
  }
  if (auto migrated = migrate(database); !migrated) die(migrated.error().to_string());
  spdlog::set_level(spdlog::level::warn);

  PGconn* connection = connect(database);
  if (count_events(connection) != 0) die("the database already holds events; use an empty one");

  std::printf("R1 projection rebuild: batch size %d; goal >= 100000 events/s and >= 0.3 of "
              "the raw scan; peak RSS flat from 100k to %lld events\n",
              batch_size, events);
  std::printf("%10s %14s %12s %14s %7s %12s\n", "events", "raw scan ev/s", "projection",
              "rebuild ev/s", "ratio", "peak RSS MB");

  HistoryGenerator generator(42);
  std::vector<long long> sizes{std::min(100'000LL, events)};
  if (events > sizes.front()) sizes.push_back(events);
  for (const long long size : sizes) {
    load_events(connection, generator, size - count_events(connection));
    const long long loaded = count_events(connection);
    const double raw = raw_scan_rate(connection, loaded);
    PQfinish(connection);  // the child must not share this connection's socket

    for (const char* name : {"assets", "rent_roll"}) {
      const RebuildResult rebuilt = measure_rebuild(database, name, batch_size, loaded);
      std::printf("%10lld %14.0f %12s %14.0f %7.2f %12.1f\n", loaded, raw, name,
                  rebuilt.events_per_second, rebuilt.events_per_second / raw,
                  static_cast<double>(rebuilt.peak_rss_kb) / 1024.0);
      std::fflush(stdout);
      if (!json_path.empty()) {
        const std::string events_label = " " + std::to_string(loaded) + " events";
        const bench::LoadResult floor{.name = "W4 floor: COPY scan" + events_label,
                                      .clients = 1, .operations = loaded, .per_second = raw};
        const bench::LoadResult result{
            .name = std::string("W4 rebuild ") + name + events_label + ", peak RSS " +
                    std::to_string(rebuilt.peak_rss_kb / 1024) + " MiB",
            .clients = 1, .operations = rebuilt.events_read,
            .per_second = rebuilt.events_per_second};
        bench::append_json(json_path, result, &floor);
      }
    }
    connection = connect(database);
  }
  PQfinish(connection);

  // After the rebuilds the assets projection's live generation is at the head of the log.
  const auto lag = measure_live_lag(database, 1000, std::chrono::seconds(quick ? 1 : 5));
  bench::print_row(lag, nullptr);
  if (!json_path.empty()) bench::append_json(json_path, lag, nullptr);
  return 0;
}
