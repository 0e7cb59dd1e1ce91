// The fault suite: 16 HTTP clients drive a whole deedkit deployment (service, two relays, a
// projection runner, PostgreSQL, nats-server, all real processes) while the harness, at
// random moments, SIGKILLs the service, SIGKILLs a relay, stops PostgreSQL with
// `pg_ctl stop -m immediate` and stops nats-server, restarting each. Clients retry every
// unanswered request with the same Idempotency-Key, send some requests twice on purpose and
// some twice at once.
//
// Afterwards it checks, from PostgreSQL and from JetStream directly, what deedkit promises:
// every command that got a 2xx is in the log exactly once, no command is in it twice, every
// event is in JetStream exactly once with each stream's versions in order, every read model
// equals the fold of the log, and no idempotency key is stuck. It prints the counts.
//
// The suite owns its PostgreSQL cluster and nats-server, so stopping them disturbs no other
// test running beside it.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pqxx/pqxx>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/realestate/v1/asset.pb.h"
#include "real_estate_fold.hpp"
#include "relay_test_support.hpp"

namespace deedkit::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kClients = 16;
constexpr int kFaultRounds = 3;  // each round injects each of the four faults once
const std::string kOwner = "5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10";

// Runs a program to completion, as the postgres user when we are root (PostgreSQL refuses
// to run as root). Returns its exit status.
int run_as_postgres(std::vector<std::string> argv, const fs::path& log) {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
  ChildProcess process(argv, log, log);
  return process.wait_exit(60s);
}

// A PostgreSQL 15 cluster of the suite's own, on a Unix socket in its directory.
class PrivatePostgres {
 public:
  explicit PrivatePostgres(const fs::path& directory) : directory_(directory) {
    fs::create_directories(directory_);
    fs::permissions(directory_, fs::perms::all);
    const int initdb = run_as_postgres({kBin + "initdb", "-D", data(), "-U", "postgres",
                                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"},
                                       directory_ / "initdb.log");
    if (initdb != 0) throw std::runtime_error("initdb failed; see " + directory_.string());
    start();
    pqxx::connection admin(settings() + " dbname=postgres");
    pqxx::nontransaction(admin).exec("CREATE DATABASE faults");
  }
  ~PrivatePostgres() { stop_immediately(); }

  void start() {
    const std::string options = "-c listen_addresses='' -c unix_socket_directories='" +
                                directory_.string() + "' -c max_connections=200";
    const int status = run_as_postgres({kBin + "pg_ctl", "-D", data(), "-l",
                                        (directory_ / "postgres.log").string(), "-w", "-t", "60",
                                        "-o", options, "start"},
                                       directory_ / "pg_ctl.log");
    if (status != 0) throw std::runtime_error("pg_ctl start failed; see " + directory_.string());
  }

  // The abrupt stop of a crash: no checkpoint, every connection cut.
  void stop_immediately() {
    run_as_postgres({kBin + "pg_ctl", "-D", data(), "-m", "immediate", "-w", "stop"},
                    directory_ / "pg_ctl.log");
  }

  std::string settings() const { return "host=" + directory_.string() + " user=postgres"; }
  std::string uri() const { return settings() + " dbname=faults"; }

 private:
  inline static const std::string kBin = "/usr/lib/postgresql/15/bin/";
  std::string data() const { return (directory_ / "data").string(); }
  fs::path directory_;
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct Counters {
  std::atomic<long> sent{0};          // distinct commands (keys)
  std::atomic<long> acknowledged{0};  // commands that ended with a 2xx
  std::atomic<long> retried{0};       // re-sends after no answer, a 5xx or "in progress"
  std::atomic<long> deliberate{0};    // re-sends of an answered request, on purpose
  std::atomic<long> concurrent{0};    // requests sent twice at the same moment
  std::atomic<long> replayed{0};      // answers marked Idempotent-Replayed
  std::atomic<long> faults{0};
};

struct Request {
  std::string key;
  std::string command;
  std::string body;
};

struct Answer {
  int status = 0;
  std::string body;
  std::string location;
  bool replayed = false;
};

// What one client learnt, checked against the log afterwards.
struct AssetRecord {
  std::string name;            // unique: identifies the RegisterAsset command in the log
  std::string asset_id;        // from the Location header; empty when never answered
  int acknowledged_after = 0;  // commands on the asset that got a 2xx (register first)
  int sent_after = 0;          // commands on the asset that were sent at all
};

// One client's problems, reported at the end (gtest assertions are not thread-safe enough
// to call from sixteen threads at once with useful output).
struct Findings {
  std::mutex mutex;
  std::vector<std::string> problems;
  void add(std::string problem) {
    std::lock_guard lock(mutex);
    if (problems.size() < 20) problems.push_back(std::move(problem));
  }
};

class Deployment {
 public:
  explicit Deployment(const fs::path& root)
      : root_(root), postgres_(root / "pg"), nats_(root / "nats"), port_(free_port()) {
    const auto migrated = run_deedkit(root_, {"--database", postgres_.uri(), "migrate"});
    if (migrated.exit_status != 0) throw std::runtime_error("migrate: " + migrated.output);
    start_service();
    for (int i = 0; i < 2; ++i) {
      relays_.push_back(std::make_unique<SpawnedRelay>(
          root_, "relay-" + std::to_string(i),
          std::vector<std::string>{"--database", postgres_.uri(), "--nats", nats_.url(),
                                   "--log-level", "info", "relay", "--lease-interval", "200ms",
                                   "--backoff-initial", "20ms", "--backoff-max", "300ms",
                                   "--poll-interval", "2ms", "--ack-timeout", "2s"}));
      relays_.back()->start();
    }
    projections_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{DEEDKIT_BINARY, "--database", postgres_.uri(), "projections",
                                 "run"},
        root_ / "projections.out", root_ / "projections.err");
  }

  int port() const { return port_; }
  std::string database_uri() const { return postgres_.uri(); }
  std::string nats_url() const { return nats_.url(); }

  // One fault and its repair. Returns what it did, for the log.
  std::string inject(int kind, std::mt19937& random) {
    const auto outage = std::chrono::milliseconds(100 + random() % 400);
    switch (kind) {
      case 0:
        service_->signal(SIGKILL);
        service_->wait_exit();
        start_service();
        return "SIGKILL service";
      case 1: {
        auto& relay = *relays_[random() % relays_.size()];
        relay.kill();
        relay.start();
        return "SIGKILL relay";
      }
      case 2:
        postgres_.stop_immediately();
        std::this_thread::sleep_for(outage);  // the outage itself, not a synchronisation
        postgres_.start();
        return "PostgreSQL stopped -m immediate";
      default:
        nats_.stop();
        std::this_thread::sleep_for(outage);
        nats_.start();
        return "nats-server stopped";
    }
  }

  void start_service() {
    const std::string name = "service-" + std::to_string(++service_starts_);
    service_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{DEEDKIT_BINARY, "--database", postgres_.uri(), "--log-level",
                                 "warn", "serve", "--listen",
                                 "127.0.0.1:" + std::to_string(port_)},
        root_ / (name + ".out"), root_ / (name + ".err"));
    const bool healthy = wait_until([&] {
      httplib::Client http("127.0.0.1", port_);
      http.set_connection_timeout(1s);
      const auto health = http.Get("/healthz");
      return health && health->status == 200;
    });
    if (!healthy) throw std::runtime_error("the service did not become healthy");
  }

