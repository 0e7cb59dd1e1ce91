#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"
#include "deedkit/service/http_service.hpp"
#include "suite_service.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

const std::string kOwner = "5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10";
const std::string kBuyer = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

std::string register_body(const std::string& name = "Canal house", long long valuation = 25000000) {
  return R"({"kind":"HOUSE","name":")" + name +
         R"(","address":{"line1":"Herengracht 1","city":"Amsterdam","postal_code":"1015 BA",)"
         R"("country":"NL"},"owner_id":")" + kOwner +
         R"(","valuation":{"amount_minor":)" + std::to_string(valuation) +
         R"(,"currency":"EUR"}})";
}

class HttpApiTest : public DatabaseTest {
 protected:
  static void SetUpTestSuite() {
    DatabaseTest::SetUpTestSuite();
    service::ServiceOptions options;
    options.port = 0;
    options.worker_threads = 4;
    options.max_body_bytes = 4096;
    options.idempotency.wait_for_in_flight = std::chrono::milliseconds(100);
    service_ = start_suite_service(options, pool());
  }
  static void TearDownTestSuite() {
    service_.reset();
    DatabaseTest::TearDownTestSuite();
  }

  static httplib::Client client() {
    httplib::Client http("127.0.0.1", service_->port());
    http.set_read_timeout(std::chrono::seconds(10));
    return http;
  }

  static httplib::Result post(const std::string& command, const std::string& body,
                              const std::string& key,
                              const std::string& content_type = "application/json") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Idempotency-Key", key);
    return client().Post(("/v1/commands/" + command).c_str(), headers, body,
                         content_type.c_str());
  }

  static std::string fresh_key() { return "k-" + to_string(new_uuid()); }

  // Registers an asset and returns its id.
  static std::string register_asset() {
    const auto response = post("RegisterAsset", register_body(), fresh_key());
    EXPECT_EQ(response->status, 201) << response->body;
    const std::string location = response->get_header_value("Location");
    return location.substr(location.rfind('/') + 1);
  }

  static std::string events_count() {
    return query_value(database_uri(), "SELECT count(*) FROM deedkit.events");
  }

  static void expect_problem(const httplib::Result& response, int status,
                             const std::string& detail_mentions = "") {
    ASSERT_TRUE(response) << "no HTTP response";
    EXPECT_EQ(response->status, status) << response->body;
    EXPECT_EQ(response->get_header_value("Content-Type"), "application/problem+json");
    EXPECT_NE(response->body.find("\"type\":\"https://deedkit.dev/problems/"), std::string::npos);
    EXPECT_NE(response->body.find("\"status\":" + std::to_string(status)), std::string::npos);
    EXPECT_NE(response->body.find(detail_mentions), std::string::npos)
        << "the problem detail should mention '" << detail_mentions << "': " << response->body;
  }

  static inline std::unique_ptr<service::HttpService> service_;
};

TEST_F(HttpApiTest, ACreatingCommandAnswers201WithLocationAndTheNewVersion) {
  const auto response = post("RegisterAsset", register_body(), fresh_key());

  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 201) << response->body;
  const std::string location = response->get_header_value("Location");
  ASSERT_TRUE(location.starts_with("/v1/assets/"));
  const std::string asset_id = location.substr(11);
  EXPECT_NE(response->body.find("\"asset_id\":\"" + asset_id + "\""), std::string::npos);
  EXPECT_NE(response->body.find("\"stream_id\":\"asset-" + asset_id + "\""), std::string::npos);
  EXPECT_NE(response->body.find("\"version\":1"), std::string::npos);
}

TEST_F(HttpApiTest, AnUpdatingCommandAnswers200AndSnakeOrCamelCaseFieldsAreAccepted) {
  const std::string asset_id = register_asset();

  const auto snake = post("ReappraiseAsset",
                          R"({"asset_id":")" + asset_id +
                              R"(","valuation":{"amount_minor":26000000,"currency":"EUR"}})",
                          fresh_key());
  const auto camel = post("ReappraiseAsset",
                          R"({"assetId":")" + asset_id +
                              R"(","valuation":{"amountMinor":27000000,"currency":"EUR"}})",
                          fresh_key());

  EXPECT_EQ(snake->status, 200) << snake->body;
  EXPECT_NE(snake->body.find("\"version\":2"), std::string::npos) << snake->body;
  EXPECT_EQ(camel->status, 200) << camel->body;
  EXPECT_NE(camel->body.find("\"version\":3"), std::string::npos) << camel->body;
}

