// Malformed and hostile requests over a real socket: each gets its documented 4xx as a
// problem document, the service stays up, and the database is exactly as it was.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "deedkit/service/http_service.hpp"
#include "suite_service.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

const std::string kOwner = "5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10";
const std::string kAliceToken = "alice-token";
const std::string kBobToken = "bob-token";
constexpr std::size_t kMaxBody = 16 * 1024;

// A valid RegisterAsset body in which `field` (a top-level JSON member, written out whole,
// e.g. R"("name":"x")") replaces the member of the same name.
std::string register_body_with(const std::string& name_member = R"("name":"Canal house")",
                               const std::string& address_member =
                                   R"("address":{"line1":"Herengracht 1","city":"Amsterdam",)"
                                   R"("postal_code":"1015 BA","country":"NL"})",
                               const std::string& owner_member =
                                   R"("owner_id":"5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10")",
                               const std::string& valuation_member =
                                   R"("valuation":{"amount_minor":25000000,"currency":"EUR"})") {
  return R"({"kind":"HOUSE",)" + name_member + "," + address_member + "," + owner_member + "," +
         valuation_member + "}";
}

std::string with_name(const std::string& json_value) {
  return register_body_with(R"("name":)" + json_value);
}

std::string with_city(const std::string& json_value) {
  return register_body_with(R"("name":"Canal house")",
                            R"("address":{"line1":"Herengracht 1","city":)" + json_value +
                                R"(,"postal_code":"1015 BA","country":"NL"})");
}

std::string with_owner(const std::string& json_value) {
  return register_body_with(R"("name":"Canal house")",
                            R"("address":{"line1":"Herengracht 1","city":"Amsterdam",)"
                            R"("postal_code":"1015 BA","country":"NL"})",
                            R"("owner_id":)" + json_value);
}

std::string with_amount(const std::string& amount, const std::string& currency = "\"EUR\"") {
  return register_body_with(R"("name":"Canal house")",
                            R"("address":{"line1":"Herengracht 1","city":"Amsterdam",)"
                            R"("postal_code":"1015 BA","country":"NL"})",
                            R"("owner_id":")" + kOwner + "\"",
                            R"("valuation":{"amount_minor":)" + amount +
                                R"(,"currency":)" + currency + "}");
}

struct HostileRequest {
  std::string what;
  std::string command;
  std::string body;
  int status;
  std::string content_type = "application/json";
};

std::vector<HostileRequest> hostile_requests() {
  const std::string sql = R"("'; DROP TABLE deedkit.events; --")";
  return {
      {"broken JSON", "RegisterAsset", R"({"name": "x",)", 400},
      {"truncated JSON", "RegisterAsset", register_body_with().substr(0, 60), 400},
      {"empty body", "RegisterAsset", "", 400},
      {"null body", "RegisterAsset", "null", 400},
      {"a string instead of an object", "RegisterAsset", R"("RegisterAsset")", 400},
      {"deeply nested arrays", "RegisterAsset",
       R"({"name":)" + std::string(5000, '[') + std::string(5000, ']') + "}", 400},
      {"deeply nested objects", "RegisterAsset",
       [] {
         std::string body;
         for (int i = 0; i < 1000; ++i) body += R"({"address":)";
         return body + "{}" + std::string(1000, '}');
       }(),
       400},
      {"a number for a string", "RegisterAsset", with_name("5"), 400},
      {"an object for an enum", "RegisterAsset",
       R"({"kind":{"x":1},"name":"Canal house"})", 400},
      {"an array for an object", "RegisterAsset", with_city("[]"), 400},
      {"a word for an amount", "RegisterAsset", with_amount(R"("lots")"), 400},
      {"a huge number", "RegisterAsset", with_amount("1e400"), 400},
      {"an amount past int64", "RegisterAsset", with_amount("9223372036854775808"), 400},
      {"the smallest int64 amount", "RegisterAsset", with_amount("-9223372036854775808"), 400},
      {"a negative amount", "RegisterAsset", with_amount("-1"), 400},
      {"a fractional minor unit", "RegisterAsset", with_amount("10.5"), 400},
      {"SQL in the currency", "RegisterAsset", with_amount("100", sql), 400},
      {"an owner id that is not a UUID", "RegisterAsset", with_owner(R"("not-a-uuid")"), 400},
      {"SQL in the owner id", "RegisterAsset", with_owner(sql), 400},
      {"SQL in an asset id", "ReappraiseAsset",
       R"({"asset_id":)" + sql + R"(,"valuation":{"amount_minor":1,"currency":"EUR"}})", 400},
      {"a control character in the name", "RegisterAsset", with_name(R"("Canal\u0007house")"),
       400},
      {"a NUL in the city", "RegisterAsset", with_city(R"("Amster\u0000dam")"), 400},
      {"a raw control character in the JSON", "RegisterAsset", with_name("\"Canal\x01house\""),
       400},
      {"a lone surrogate", "RegisterAsset", with_name(R"("\ud800")"), 400},
      {"bytes that are not UTF-8", "RegisterAsset", with_name("\"\xff\xfe\""), 400},
      {"a 10 KB name", "RegisterAsset", with_name("\"" + std::string(10240, 'n') + "\""), 400},
      {"a 10 KB city", "RegisterAsset", with_city("\"" + std::string(10240, 'c') + "\""), 400},
      {"an unknown field", "RegisterAsset", R"({"colour":"red"})", 400},
      {"SQL in a lease date", "DraftLease",
       R"({"asset_id":"5f0c3a52-8f1e-4c4e-9a57-3f4a3c1f2b10","tenant_id":)"
       R"("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","monthly_rent":{"amount_minor":1,)"
       R"("currency":"EUR"},"start_date":"2027-01-01' OR '1'='1","end_date":"2027-12-31"})",
       400},
      {"SQL as the command name", "DROP%20TABLE%20deedkit.events", register_body_with(), 404},
      {"a path out of the command space", "..%2F..%2Fhealthz", register_body_with(), 404},
      {"plain text", "RegisterAsset", register_body_with(), 415, "text/plain"},
      {"a form", "RegisterAsset", "name=x", 415, "application/x-www-form-urlencoded"},
      // cpp-httplib parses a multipart body itself before any route sees it.
      {"a multipart body", "RegisterAsset", register_body_with(), 400,
       "multipart/form-data; boundary=x"},
      {"multipart without a boundary", "RegisterAsset", register_body_with(), 400,
       "multipart/form-data"},
      {"an oversized body", "RegisterAsset", std::string(kMaxBody + 1, ' ') + "{}", 413},
  };
}