 private:
  fs::path root_;
  PrivatePostgres postgres_;
  NatsServer nats_;
  int port_;
  int service_starts_ = 0;
  std::unique_ptr<ChildProcess> service_;
  std::vector<std::unique_ptr<SpawnedRelay>> relays_;
  std::unique_ptr<ChildProcess> projections_;
};

std::string register_body(const std::string& name) {
  return R"({"kind":"HOUSE","name":")" + name +
         R"(","address":{"line1":"Herengracht 1","city":"Amsterdam","postal_code":"1015 BA",)"
         R"("country":"NL"},"owner_id":")" + kOwner +
         R"(","valuation":{"amount_minor":25000000,"currency":"EUR"}})";
}

bool is_retryable(const httplib::Result& result) {
  if (!result) return true;  // no answer: the service died or was restarting
  if (result->status >= 500) return true;
  return result->status == 409 &&
         result->body.find("request-in-progress") != std::string::npos;
}

// Sends `request` until it gets a definite answer, re-sending with the same key after
// transport errors, 5xx and "still in progress", for at most `patience`.
std::optional<Answer> send(int port, const Request& request, Counters& counters,
                           std::chrono::seconds patience = 60s) {
  const auto give_up = std::chrono::steady_clock::now() + patience;
  for (int attempt = 0;; ++attempt) {
    httplib::Client http("127.0.0.1", port);
    http.set_connection_timeout(1s);
    http.set_read_timeout(10s);
    const auto result =
        http.Post("/v1/commands/" + request.command,
                  httplib::Headers{{"Idempotency-Key", request.key}}, request.body,
                  "application/json");
    if (!is_retryable(result)) {
      Answer answer{result->status, result->body, result->get_header_value("Location"),
                    result->get_header_value("Idempotent-Replayed") == "true"};
      if (answer.replayed) ++counters.replayed;
      return answer;
    }
    if (std::chrono::steady_clock::now() > give_up) return std::nullopt;
    ++counters.retried;
    // Pacing between re-sends, as a real client backs off; nothing waits on it.
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * std::min(attempt, 20)));
  }
}