TEST_F(HttpApiTest, ARetryReplaysTheOriginalResponseWithTheReplayHeader) {
  const std::string key = fresh_key();
  const auto first = post("RegisterAsset", register_body(), key);
  const std::string before = events_count();

  // Same command, other field order and spacing: still the same request.
  const auto retry = post("RegisterAsset", "  " + register_body() + "\n", key);

  ASSERT_EQ(first->status, 201);
  EXPECT_EQ(retry->status, 201);
  EXPECT_EQ(retry->body, first->body);
  EXPECT_EQ(retry->get_header_value("Location"), first->get_header_value("Location"));
  EXPECT_EQ(retry->get_header_value("Idempotent-Replayed"), "true");
  EXPECT_FALSE(first->has_header("Idempotent-Replayed"));
  EXPECT_EQ(events_count(), before);
}

TEST_F(HttpApiTest, AKeyReusedWithAnotherBodyIs422AndIsTimedLikeAnyCommand) {
  const std::string key = fresh_key();
  ASSERT_EQ(post("RegisterAsset", register_body("One"), key)->status, 201);
  const auto timed = [this] {
    const std::string body = client().Get("/metrics")->body;
    const std::string name = "\ndeedkit_command_duration_seconds_count ";
    const std::size_t at = body.find(name);
    return at == std::string::npos ? -1LL : std::stoll(body.substr(at + name.size()));
  };
  const long long before = timed();

  expect_problem(post("RegisterAsset", register_body("Two"), key), 422, key);

  EXPECT_EQ(timed(), before + 1) << "a failed command counts in the latency histogram";
}

TEST_F(HttpApiTest, MalformedJsonAndInvalidFieldsAre400NamingTheProblem) {
  const std::string before = events_count();

  expect_problem(post("RegisterAsset", R"({"name": "x",)", fresh_key()), 400, "JSON");
  expect_problem(post("RegisterAsset", R"({"valuation": "lots"})", fresh_key()), 400,
                 "valuation");
  expect_problem(post("RegisterAsset", R"({"colour": "red"})", fresh_key()), 400, "colour");
  expect_problem(post("RegisterAsset", R"({"kind":"CASTLE"})", fresh_key()), 400, "kind");
  expect_problem(post("RegisterAsset", R"(["not", "an", "object"])", fresh_key()), 400);
  expect_problem(post("RegisterAsset", register_body("x", -5), fresh_key()), 400, "amount");
  EXPECT_EQ(events_count(), before);
}

TEST_F(HttpApiTest, AMissingOrInvalidIdempotencyKeyIs400) {
  expect_problem(post("RegisterAsset", register_body(), ""), 400, "Idempotency-Key");
  expect_problem(post("RegisterAsset", register_body(), std::string(256, 'k')), 400, "255");
}

TEST_F(HttpApiTest, UnknownCommandsAndAggregatesAre404) {
  expect_problem(post("TeleportAsset", "{}", fresh_key()), 404, "TeleportAsset");
  const std::string missing = to_string(new_uuid());
  expect_problem(post("ReappraiseAsset",
                      R"({"asset_id":")" + missing +
                          R"(","valuation":{"amount_minor":1,"currency":"EUR"}})",
                      fresh_key()),
                 404, missing);
  expect_problem(client().Get(("/v1/assets/" + missing).c_str()), 404, missing);
  expect_problem(client().Get("/v1/assets/not-a-uuid"), 400, "not-a-uuid");
}

TEST_F(HttpApiTest, ABusinessRuleRefusalIs409WithItsRejectionCode) {
  const std::string asset_id = register_asset();
  const std::string listing = R"({"asset_id":")" + asset_id +
                              R"(","asking_price":{"amount_minor":30000000,"currency":"EUR"}})";
  ASSERT_EQ(post("ListAssetForSale", listing, fresh_key())->status, 200);

  const auto again = post("ListAssetForSale", listing, fresh_key());

  expect_problem(again, 409);
  EXPECT_NE(again->body.find("\"code\":\"asset_already_listed\""), std::string::npos)
      << again->body;
}

TEST_F(HttpApiTest, ASecondRequestWhileTheFirstHoldsTheKeyIs409InProgress) {
  const std::string key = fresh_key();
  auto holder = UnitOfWork::begin(pool());
  ASSERT_TRUE(holder.has_value());
  holder->tx().exec_params(
      "INSERT INTO deedkit.idempotency_keys (scope, idempotency_key, command_name, "
      "fingerprint, fingerprint_version) VALUES ('anonymous', $1, 'RegisterAsset', 'f', 1)",
      key);

  expect_problem(post("RegisterAsset", register_body(), key), 409, "in progress");
}