class HostileInputTest : public DatabaseTest {
 protected:
  static void SetUpTestSuite() {
    DatabaseTest::SetUpTestSuite();
    service::ServiceOptions options;
    options.port = 0;
    options.worker_threads = 4;
    options.max_body_bytes = kMaxBody;
    options.read_timeout = std::chrono::seconds(1);
    options.tokens = {{kAliceToken, "alice"}, {kBobToken, "bob"}};
    service_ = start_suite_service(options, pool());
  }
  static void TearDownTestSuite() {
    service_.reset();
    DatabaseTest::TearDownTestSuite();
  }

  static httplib::Result post(const std::string& command, const std::string& body,
                              const std::string& key, const std::string& token = kAliceToken,
                              const std::string& content_type = "application/json") {
    httplib::Client http("127.0.0.1", service_->port());
    http.set_read_timeout(std::chrono::seconds(10));
    httplib::Headers headers{{"Authorization", "Bearer " + token}};
    if (!key.empty()) headers.emplace("Idempotency-Key", key);
    return http.Post(("/v1/commands/" + command).c_str(), headers, body, content_type.c_str());
  }

  static std::string fresh_key() { return "k-" + to_string(new_uuid()); }

  // Everything a request could have changed: rows of every table it may write, and the
  // identity of every event.
  static std::string database_state() {
    return query_value(
        database_uri(),
        "SELECT (SELECT count(*) FROM deedkit.events) || '/' || "
        "(SELECT count(*) FROM deedkit.outbox) || '/' || "
        "(SELECT count(*) FROM deedkit.idempotency_keys) || '/' || "
        "(SELECT count(*) FROM deedkit.snapshots) || '/' || "
        "(SELECT coalesce(md5(string_agg(event_id::text, ',' ORDER BY global_position)), '') "
        "FROM deedkit.events)");
  }

  static bool healthy() {
    httplib::Client http("127.0.0.1", service_->port());
    const auto health = http.Get("/healthz");
    return health && health->status == 200;
  }

  // A raw connection, for what an HTTP client library refuses to send.
  static int connect_raw() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(service_->port()));
    ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return -1;
    timeval bound{.tv_sec = 30, .tv_usec = 0};  // a hung server fails the test, not the run
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    return fd;
  }

  // Sends `request` and reads until the server closes; returns what it answered. With
  // `end_input`, the client also closes its sending side, as a client cut off mid-body would
  // (the server may then not answer at all).
  static std::string exchange_raw(const std::string& request, bool end_input = false) {
    const int fd = connect_raw();
    if (fd < 0) return "";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (end_input) ::shutdown(fd, SHUT_WR);
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
    ::close(fd);
    return answer;
  }

  static inline std::unique_ptr<service::HttpService> service_;
};

TEST_F(HostileInputTest, EveryHostileRequestGetsItsProblemAndChangesNothing) {
  const std::string before = database_state();

  for (const HostileRequest& request : hostile_requests()) {
    const auto response = post(request.command, request.body, fresh_key(), kAliceToken,
                               request.content_type);

    ASSERT_TRUE(response) << request.what << ": no response";
    EXPECT_EQ(response->status, request.status) << request.what << ": " << response->body;
    EXPECT_EQ(response->get_header_value("Content-Type"), "application/problem+json")
        << request.what;
    EXPECT_EQ(response->body.find("\"detail\":\"\""), std::string::npos)
        << request.what << ": the detail must say what is wrong: " << response->body;
    ASSERT_TRUE(healthy()) << "the service went down on " << request.what;
  }
  EXPECT_EQ(database_state(), before) << "a refused request changed the database";
}

