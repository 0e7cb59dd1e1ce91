// W5 and W6: the outbox relay against NATS JetStream, next to the broker's own limit.
//
//   W5 floor  bare asynchronous JetStream publish of the same number and size of messages,
//             with the relay's headers and acknowledgements, through nats.c (the broker's
//             limit on this machine). `--floor-only` runs just this, for scripts/profile.
//   W5 relay  `deedkit relay` (a child process) draining the same number of outbox rows,
//             marking them published (the default) and deleting them (--retain 0); its peak
//             RSS at that backlog and at ten times it (1,000,000 rows) shows that memory does
//             not grow with the backlog.
//   W6        commit-to-broker latency at a steady 1,000 commands/s (one event each), with
//             the relay running in this process: the time from the writer's commit to a
//             subscriber receiving the message, and the relay's own commit-to-PubAck
//             quantiles (RelayMetrics: from the row's recorded_at, so an upper bound).
//
//   W7        what the relay's wake-up costs writers: 16 clients append one event each (no
//             outbox row, so the relay has nothing to publish and only watches), alone and
//             then beside a running relay, alternating; the ratio of their rates. The relay
//             polls, fetches when transactions end, and proposes commit horizons: all of it
//             outside the writers' transactions, so only CPU is shared. Measured first on
//             a small outbox and again after the W5 drains, before autovacuum has cleared
//             their dead rows, which the relay's backlog count and first fetches walk.
//
//   bench_relay --database URI --nats URL [--rows N] [--json FILE] [--quick]
//   bench_relay --nats URL --rows N --floor-only

#include <nats/nats.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pqxx/nontransaction>
#include <spdlog/spdlog.h>

#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/eventstore/migrations.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "deedkit/outbox/relay.hpp"
#include "load_driver.hpp"

namespace {

using namespace deedkit;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string database;
  std::string nats;
  std::string json_path;
  long rows = 100000;
  bool quick = false;
  bool floor_only = false;
};

std::string pending_count(const std::string& database) {
  pqxx::connection connection(database);
  pqxx::nontransaction tx(connection);
  return tx.exec("SELECT count(*) FROM deedkit.outbox WHERE published_at IS NULL")[0][0].c_str();
}

// Tells when a drain has finished without taking CPU from the relay it measures. Counting
// the pending rows took a new connection and, at a million rows, a scan of the whole
// pending index, every 20 ms: CPU taken from the relay and its PostgreSQL on a two-core
// machine. Instead, the broker's count of the relay's stream (one cheap request) is
// watched until every message arrived, and only then the outbox, over one connection,
// until the last acknowledgements are recorded.
class DrainWatch {
 public:
  DrainWatch(const Flags& flags, long rows) : connection_(flags.database), rows_(rows) {
    if (natsConnection_ConnectTo(&nats_, flags.nats.c_str()) != NATS_OK) std::abort();
    if (natsConnection_JetStream(&jetstream_, nats_, nullptr) != NATS_OK) std::abort();
    before_ = stream_messages();
  }
  ~DrainWatch() {
    jsCtx_Destroy(jetstream_);
    natsConnection_Destroy(nats_);
  }
  DrainWatch(const DrainWatch&) = delete;
  DrainWatch& operator=(const DrainWatch&) = delete;