TEST_F(HttpApiTest, OversizedBodiesAre413AndNonJsonBodiesAre415) {
  expect_problem(post("RegisterAsset", std::string(5000, ' ') + "{}", fresh_key()), 413);
  expect_problem(post("RegisterAsset", register_body(), fresh_key(), "text/plain"), 415);
}

TEST_F(HttpApiTest, ATruncatedBodyStoresNothingAndTheServiceStaysUp) {
  const std::string before = events_count();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(service_->port()));
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  const std::string partial =
      "POST /v1/commands/RegisterAsset HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Idempotency-Key: truncated\r\nContent-Length: 400\r\n\r\n" + register_body().substr(0, 40);
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  ::shutdown(fd, SHUT_WR);
  char buffer[512];
  while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
  }
  ::close(fd);

  EXPECT_EQ(client().Get("/healthz")->status, 200);
  EXPECT_EQ(events_count(), before);
}

TEST_F(HttpApiTest, EveryReadRouteAnswers) {
  const std::string asset_id = register_asset();

  const auto asset = client().Get(("/v1/assets/" + asset_id).c_str());
  const auto events = client().Get(("/v1/assets/" + asset_id + "/events").c_str());
  const auto health = client().Get("/healthz");
  const auto metrics = client().Get("/metrics");

  EXPECT_EQ(asset->status, 200);
  EXPECT_NE(asset->body.find("\"owner_id\":\"" + kOwner + "\""), std::string::npos) << asset->body;
  EXPECT_NE(asset->body.find("\"status\":\"REGISTERED\""), std::string::npos) << asset->body;
  EXPECT_NE(asset->body.find("\"version\":1"), std::string::npos);
  EXPECT_EQ(events->status, 200);
  EXPECT_NE(events->body.find("deedkit.realestate.v1.AssetRegistered"), std::string::npos);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("deedkit_http_requests_total{route=\"POST /v1/commands/{name}\""),
            std::string::npos);
  EXPECT_NE(metrics->body.find("deedkit_outbox_backlog"), std::string::npos);
  EXPECT_NE(metrics->body.find("deedkit_command_duration_seconds_bucket"), std::string::npos);
}

TEST_F(HttpApiTest, MetricsShowOutboxDeadLettersAndEachProjectionsLag) {
  register_asset();
  register_asset();
  // As relays leave them: one row failed twice and waits, one was published just now.
  query_value(database_uri(), "UPDATE deedkit.outbox SET attempts = 2 WHERE outbox_id = "
                              "(SELECT min(outbox_id) FROM deedkit.outbox "
                              " WHERE published_at IS NULL)");
  query_value(database_uri(), "UPDATE deedkit.outbox SET published_at = now() WHERE outbox_id = "
                              "(SELECT max(outbox_id) FROM deedkit.outbox)");
  query_value(database_uri(),
              "INSERT INTO deedkit.projection_generations (projection, generation, version, "
              "role, tables) VALUES ('metrics_probe', 900001, 1, 'live', '{}')");
  const std::string events = events_count();

  const auto metrics = client().Get("/metrics");

  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("deedkit_outbox_dead_letters 0"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("deedkit_projection_lag_events{projection=\"metrics_probe\"} " +
                               events),
            std::string::npos)
      << "a projection that never ran lags by the whole log: " << metrics->body;
  EXPECT_NE(metrics->body.find("deedkit_projection_failed{projection=\"metrics_probe\"} 0"),
            std::string::npos);
  const auto gauge = [&](const std::string& name) {
    const std::size_t at = metrics->body.find("\n" + name + " ");
    return at == std::string::npos ? -1.0
                                   : std::stod(metrics->body.substr(at + name.size() + 2));
  };
  EXPECT_GE(gauge("deedkit_outbox_failed_attempts"), 2) << metrics->body;
  EXPECT_GE(gauge("deedkit_outbox_published_per_second"), 1.0 / 60) << metrics->body;
  query_value(database_uri(),
              "DELETE FROM deedkit.projection_generations WHERE projection = 'metrics_probe'");
}

