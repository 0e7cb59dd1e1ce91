#pragma once

// The deedkit HTTP API (cpp-httplib): commands with an Idempotency-Key, aggregate and
// read-model queries, health and metrics. docs/http-api.md lists every route and status.
//
// Lifecycle: construct, add deciders' handlers to catalog(), start() (binds, then serves on
// a background thread), stop() or destroy. Requests run on a bounded worker pool; each
// takes a connection from the given pool only while it talks to the database.

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/service/command_catalog.hpp"
#include "deedkit/service/metrics.hpp"

namespace httplib {
class Server;
struct Request;
}

namespace deedkit::service {

struct ServiceOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 picks a free port (see HttpService::port())
  int worker_threads = 16;
  std::size_t max_body_bytes = 64 * 1024;
  std::chrono::seconds read_timeout{10};
  std::chrono::seconds write_timeout{10};
  // Bearer token -> principal. Empty: authentication is off and every caller is "anonymous".
  std::map<std::string, std::string> tokens;
  std::set<std::string> store_rejections_of;
  IdempotencyOptions idempotency;
};

// Reads "token principal" lines (blank lines and # comments allowed). kInvalidArgument names
// the line that is malformed; kNotFound when the file cannot be read.
[[nodiscard]] Result<std::map<std::string, std::string>> load_token_file(
    const std::string& path);

// The parsing half of load_token_file, over text already read: one "token principal" pair
// per line, separated by whitespace. Lines that are empty, hold only whitespace (a CRLF
// file's "\r"), or start with '#' are skipped; a later line for the same token wins.
// kInvalidArgument as "<origin>:<line>: ..." for the first line that is not exactly two
// fields.
[[nodiscard]] Result<std::map<std::string, std::string>> parse_token_lines(
    std::string_view text, std::string_view origin);

class HttpService {
 public:
  HttpService(ServiceOptions options, ConnectionPool& pool);
  ~HttpService();
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  // Binds and starts serving in the background. kUnavailable when the address is taken.
  [[nodiscard]] Result<void> start();
  void stop();
  // Blocks until stop() is called (from a signal handler thread, say).
  void wait();
  int port() const { return bound_port_; }

 private:
  void install_routes();
  // The authenticated principal, "anonymous" when authentication is off.
  std::string principal_of(const httplib::Request& request) const;

  ServiceOptions options_;
  ConnectionPool& pool_;
  EventStore store_;
  CommandHandler<realestate::AssetDecider> assets_;
  CommandHandler<realestate::LeaseDecider> leases_;
  CommandCatalog catalog_;
  ServiceMetrics metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread serving_;
  int bound_port_ = 0;
};

}  // namespace deedkit::service
