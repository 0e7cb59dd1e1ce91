// `deedkit demo`: the whole story against the private stack (or the configured one), told
// through the real HTTP API, relay and projection runner, then a summary. Exits 0 only when
// every step showed what it should; any surprise ends the demo with status 1 and the step.

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include "cli_context.hpp"
#include "deedkit/core/ids.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/outbox/outbox_admin.hpp"
#include "deedkit/outbox/relay.hpp"
#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"
#include "deedkit/service/http_service.hpp"
#include "private_nats.hpp"

namespace deedkit::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Ends the demo: the step that went wrong, on stderr.
[[noreturn]] void demo_failed(const std::string& what) { fail_command("demo", what); }

// A reply's JSON body as a protobuf Struct, so fields can be read without a JSON library.
google::protobuf::Struct parse_body(const std::string& body) {
  google::protobuf::Struct parsed;
  if (!google::protobuf::util::JsonStringToMessage(body, &parsed).ok()) {
    demo_failed("the service answered with a body that is not JSON: " + body);
  }
  return parsed;
}

std::string text_field(const google::protobuf::Struct& body, const std::string& name) {
  const auto found = body.fields().find(name);
  return found == body.fields().end() ? "" : found->second.string_value();
}

std::int64_t number_field(const google::protobuf::Struct& body, const std::string& name) {
  const auto found = body.fields().find(name);
  return found == body.fields().end() ? -1
                                      : static_cast<std::int64_t>(found->second.number_value());
}

// Waits for `done` to hold, checking every 20 ms, for at most `limit`.
bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

struct Reply {
  int status = 0;
  std::string body;
  bool replayed = false;
};

class DemoClient {
 public:
  explicit DemoClient(int port) : http_("127.0.0.1", port) {}

  Reply command(const std::string& name, const std::string& key, const std::string& body) {
    httplib::Headers headers = {{"Idempotency-Key", key}};
    auto result = http_.Post("/v1/commands/" + name, headers, body, "application/json");
    if (!result) demo_failed("POST /v1/commands/" + name + " got no answer");
    ++requests_;
    return {result->status, result->body,
            result->get_header_value("Idempotent-Replayed") == "true"};
  }

  Reply get(const std::string& path) {
    auto result = http_.Get(path);
    if (!result) demo_failed("GET " + path + " got no answer");
    ++requests_;
    return {result->status, result->body, false};
  }

  int requests() const { return requests_; }

 private:
  httplib::Client http_;
  int requests_ = 0;
};

std::string register_body(const std::string& name, const std::string& city,
                          const std::string& owner, std::int64_t valuation) {
  return R"({"kind":"HOUSE","name":")" + name + R"(","address":{"line1":"1 Demo Street","city":")" +
         city + R"(","postal_code":"1000","country":"NL"},"owner_id":")" + owner +
         R"(","valuation":{"amount_minor":)" + std::to_string(valuation) +
         R"(,"currency":"EUR"}})";
}