TEST_F(HttpApiTest, MetricsShowEventsHeldBackByAnOpenTransaction) {
  // A transaction that has an id and stays open: events committed after it wait for it.
  pqxx::connection holder_connection(database_uri());
  pqxx::work holder(holder_connection);
  holder.exec("SELECT pg_current_xact_id()");
  register_asset();

  const auto metrics = client().Get("/metrics");
  holder.commit();

  ASSERT_EQ(metrics->status, 200);
  const std::string name = "deedkit_log_held_back_events ";
  const std::size_t at = metrics->body.find("\n" + name);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_GE(std::stoll(metrics->body.substr(at + 1 + name.size())), 1) << metrics->body;
  EXPECT_NE(metrics->body.find("\ndeedkit_log_held_back_seconds "), std::string::npos);
}

TEST_F(HttpApiTest, ACorruptEventIsA500NamingItWhileOtherAssetsStayReadable) {
  const std::string broken = register_asset();
  const std::string healthy = register_asset();
  query_value(database_uri(),
              "INSERT INTO deedkit.events (stream_id, stream_version, event_id, event_type, "
              "payload) VALUES ('asset-" + broken + "', 2, gen_random_uuid(), "
              "'deedkit.realestate.v1.AssetReappraised', '\\xffff')");

  const auto read = client().Get(("/v1/assets/" + broken).c_str());
  const auto command = post("ReappraiseAsset",
                            R"({"asset_id":")" + broken +
                                R"(","valuation":{"amount_minor":1,"currency":"EUR"}})",
                            fresh_key());
  const auto other = client().Get(("/v1/assets/" + healthy).c_str());

  expect_problem(read, 500, "asset-" + broken + "@2");
  EXPECT_NE(read->body.find("corrupt-data"), std::string::npos) << read->body;
  expect_problem(command, 500, "AssetReappraised");
  EXPECT_EQ(other->status, 200) << "one corrupt stream must not affect others";
  EXPECT_EQ(query_value(database_uri(), "SELECT count(*) FROM deedkit.events "
                                        "WHERE stream_id = 'asset-" + broken + "'"),
            "2")
      << "no command runs on a state that could not be loaded";
}

TEST_F(HttpApiTest, LeasesAreServedToo) {
  const std::string asset_id = register_asset();
  const auto drafted = post("DraftLease",
                            R"({"asset_id":")" + asset_id + R"(","tenant_id":")" + kBuyer +
                                R"(","monthly_rent":{"amount_minor":150000,"currency":"EUR"},)"
                                R"("start_date":"2027-01-01","end_date":"2027-12-31"})",
                            fresh_key());
  ASSERT_EQ(drafted->status, 201) << drafted->body;
  const std::string location = drafted->get_header_value("Location");
  EXPECT_TRUE(location.starts_with("/v1/leases/"));

  const auto lease = client().Get(location.c_str());

  EXPECT_EQ(lease->status, 200);
  EXPECT_NE(lease->body.find("\"tenant_id\":\"" + kBuyer + "\""), std::string::npos);
}

TEST_F(HttpApiTest, ListingsAndPortfoliosAreServedFromTheReadModels) {
  const std::string owner = to_string(new_uuid());
  const auto register_in = [&](const std::string& city, long long price) {
    std::string body = register_body("Listed", 1000000);
    body.replace(body.find("Amsterdam"), 9, city);
    body.replace(body.find(kOwner), kOwner.size(), owner);
    const auto created = post("RegisterAsset", body, fresh_key());
    const std::string location = created->get_header_value("Location");
    const std::string id = location.substr(location.rfind('/') + 1);
    EXPECT_EQ(post("ListAssetForSale",
                   R"({"asset_id":")" + id + R"(","asking_price":{"amount_minor":)" +
                       std::to_string(price) + R"(,"currency":"EUR"}})",
                   fresh_key())
                  ->status,
              200);
    return id;
  };
  const std::string cheap = register_in("Haarlem", 200000);
  const std::string dear = register_in("Haarlem", 900000);
  register_in("Leiden", 300000);

  realestate::AssetsProjection assets;
  const std::vector<const Projection*> projections{&assets};
  ProjectionRunner runner(pool(), projections, RunnerOptions{});
  runner.start();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool caught_up = false;
  while (!caught_up && std::chrono::steady_clock::now() < give_up) {
    const auto status = projection_status(pool(), projections, true);
    caught_up = status && !status->empty() && status->front().live &&
                !status->front().building && status->front().live->lag_events == 0;
    if (!caught_up) std::this_thread::yield();
  }
  runner.stop();
  ASSERT_TRUE(caught_up) << "the assets projection did not catch up";

  const auto haarlem = client().Get("/v1/listings?city=Haarlem&min_price=100000&max_price=1000000");
  const auto first_page = client().Get("/v1/listings?city=Haarlem&limit=1");
  const auto in_range = client().Get("/v1/listings?min_price=250000&max_price=950000");
  const auto bad_price = client().Get("/v1/listings?min_price=cheap");
  const auto portfolio = client().Get(("/v1/owners/" + owner + "/portfolio").c_str());

  ASSERT_EQ(haarlem->status, 200) << haarlem->body;
  EXPECT_NE(haarlem->body.find(cheap), std::string::npos) << haarlem->body;
  EXPECT_NE(haarlem->body.find(dear), std::string::npos) << haarlem->body;
  EXPECT_EQ(haarlem->body.find("Leiden"), std::string::npos) << haarlem->body;
  EXPECT_NE(first_page->body.find(cheap), std::string::npos) << "cheapest first";
  EXPECT_NE(first_page->body.find("\"next_page_token\":\"1\""), std::string::npos)
      << first_page->body;
  EXPECT_EQ(in_range->body.find(cheap), std::string::npos) << "below min_price";
  EXPECT_NE(in_range->body.find(dear), std::string::npos) << in_range->body;
  expect_problem(bad_price, 400, "min_price");
  ASSERT_EQ(portfolio->status, 200) << portfolio->body;
  EXPECT_NE(portfolio->body.find("\"asset_count\":3"), std::string::npos) << portfolio->body;
  EXPECT_NE(portfolio->body.find("\"total_valuation_minor\":3000000"), std::string::npos)
      << portfolio->body;
}