// Runs one command to a definite answer, sometimes twice at the same moment, sometimes again
// on purpose afterwards; checks every copy got the same answer. Returns the answer.
std::optional<Answer> run_command(int port, const Request& request, std::mt19937& random,
                                  Counters& counters, Findings& findings) {
  ++counters.sent;
  std::optional<Answer> answer;
  if (random() % 10 == 0) {
    ++counters.concurrent;
    auto twin = std::async(std::launch::async, [&] { return send(port, request, counters); });
    answer = send(port, request, counters);
    const auto other = twin.get();
    if (answer && other && (answer->status != other->status || answer->body != other->body)) {
      findings.add("two concurrent sends of key " + request.key + " got different answers");
    }
    if (!answer) answer = other;
  } else {
    answer = send(port, request, counters);
  }
  if (!answer) return answer;

  if (answer->status / 100 != 2) {
    findings.add(request.command + " key " + request.key + " got " +
                 std::to_string(answer->status) + ": " + answer->body);
    return answer;
  }
  ++counters.acknowledged;

  if (random() % 5 == 0) {
    ++counters.deliberate;
    const auto again = send(port, request, counters);
    if (again && (!again->replayed || again->status != answer->status ||
                  again->body != answer->body || again->location != answer->location)) {
      findings.add("the deliberate retry of key " + request.key + " was not a replay");
    }
  }
  return answer;
}

// One client: registers assets, lists each for sale and reappraises it, until told to stop.
void client(int index, int port, const std::atomic<bool>& stop, Counters& counters,
            Findings& findings, std::vector<AssetRecord>& assets) {
  std::mt19937 random(1000 + index);
  for (int n = 0; !stop.load(); ++n) {
    AssetRecord record;
    record.name = "fault-c" + std::to_string(index) + "-a" + std::to_string(n);
    const auto registered = run_command(
        port, {to_string(new_uuid()), "RegisterAsset", register_body(record.name)}, random,
        counters, findings);
    record.sent_after = 1;
    if (!registered || registered->status != 201) {
      assets.push_back(record);
      continue;
    }
    record.asset_id = registered->location.substr(std::string("/v1/assets/").size());
    record.acknowledged_after = 1;

    const std::vector<Request> follow_ups = {
        {to_string(new_uuid()), "ListAssetForSale",
         R"({"asset_id":")" + record.asset_id +
             R"(","asking_price":{"amount_minor":27500000,"currency":"EUR"}})"},
        {to_string(new_uuid()), "ReappraiseAsset",
         R"({"asset_id":")" + record.asset_id +
             R"(","valuation":{"amount_minor":26000000,"currency":"EUR"}})"}};
    for (const auto& request : follow_ups) {
      ++record.sent_after;
      const auto answer = run_command(port, request, random, counters, findings);
      if (!answer || answer->status / 100 != 2) break;
      ++record.acknowledged_after;
    }
    assets.push_back(record);
  }
}

struct LoggedEvent {
  std::string stream_id;
  std::int64_t version = 0;
  std::string event_type;
  std::string payload;
  Uuid event_id{};
};

std::vector<LoggedEvent> read_log(const std::string& database_uri) {
  pqxx::connection connection(database_uri);
  pqxx::read_transaction tx(connection);
  std::vector<LoggedEvent> events;
  for (const auto& row : tx.exec("SELECT stream_id, stream_version, event_type, payload, "
                                 "event_id::text FROM deedkit.events "
                                 "ORDER BY stream_id, stream_version")) {
    LoggedEvent event;
    event.stream_id = row[0].as<std::string>();
    event.version = row[1].as<std::int64_t>();
    event.event_type = row[2].as<std::string>();
    const pqxx::binarystring payload(row[3]);
    event.payload = payload.str();
    event.event_id = *parse_uuid(row[4].as<std::string>());
    events.push_back(std::move(event));
  }
  return events;
}