// Reads back from JetStream every message published since `since` whose stream is one of
// `streams`, checking each stream's versions arrive in order. Returns the count read.
int read_back_from_jetstream(const std::string& nats_url,
                             std::chrono::system_clock::time_point since,
                             const std::set<std::string>& streams, int expected) {
  natsConnection* connection = nullptr;
  jsCtx* context = nullptr;
  natsSubscription* subscription = nullptr;
  if (natsConnection_ConnectTo(&connection, nats_url.c_str()) != NATS_OK ||
      natsConnection_JetStream(&context, connection, nullptr) != NATS_OK) {
    demo_failed("cannot connect to NATS at " + redact_nats_url(nats_url) +
                " to read the messages back");
  }

  // An ordered consumer starting at the demo's start time: this run's messages only.
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = "DEEDKIT";
  options.Ordered = true;
  options.Config.DeliverPolicy = js_DeliverByStartTime;
  options.Config.OptStartTime =
      std::chrono::duration_cast<std::chrono::nanoseconds>(since.time_since_epoch()).count();
  if (js_SubscribeSync(&subscription, context, "deedkit.>", nullptr, &options, nullptr) !=
      NATS_OK) {
    demo_failed("cannot subscribe to the JetStream stream DEEDKIT");
  }

  std::map<std::string, std::int64_t> last_version;
  int read = 0;
  while (read < expected) {
    natsMsg* message = nullptr;
    if (natsSubscription_NextMsg(&message, subscription, 5000) != NATS_OK) break;
    const char* stream = nullptr;
    const char* version = nullptr;
    natsMsgHeader_Get(message, "Deedkit-Stream", &stream);
    natsMsgHeader_Get(message, "Deedkit-Version", &version);
    if (stream != nullptr && version != nullptr && streams.contains(stream)) {
      const std::int64_t number = std::stoll(version);
      if (number != last_version[stream] + 1) {
        demo_failed(std::string("JetStream holds ") + stream + " version " + version +
                    " after version " + std::to_string(last_version[stream]));
      }
      last_version[stream] = number;
      ++read;
    }
    natsMsg_Destroy(message);
  }

  natsSubscription_Destroy(subscription);
  jsCtx_Destroy(context);
  natsConnection_Destroy(connection);
  return read;
}

// A bar of `width` cells for `done` out of `total`.
void print_progress(std::int64_t done, std::int64_t total) {
  constexpr int kWidth = 30;
  const double share = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 1.0;
  const int filled = static_cast<int>(share * kWidth);
  std::printf("\r  rebuilding assets [%s%s] %3d%% (%lld of %lld events)",
              std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
              static_cast<int>(share * 100), static_cast<long long>(done),
              static_cast<long long>(total));
  std::fflush(stdout);
}