class HttpAuthTest : public DatabaseTest {};

TEST_F(HttpAuthTest, WithTokensOnlyKnownBearersGetInAndTheirPrincipalIsRecorded) {
  service::ServiceOptions options;
  options.port = 0;
  options.tokens = {{"s3cret-token", "alice"}};
  service::HttpService service(options, pool());
  ASSERT_TRUE(service.start().has_value());
  httplib::Client http("127.0.0.1", service.port());

  httplib::Headers without{{"Idempotency-Key", "a1"}};
  httplib::Headers wrong{{"Idempotency-Key", "a1"}, {"Authorization", "Bearer nope"}};
  httplib::Headers right{{"Idempotency-Key", "a1"}, {"Authorization", "Bearer s3cret-token"}};
  const auto anonymous = http.Post("/v1/commands/RegisterAsset", without, register_body(),
                                   "application/json");
  const auto wrong_token = http.Post("/v1/commands/RegisterAsset", wrong, register_body(),
                                     "application/json");
  const auto alice = http.Post("/v1/commands/RegisterAsset", right, register_body(),
                               "application/json");
  const auto health = http.Get("/healthz");

  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(wrong_token->status, 401);
  EXPECT_EQ(wrong_token->body.find("nope"), std::string::npos) << "never echo credentials";
  ASSERT_EQ(alice->status, 201) << alice->body;
  EXPECT_EQ(health->status, 200) << "health stays public for probes";
  EXPECT_EQ(query_value(database_uri(), "SELECT metadata->>'principal' FROM deedkit.events "
                                        "ORDER BY global_position DESC LIMIT 1"),
            "alice");
}

TEST_F(HttpAuthTest, TokenFilesAreParsedAndBadLinesNamed) {
  const std::string path = "/tmp/deedkit-tokens-" + to_string(new_uuid());
  std::ofstream(path) << "# comment\n\ntok1 alice\ntok2 bob extra\n";

  const auto tokens = service::load_token_file(path);

  ASSERT_FALSE(tokens.has_value());
  EXPECT_NE(tokens.error().message.find(":4"), std::string::npos) << tokens.error().message;
  std::remove(path.c_str());
}

class HttpUnavailableTest : public ::testing::Test {};

TEST_F(HttpUnavailableTest, AnUnreachableDatabaseIs503) {
  ConnectionPool nowhere({.database_uri = "host=/nonexistent-socket-dir dbname=x",
                          .acquire_timeout = std::chrono::milliseconds(100)});
  service::ServiceOptions options;
  options.port = 0;
  service::HttpService service(options, nowhere);
  ASSERT_TRUE(service.start().has_value());
  httplib::Client http("127.0.0.1", service.port());

  const auto health = http.Get("/healthz");
  const auto command = http.Post("/v1/commands/RegisterAsset",
                                 httplib::Headers{{"Idempotency-Key", "u1"}}, register_body(),
                                 "application/json");

  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(command->status, 503);
}

}  // namespace
}  // namespace deedkit::testing