TEST(FaultTest, NothingAcknowledgedIsLostAndNothingIsDoneTwiceUnderFaults) {
  ScratchDirectory scratch("faults");
  fs::permissions(scratch.path(), fs::perms::all);
  Deployment deployment(scratch.path());

  Counters counters;
  Findings findings;
  std::atomic<bool> stop{false};
  std::vector<std::vector<AssetRecord>> assets(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(client, i, deployment.port(), std::cref(stop), std::ref(counters),
                         std::ref(findings), std::ref(assets[i]));
  }

  // The fault schedule: each round injects the four faults in a random order, at random
  // moments while the clients keep sending.
  std::mt19937 random(20261204);
  std::vector<std::string> injected;
  for (int round = 0; round < kFaultRounds; ++round) {
    std::vector<int> kinds = {0, 1, 2, 3};
    std::shuffle(kinds.begin(), kinds.end(), random);
    for (const int kind : kinds) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 600));
      injected.push_back(deployment.inject(kind, random));
      ++counters.faults;
    }
  }
  std::this_thread::sleep_for(500ms);  // a last stretch of load without faults
  stop = true;
  for (auto& thread : clients) thread.join();

  // Let the relays drain the outbox and the runner catch up: conditions, with deadlines.
  const std::string uri = deployment.database_uri();
  const bool drained = wait_until(
      [&] {
        return query_value(uri, "SELECT count(*) FROM deedkit.outbox "
                                "WHERE published_at IS NULL AND discarded_at IS NULL") == "0";
      },
      120s);
  ASSERT_TRUE(drained) << "the relays did not drain the outbox";

  const auto log = read_log(uri);
  std::map<std::string, std::vector<Uuid>> events_by_stream;
  std::map<std::string, int> registrations_by_name;
  for (const auto& event : log) {
    events_by_stream[event.stream_id].push_back(event.event_id);
    if (event.event_type == "deedkit.realestate.v1.AssetRegistered") {
      realestate::v1::AssetRegistered registered;
      ASSERT_TRUE(registered.ParseFromString(event.payload)) << event.stream_id;
      ++registrations_by_name[registered.name()];
    }
  }

  // The log: every acknowledged command exactly once, no command twice.
  long losses = 0;
  long duplicates = 0;
  long assets_acknowledged = 0;
  for (const auto& per_client : assets) {
    for (const auto& record : per_client) {
      const int registrations = registrations_by_name[record.name];
      if (registrations > 1) ++duplicates;
      if (record.asset_id.empty()) continue;
      ++assets_acknowledged;
      if (registrations == 0) ++losses;
      const auto found = events_by_stream.find("asset-" + record.asset_id);
      const int events = found == events_by_stream.end() ? 0 : int(found->second.size());
      if (events < record.acknowledged_after) ++losses;
      if (events > record.sent_after) ++duplicates;
    }
  }

  // JetStream: every event exactly once, each stream's versions in order.
  const auto messages = read_stream(deployment.nats_url());
  const std::string broker_problem = check_exactly_once_in_order(messages, events_by_stream);

  // Read models: equal to the fold of the log, once the runner has caught up.
  ConnectionPool pool(PoolOptions{.database_uri = uri, .max_connections = 2});
  EventStore store(pool);
  const std::string today = database_today(uri);
  const LogFold fold = fold_log(store, today);
  const auto same_as_fold = [&](const ReadModels& views) {
    return views.asset_summary == fold.models.asset_summary &&
           views.active_listings == fold.models.active_listings &&
           views.portfolio == fold.models.portfolio && views.rent_roll == fold.models.rent_roll;
  };
  const bool caught_up = wait_until([&] { return same_as_fold(read_views(uri)); }, 120s);

  const std::string stuck_keys =
      query_value(uri, "SELECT count(*) FROM deedkit.idempotency_keys "
                       "WHERE response_status IS NULL");

  std::printf("fault suite: %ld commands sent, %ld acknowledged, %ld re-sent after no answer, "
              "%ld retried on purpose, %ld sent twice at once, %ld replayed; %ld faults "
              "injected; %zu events, %zu messages; %ld assets acknowledged; losses %ld, "
              "duplicates %ld\n",
              counters.sent.load(), counters.acknowledged.load(), counters.retried.load(),
              counters.deliberate.load(), counters.concurrent.load(), counters.replayed.load(),
              counters.faults.load(), log.size(), messages.size(), assets_acknowledged, losses,
              duplicates);
  for (const auto& fault : injected) std::printf("  fault: %s\n", fault.c_str());

  for (const auto& problem : findings.problems) ADD_FAILURE() << problem;
  EXPECT_EQ(losses, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(broker_problem, "");
  EXPECT_TRUE(caught_up) << "the read models never equalled the fold of the log";
  expect_same_models(fold.models, read_views(uri));
  EXPECT_EQ(stuck_keys, "0");
  EXPECT_GT(assets_acknowledged, kClients) << "too little load got through to judge";
  EXPECT_EQ(counters.faults.load(), 4 * kFaultRounds);
}

}  // namespace
}  // namespace deedkit::testing