void run_demo(const GlobalOptions& globals) {
  // The story is the output; the components' info logs would bury it.
  if (globals.log_level == "info") spdlog::set_level(spdlog::level::warn);
  const auto started = Clock::now();
  const auto wall_start = std::chrono::system_clock::now() - std::chrono::seconds(1);

  std::printf("deedkit demo\n\n1. The stack\n");
  auto database = open_database(globals, true);
  if (!database) demo_failed(database.error().to_string());
  std::printf("  PostgreSQL: %s (migrated)\n",
              database->empty() ? "from PG* variables" : redact_database_uri(*database).c_str());

  std::optional<std::string> nats = configured_nats(globals);
  std::optional<PrivateNats> private_nats = nats ? std::nullopt : PrivateNats::start(".");
  if (private_nats) nats = private_nats->url();
  std::printf("  NATS JetStream: %s\n",
              nats ? redact_nats_url(*nats).c_str()
                   : "none installed: relayed messages go to stdout instead");

  ConnectionPool pool({.database_uri = *database, .max_connections = 12});
  service::ServiceOptions service_options;
  service_options.port = 0;
  service_options.worker_threads = 4;
  service::HttpService service(service_options, pool);
  if (auto listening = service.start(); !listening) demo_failed(listening.error().to_string());
  std::printf("  HTTP API: http://127.0.0.1:%d\n", service.port());
  DemoClient client(service.port());
  const std::string run = to_string(new_uuid()).substr(0, 8);  // keys unique to this run

  std::printf("\n2. Register three assets for one owner\n");
  const std::string owner = to_string(new_uuid());
  const std::vector<std::pair<std::string, std::string>> houses = {
      {"Canal house", "Amsterdam"}, {"Dune villa", "Haarlem"}, {"Harbour loft", "Rotterdam"}};
  std::vector<std::string> asset_ids;
  std::set<std::string> streams;
  std::int64_t events_written = 0;
  for (std::size_t i = 0; i < houses.size(); ++i) {
    const auto reply = client.command(
        "RegisterAsset", run + "-register-" + std::to_string(i),
        register_body(houses[i].first, houses[i].second, owner, 40'000'000 + 5'000'000 * i));
    if (reply.status != 201) demo_failed("RegisterAsset answered " + reply.body);
    const auto body = parse_body(reply.body);
    asset_ids.push_back(text_field(body, "asset_id"));
    streams.insert(text_field(body, "stream_id"));
    ++events_written;
    std::printf("  201 %-13s %s  %s\n", houses[i].first.c_str(), houses[i].second.c_str(),
                text_field(body, "stream_id").c_str());
  }

  std::printf("\n3. List two of them for sale\n");
  for (std::size_t i = 0; i < 2; ++i) {
    const auto reply = client.command(
        "ListAssetForSale", run + "-list-" + std::to_string(i),
        R"({"asset_id":")" + asset_ids[i] + R"(","asking_price":{"amount_minor":)" +
            std::to_string(45'000'000 + 5'000'000 * i) + R"(,"currency":"EUR"}})");
    if (reply.status != 200) demo_failed("ListAssetForSale answered " + reply.body);
    ++events_written;
    std::printf("  200 %s listed, now at version %lld\n", houses[i].first.c_str(),
                static_cast<long long>(number_field(parse_body(reply.body), "version")));
  }

  std::printf("\n4. Retry the first registration with the same key and body\n");
  const auto replay = client.command("RegisterAsset", run + "-register-0",
                                     register_body("Canal house", "Amsterdam", owner, 40'000'000));
  if (replay.status != 201 || !replay.replayed ||
      text_field(parse_body(replay.body), "asset_id") != asset_ids[0]) {
    demo_failed("the retry was not a replay of the first answer: " + replay.body);
  }
  std::printf("  %d with Idempotent-Replayed: true and the same asset id; nothing ran twice\n",
              replay.status);

  std::printf("\n5. Reuse that key with another body\n");
  const auto reused = client.command("RegisterAsset", run + "-register-0",
                                     register_body("Other house", "Utrecht", owner, 1'000));
  if (reused.status != 422) demo_failed("reusing a key answered " + reused.body);
  std::printf("  422 %s\n", text_field(parse_body(reused.body), "title").c_str());

  std::printf("\n6. Race two reappraisals of the third asset\n");
  std::vector<Reply> racers(2);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        DemoClient own(service.port());
        racers[i] = own.command(
            "ReappraiseAsset", run + "-reappraise-" + std::to_string(i),
            R"({"asset_id":")" + asset_ids[2] + R"(","valuation":{"amount_minor":)" +
                std::to_string(50'000'000 + i) + R"(,"currency":"EUR"}})");
      });
    }
    for (auto& thread : threads) thread.join();
  }
  std::set<std::int64_t> versions;
  for (const auto& racer : racers) {
    if (racer.status != 200) demo_failed("a racing ReappraiseAsset answered " + racer.body);
    versions.insert(number_field(parse_body(racer.body), "version"));
  }
  if (versions.size() != 2) demo_failed("both racers claim the same version");
  events_written += 2;
  std::printf("  both 200, at versions %lld and %lld: optimistic concurrency put them in order; "
              "a loser reloads and decides again\n",
              static_cast<long long>(*versions.begin()),
              static_cast<long long>(*versions.rbegin()));
  const auto third = parse_body(client.get("/v1/assets/" + asset_ids[2]).body);
  std::printf("  GET /v1/assets/%s: version %lld\n", asset_ids[2].c_str(),
              static_cast<long long>(number_field(third, "version")));

  std::printf("\n7. Relay the outbox to %s\n", nats ? "JetStream" : "stdout");
  RelayOptions relay_options;
  relay_options.database_uri = *database;
  relay_options.nats_url = nats;
  Relay relay(relay_options);
  std::thread relaying([&relay] {
    if (auto ran = relay.run(); !ran) {
      spdlog::error("demo: relay stopped: {}", ran.error().to_string());
    }
  });
  const bool drained = wait_until(
      [&pool] {
        auto status = read_outbox_status(pool);
        return status && status->rows_waiting == 0;
      },
      std::chrono::seconds(30));
  relay.stop();
  relaying.join();
  if (!drained) demo_failed("the relay did not drain the outbox within 30 s");
  int messages_read = 0;
  if (nats) {
    messages_read = read_back_from_jetstream(*nats, wall_start, streams,
                                             static_cast<int>(events_written));
    if (messages_read != events_written) {
      demo_failed("read back " + std::to_string(messages_read) + " of " +
                  std::to_string(events_written) + " messages from JetStream");
    }
    std::printf("  read back %d messages from JetStream, each stream's versions in order\n",
                messages_read);
  }

  std::printf("\n8. Projections: catch up, then rebuild the assets read model\n");
  const auto projections = realestate::make_real_estate_projections();
  std::vector<const Projection*> running;
  for (const auto& projection : projections) running.push_back(projection.get());
  ProjectionRunner runner(pool, running, {.leadership_interval = std::chrono::milliseconds(100)});
  runner.start();
  const Projection& assets = *running.front();
  const auto caught_up = [&pool, &running](bool rebuilt) {
    auto status = projection_status(pool, running);
    if (!status) return false;
    for (const auto& projection : *status) {
      if (projection.name != "assets") continue;
      if (rebuilt && projection.building) return false;
      return projection.live && projection.live->lag_events == 0 && !projection.live->failure;
    }
    return false;
  };
  if (!wait_until([&] { return caught_up(false); }, std::chrono::seconds(30))) {
    demo_failed("the assets projection did not catch up within 30 s");
  }
  auto rebuild = request_rebuild(pool, assets);
  if (!rebuild) demo_failed(rebuild.error().to_string());
  std::int64_t shown = -1;
  std::int64_t total = 0;
  const bool rebuilt = wait_until(
      [&] {
        auto status = projection_status(pool, running, false);
        if (status) {
          for (const auto& projection : *status) {
            if (projection.name != "assets" || !projection.building) continue;
            total = projection.building->events_total_estimate;
            if (projection.building->events_read != shown) {
              shown = projection.building->events_read;
              print_progress(shown, total);
            }
          }
        }
        return caught_up(true);
      },
      std::chrono::seconds(60));
  if (rebuilt) print_progress(total, total);
  std::printf("\n");
  if (!rebuilt) demo_failed("the rebuild of the assets projection did not finish within 60 s");
  runner.stop();

  const auto listings = parse_body(client.get("/v1/listings?city=Amsterdam").body);
  const auto portfolio = parse_body(client.get("/v1/owners/" + owner + "/portfolio").body);
  std::printf("  GET /v1/listings?city=Amsterdam: %d item(s) after the switch to generation %d\n",
              listings.fields().at("items").list_value().values_size(), rebuild->generation);
  std::string portfolio_json;
  if (!google::protobuf::util::MessageToJsonString(portfolio, &portfolio_json).ok()) {
    portfolio_json = "?";
  }
  std::printf("  GET /v1/owners/%s/portfolio: %s\n", owner.c_str(),
              portfolio_json.c_str());
  service.stop();

  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("\nSummary: %d HTTP requests, %lld events in %zu streams, 1 replay, 1 key reuse "
              "refused, 1 race resolved, %d messages read back from JetStream, 1 rebuild; "
              "%.1f s\n",
              client.requests(), static_cast<long long>(events_written), streams.size(),
              messages_read, seconds);
  exit_with(0);
}

}  // namespace

void add_demo_command(CLI::App& app, GlobalOptions& options) {
  auto* command =
      app.add_subcommand("demo", "Run the whole deedkit story once and print what happened");
  command->footer(
      "Registers assets over the HTTP API, shows a replay, a reused key and a race, relays\n"
      "the events to JetStream and reads them back, and rebuilds a projection. With nothing\n"
      "configured it uses the private PostgreSQL of this folder and a private nats-server.\n\n"
      "Examples:\n"
      "  deedkit demo\n"
      "  deedkit --database postgresql:///scratch --nats nats://127.0.0.1:4222 demo");
  command->callback([&options] { run_demo(options); });
}

}  // namespace deedkit::cli