  void wait_until_drained() {
    while (stream_messages() < before_ + static_cast<std::uint64_t>(rows_)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    while (true) {
      pqxx::nontransaction tx(connection_);
      const bool pending = tx.exec("SELECT EXISTS (SELECT FROM deedkit.outbox "
                                   "WHERE published_at IS NULL)")[0][0].as<bool>();
      if (!pending) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  // Messages in the relay's stream (DEEDKIT, its default); 0 before a relay created it.
  std::uint64_t stream_messages() {
    jsStreamInfo* info = nullptr;
    jsErrCode error = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&info, jetstream_, "DEEDKIT", nullptr, &error) != NATS_OK) return 0;
    const std::uint64_t messages = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return messages;
  }

  pqxx::connection connection_;
  natsConnection* nats_ = nullptr;
  jsCtx* jetstream_ = nullptr;
  long rows_;
  std::uint64_t before_ = 0;
};

// Writes `rows` outbox rows of ~300-byte payloads over 1,000 streams, 1,000 per transaction.
void fill_outbox(ConnectionPool& pool, long rows, const std::string& prefix) {
  const std::string payload(300, 'p');
  for (long written = 0; written < rows;) {
    auto unit = UnitOfWork::begin(pool);
    for (int i = 0; i < 1000 && written < rows; i += 16) {
      std::vector<NewEvent> events;
      for (int j = 0; j < 16 && written < rows; ++j, ++written) {
        events.push_back({new_uuid(), "bench.Happened", 1, payload, {}});
      }
      const std::string stream = prefix + "-" + std::to_string(written % 1000) + "x" +
                                 std::to_string(written);
      if (!write_outbox_rows(*unit, stream, 1, events)) std::abort();
    }
    if (!unit->commit()) std::abort();
  }
}

// How the relay records an acknowledged row: marked and kept (the default, --retain 24h) or
// deleted at once (--retain 0).
enum class Recording { kMarkAndKeep, kDelete };

// Starts `deedkit relay` and returns its pid.
pid_t start_relay(const Flags& flags, Recording recording) {
  const char* retain = recording == Recording::kDelete ? "0" : "24h";
  const pid_t child = ::fork();
  if (child == 0) {
    ::execl(DEEDKIT_BINARY, DEEDKIT_BINARY, "--log-level", "warn", "--database",
            flags.database.c_str(), "--nats", flags.nats.c_str(), "relay", "--retain", retain,
            nullptr);
    ::_exit(127);
  }
  return child;
}

// Stops the relay with SIGTERM and returns its peak RSS in MiB.
double stop_relay(pid_t relay) {
  ::kill(relay, SIGTERM);
  int status = 0;
  rusage usage{};
  ::wait4(relay, &status, 0, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

bench::LoadResult drain_with_relay(const Flags& flags, ConnectionPool& pool, long rows,
                                   Recording recording, double* peak_rss_mib) {
  const std::string prefix = "w5" + std::string(recording == Recording::kDelete ? "d" : "m");
  fill_outbox(pool, rows, prefix + std::to_string(rows));
  // Each drain starts from a vacuumed table, not from the dead row versions of the last one.
  {
    pqxx::connection connection(flags.database);
    pqxx::nontransaction tx(connection);
    tx.exec("VACUUM ANALYZE deedkit.outbox");
  }
  DrainWatch watch(flags, rows);
  const auto started = Clock::now();
  const pid_t relay = start_relay(flags, recording);
  watch.wait_until_drained();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  *peak_rss_mib = stop_relay(relay);

  bench::LoadResult result;
  result.name = "W5 relay drain " + std::to_string(rows) +
                (recording == Recording::kDelete ? ", --retain 0" : "");
  result.clients = 1;
  result.operations = rows;
  result.per_second = static_cast<double>(rows) / seconds;
  return result;
}

// Waits until a relay just started holds all 64 partition leases (advisory locks), so that
// its start-up is not measured as its watching.
void wait_until_leased(const std::string& database) {
  pqxx::connection connection(database);
  while (true) {
    pqxx::nontransaction tx(connection);
    const auto held = tx.exec("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND granted")[0][0].as<int>();
    if (held >= 64) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// W7: appends from 16 clients, alone and beside a relay that has nothing to publish, three
// times each, alternating, so that drift on a shared machine falls on both sides alike.
std::pair<bench::LoadResult, bench::LoadResult> writers_beside_the_relay(
    const Flags& flags, const std::string& outbox_state) {
  constexpr int kClients = 16;
  constexpr int kRounds = 3;
  ConnectionPool pool({.database_uri = flags.database, .max_connections = kClients});
  const EventStore store(pool);
  const std::string payload(300, 'p');
  const auto append = [&](int) {
    NewEvent event;
    event.event_id = new_uuid();
    event.event_type = "bench.Registered";
    event.payload = payload;
    return store
        .append("w7-" + to_string(new_uuid()), ExpectedVersion::no_stream(),
                std::span(&event, 1))
        .has_value();
  };
  const auto duration = std::chrono::milliseconds(flags.quick ? 300 : 3000);

  bench::LoadResult alone{.name = "W7 appends, no relay, " + outbox_state,
                          .clients = kClients};
  bench::LoadResult beside{.name = "W7 appends beside a watching relay, " + outbox_state,
                           .clients = kClients};
  const auto add = [](bench::LoadResult& total, const bench::LoadResult& run) {
    total.operations += run.operations;
    total.failures += run.failures;
    total.per_second += run.per_second / kRounds;
    total.p50_ms += run.p50_ms / kRounds;
    total.p99_ms += run.p99_ms / kRounds;
    total.max_ms = std::max(total.max_ms, run.max_ms);
  };
  for (int round = 0; round < kRounds; ++round) {
    add(alone, bench::run_load(alone.name, kClients, duration, append));
    const pid_t relay = start_relay(flags, Recording::kMarkAndKeep);
    wait_until_leased(flags.database);
    add(beside, bench::run_load(beside.name, kClients, duration, append));
    stop_relay(relay);
  }
  return {alone, beside};
}

bench::LoadResult bare_publish(const Flags& flags, long messages) {
  natsConnection* connection = nullptr;
  jsCtx* jetstream = nullptr;
  if (natsConnection_ConnectTo(&connection, flags.nats.c_str()) != NATS_OK) std::abort();
  jsOptions options;
  jsOptions_Init(&options);
  options.PublishAsync.MaxPending = 512;
  if (natsConnection_JetStream(&jetstream, connection, &options) != NATS_OK) std::abort();

  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = "BENCHFLOOR";
  const char* subjects[] = {"benchfloor.>"};
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  jsStreamInfo* info = nullptr;
  js_AddStream(&info, jetstream, &config, nullptr, nullptr);
  if (info) jsStreamInfo_Destroy(info);

  const std::string body(400, 'b');
  const auto started = Clock::now();
  for (long i = 0; i < messages; ++i) {
    natsMsg* message = nullptr;
    const std::string subject = "benchfloor.bench.Happened";
    natsMsg_Create(&message, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    // The headers the relay sets (message_builder.cpp), so the broker does the same work.
    const std::string id = to_string(new_uuid());
    const std::string stream = "w5floor-" + std::to_string(i % 1000) + "x" + std::to_string(i);
    const std::string version = std::to_string(i % 16 + 1);
    natsMsgHeader_Set(message, "Nats-Msg-Id", id.c_str());
    natsMsgHeader_Set(message, "Deedkit-Stream", stream.c_str());
    natsMsgHeader_Set(message, "Deedkit-Version", version.c_str());
    natsMsgHeader_Set(message, "Deedkit-Event-Type", "bench.Happened");
    natsMsgHeader_Set(message, "Content-Type",
                      "application/protobuf; proto=deedkit.outbox.v1.Envelope");
    if (js_PublishMsgAsync(jetstream, &message, nullptr) != NATS_OK) natsMsg_Destroy(message);
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 60000;
  js_PublishAsyncComplete(jetstream, &wait);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  jsCtx_Destroy(jetstream);
  natsConnection_Destroy(connection);

  bench::LoadResult result;
  result.name = "W5 floor: bare publish";
  result.clients = 1;
  result.operations = messages;
  result.per_second = static_cast<double>(messages) / seconds;
  return result;
}

// A message can arrive before its writer, back from the commit, has noted the time (the
// writer's thread was descheduled): it waits in `arrived` for the writer, and so is counted.
struct LatencyProbe {
  std::mutex mutex;
  std::map<std::string, Clock::time_point> committed;  // guarded by mutex
  std::map<std::string, Clock::time_point> arrived;    // guarded by mutex
  std::vector<double> latencies_ms;                     // guarded by mutex

  void record(Clock::time_point committed_at, Clock::time_point received_at) {
    const double ms = std::chrono::duration<double, std::milli>(received_at - committed_at).count();
    latencies_ms.push_back(std::max(ms, 0.0));
  }
};

void on_message(natsConnection*, natsSubscription*, natsMsg* message, void* closure) {
  const auto received = Clock::now();
  auto* probe = static_cast<LatencyProbe*>(closure);
  const char* id = nullptr;
  if (natsMsgHeader_Get(message, "Nats-Msg-Id", &id) == NATS_OK && id) {
    std::lock_guard lock(probe->mutex);
    const auto found = probe->committed.find(id);
    if (found != probe->committed.end()) {
      probe->record(found->second, received);
      probe->committed.erase(found);
    } else {
      probe->arrived.emplace(id, received);
    }
  }
  natsMsg_Destroy(message);
}

bench::LoadResult steady_latency(const Flags& flags, ConnectionPool& pool,
                                 bench::LoadResult* ack) {
  LatencyProbe probe;
  natsConnection* connection = nullptr;
  natsSubscription* subscription = nullptr;
  if (natsConnection_ConnectTo(&connection, flags.nats.c_str()) != NATS_OK) std::abort();
  natsConnection_Subscribe(&subscription, connection, "deedkit.>", on_message, &probe);
  natsConnection_Flush(connection);
  // Quiet, as the child processes run with --log-level warn: the table stays readable.
  spdlog::set_level(spdlog::level::warn);
  RelayOptions options;
  options.database_uri = flags.database;
  options.nats_url = flags.nats;
  Relay relay(options);
  std::thread relay_thread([&relay] {
    if (auto finished = relay.run(); !finished) std::abort();
  });

  const int per_second = 1000;
  const auto duration = std::chrono::seconds(flags.quick ? 1 : 10);
  const auto started = Clock::now();
  long sent = 0;
  const std::string payload(300, 'p');
  while (Clock::now() - started < duration) {
    const auto due = started + std::chrono::microseconds(sent * 1000000 / per_second);
    std::this_thread::sleep_until(due);
    auto unit = UnitOfWork::begin(pool);
    const NewEvent event{new_uuid(), "bench.Happened", 1, payload, {}};
    if (!write_outbox_rows(*unit, "w6-" + std::to_string(sent), 1, std::span(&event, 1))) {
      std::abort();
    }
    const std::string id = to_string(event.event_id);
    if (!unit->commit()) std::abort();
    {
      const auto committed_at = Clock::now();
      std::lock_guard lock(probe.mutex);
      const auto early = probe.arrived.find(id);
      if (early != probe.arrived.end()) {
        probe.record(committed_at, early->second);
        probe.arrived.erase(early);
      } else {
        probe.committed[id] = committed_at;
      }
    }
    ++sent;
  }
  while (pending_count(flags.database) != "0") {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  relay.stop();
  relay_thread.join();
  const RelayMetrics metrics = relay.metrics();
  *ack = bench::LoadResult{};
  ack->name = "W6 commit-to-PubAck (relay's own quantiles, upper bounds)";
  ack->clients = 1;
  ack->operations = static_cast<long long>(metrics.commit_to_ack_count);
  ack->p50_ms = static_cast<double>(metrics.commit_to_ack_p50.count()) / 1000.0;
  ack->p99_ms = static_cast<double>(metrics.commit_to_ack_p99.count()) / 1000.0;
  natsSubscription_Destroy(subscription);
  natsConnection_Destroy(connection);

  std::lock_guard lock(probe.mutex);
  auto& latencies = probe.latencies_ms;
  std::sort(latencies.begin(), latencies.end());
  bench::LoadResult result;
  result.name = "W6 commit-to-broker (a subscriber receives it)";
  result.clients = 1;
  result.operations = static_cast<long long>(latencies.size());
  result.failures = sent - result.operations;
  result.per_second = static_cast<double>(sent) / std::chrono::duration<double>(duration).count();
  if (!latencies.empty()) {
    result.p50_ms = latencies[latencies.size() / 2];
    result.p99_ms = latencies[latencies.size() * 99 / 100];
    result.max_ms = latencies.back();
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") flags.quick = true;
    if (arg == "--floor-only") flags.floor_only = true;
    if (i + 1 >= argc) continue;
    if (arg == "--database") flags.database = argv[i + 1];
    if (arg == "--nats") flags.nats = argv[i + 1];
    if (arg == "--json") flags.json_path = argv[i + 1];
    if (arg == "--rows") flags.rows = std::stol(argv[i + 1]);
  }
  if (flags.quick) flags.rows = 2000;
  if (flags.floor_only) {
    bench::print_row(bare_publish(flags, flags.rows), nullptr);
    return 0;
  }
  if (auto migrated = migrate(flags.database); !migrated) {
    std::fprintf(stderr, "bench_relay: %s\n", migrated.error().to_string().c_str());
    return 1;
  }
  ConnectionPool pool({.database_uri = flags.database, .max_connections = 2});

  // The rate at `rows` (100,000), next to the bare publish of as many, with rows marked and
  // kept and with rows deleted once acknowledged; the peak memory at `rows` and at ten times
  // as many, to show it does not grow with the backlog.
  // Before the drains leave a million dead outbox rows for autovacuum: the relay's backlog
  // count and its first fetches walk their index entries, which W7 then measures as well.
  const auto [clean_alone, clean_beside] = writers_beside_the_relay(flags, "small outbox");
  const auto floor = bare_publish(flags, flags.rows);
  double rss = 0;
  double deleting_rss = 0;
  double backlog_rss = 0;
  double deleting_backlog_rss = 0;
  const auto drain = drain_with_relay(flags, pool, flags.rows, Recording::kMarkAndKeep, &rss);
  const auto deleting =
      drain_with_relay(flags, pool, flags.rows, Recording::kDelete, &deleting_rss);
  // Before the large backlog: vacuuming a million updated outbox rows afterwards would
  // measure autovacuum, not the relay's steady-state latency.
  bench::LoadResult ack_latency;
  const auto latency = steady_latency(flags, pool, &ack_latency);
  const auto backlog = drain_with_relay(flags, pool, flags.rows * 10, Recording::kMarkAndKeep,
                                        &backlog_rss);
  const auto deleting_backlog = drain_with_relay(flags, pool, flags.rows * 10,
                                                 Recording::kDelete, &deleting_backlog_rss);

  const auto [writers_alone, writers_beside] =
      writers_beside_the_relay(flags, "outbox bloated by the drains above");

  const auto with_rss = [&](bench::LoadResult row, double peak, double at_rows) {
    row.name += ", peak RSS " + std::to_string(static_cast<int>(peak)) + " MiB (" +
                std::to_string(static_cast<int>(at_rows)) + " MiB at " +
                std::to_string(flags.rows) + ")";
    return row;
  };
  const std::vector<std::pair<bench::LoadResult, const bench::LoadResult*>> rows = {
      {floor, nullptr},
      {drain, &floor},
      {deleting, &floor},
      {with_rss(backlog, backlog_rss, rss), &floor},
      {with_rss(deleting_backlog, deleting_backlog_rss, deleting_rss), &floor},
      {latency, nullptr},
      {ack_latency, nullptr},
      {clean_alone, nullptr},
      {clean_beside, &clean_alone},
      {writers_alone, nullptr},
      {writers_beside, &writers_alone},
  };
  for (const auto& [row, baseline] : rows) {
    bench::print_row(row, baseline);
    if (!flags.json_path.empty()) bench::append_json(flags.json_path, row, baseline);
  }
  return 0;
}