TEST_F(HostileInputTest, BadIdempotencyKeysAre400) {
  const std::string before = database_state();
  const std::string body = register_body_with();

  const auto huge = post("RegisterAsset", body, std::string(10240, 'k'));
  const auto head = "POST /v1/commands/RegisterAsset HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer " + kAliceToken + "\r\n"
                    "Content-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n";
  const std::string control = exchange_raw(head + "Idempotency-Key: a\x01z\r\n\r\n" + body);
  const std::string del = exchange_raw(head + "Idempotency-Key: a\x7fz\r\n\r\n" + body);
  const std::string utf8 = exchange_raw(head + "Idempotency-Key: cl\xc3\xa9\r\n\r\n" + body);

  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 400) << huge->body;
  for (const std::string& answer : {control, del, utf8}) {
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  }
  EXPECT_TRUE(healthy());
  EXPECT_EQ(database_state(), before);
}

TEST_F(HostileInputTest, SqlInTextFieldsAndKeysIsStoredAsPlainText) {
  const std::string name = "Robert'); DROP TABLE deedkit.events;--";
  const std::string key = "k'; DELETE FROM deedkit.idempotency_keys; --" + fresh_key();

  const auto first = post("RegisterAsset", with_name("\"" + name + "\""), key);
  const auto retry = post("RegisterAsset", with_name("\"" + name + "\""), key);

  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 201) << first->body;
  EXPECT_EQ(retry->get_header_value("Idempotent-Replayed"), "true");
  const std::string location = first->get_header_value("Location");
  const std::string asset_id = location.substr(location.rfind('/') + 1);
  httplib::Client http("127.0.0.1", service_->port());
  const auto asset = http.Get(location.c_str(),
                              httplib::Headers{{"Authorization", "Bearer " + kAliceToken}});
  EXPECT_NE(asset->body.find(name), std::string::npos) << asset->body;
  EXPECT_EQ(query_value(database_uri(), "SELECT count(*) FROM deedkit.events WHERE stream_id = "
                                        "'asset-" + asset_id + "'"),
            "1");
}

TEST_F(HostileInputTest, ATruncatedBodyIsRefusedAndStoresNothing) {
  const std::string before = database_state();
  const std::string body = register_body_with();

  const std::string answer = exchange_raw(
      "POST /v1/commands/RegisterAsset HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " + kAliceToken + "\r\nContent-Type: application/json\r\n"
      "Idempotency-Key: " + fresh_key() + "\r\nContent-Length: " +
      std::to_string(body.size() + 100) + "\r\n\r\n" + body,
      true);

  EXPECT_FALSE(answer.starts_with("HTTP/1.1 2")) << answer;
  EXPECT_TRUE(healthy());
  EXPECT_EQ(database_state(), before);
}

TEST_F(HostileInputTest, SlowClientsAreCutOffAndDoNotStarveOthers) {
  // More silent connections than workers: without read timeouts they would hold every
  // worker and the request below would never be served.
  std::vector<int> slow;
  for (int i = 0; i < 6; ++i) {
    const int fd = connect_raw();
    ASSERT_GE(fd, 0);
    const std::string start = "POST /v1/commands/RegisterAsset HTTP/1.1\r\nHost: x\r\n";
    ::send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }

  const auto served = post("RegisterAsset", register_body_with(), fresh_key());

  ASSERT_TRUE(served) << "a request behind slow clients got no answer";
  EXPECT_EQ(served->status, 201) << served->body;
  for (const int fd : slow) {
    char buffer[512];
    ssize_t n = 0;
    while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) {
    }
    EXPECT_EQ(n, 0) << "the server should close a connection that stalls mid-request";
    ::close(fd);
  }
}

TEST_F(HostileInputTest, OnePrincipalCanNeitherReplayNorProbeAnothersKey) {
  const std::string replayed_key = fresh_key();
  const std::string probed_key = fresh_key();
  const auto alice = post("RegisterAsset", register_body_with(), replayed_key, kAliceToken);
  ASSERT_EQ(alice->status, 201) << alice->body;
  ASSERT_EQ(post("RegisterAsset", register_body_with(), probed_key, kAliceToken)->status, 201);

  // Alice's key and body: Bob's own command runs; he never receives Alice's response.
  const auto replay = post("RegisterAsset", register_body_with(), replayed_key, kBobToken);
  // Alice's key with another body: no 422 tells Bob that the key was used.
  const auto probe = post("RegisterAsset", with_name(R"("Bob's house")"), probed_key, kBobToken);

  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->status, 201) << replay->body;
  EXPECT_FALSE(replay->has_header("Idempotent-Replayed"));
  EXPECT_NE(replay->get_header_value("Location"), alice->get_header_value("Location"));
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->status, 201) << probe->body;
}

}  // namespace
}  // namespace deedkit::testing
