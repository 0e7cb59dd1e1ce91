#include "deedkit/service/http_service.hpp"

#include <fstream>
#include <sstream>

#include <httplib.h>
#include <pqxx/result>
#include <spdlog/spdlog.h>

#include "deedkit/core/ids.hpp"
#include "read_routes.hpp"

namespace deedkit::service {

namespace {

// Per request, on the worker thread that runs it: what the access log reports.
thread_local std::string request_route;
thread_local std::chrono::steady_clock::time_point request_started;

void send_problem(httplib::Response& response, const Problem& problem) {
  response.status = problem.status;
  response.set_content(problem.to_json(), kProblemContentType);
}

void send_stored(httplib::Response& response, const StoredResponse& stored, bool replayed) {
  response.status = stored.status;
  std::string content_type = "application/json";
  for (const auto& [name, value] : stored.headers) {
    if (name == "Content-Type") {
      content_type = value;
    } else {
      response.set_header(name.c_str(), value);
    }
  }
  if (replayed) response.set_header("Idempotent-Replayed", "true");
  response.set_content(stored.body, content_type.c_str());
}

bool is_json_content_type(const std::string& content_type) {
  const std::string media = content_type.substr(0, content_type.find(';'));
  return media == "application/json";
}

}  // namespace

void set_request_route(std::string label) { request_route = std::move(label); }

Result<std::map<std::string, std::string>> load_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "cannot read token file " + path);

  std::ostringstream text;
  text << in.rdbuf();
  return parse_token_lines(text.str(), path);
}

Result<std::map<std::string, std::string>> parse_token_lines(std::string_view text,
                                                             std::string_view origin) {
  std::map<std::string, std::string> tokens;
  std::istringstream lines{std::string(text)};
  int line_number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string token;
    std::string principal;
    std::string extra;
    // No first field: the line is whitespace only, and as blank as an empty one.
    if (!(fields >> token)) continue;
    if (!(fields >> principal) || (fields >> extra)) {
      return fail(ErrorCode::kInvalidArgument, std::string(origin) + ":" +
                                                   std::to_string(line_number) +
                                                   ": expected 'token principal'");
    }
    tokens[token] = principal;
  }
  return tokens;
}

HttpService::HttpService(ServiceOptions options, ConnectionPool& pool)
    : options_(std::move(options)),
      pool_(pool),
      store_(pool),
      assets_(store_),
      leases_(store_),
      server_(std::make_unique<httplib::Server>()) {
  catalog_.store_rejections_of(options_.store_rejections_of);
  catalog_.add(assets_);
  catalog_.add(leases_);
  install_routes();
}

HttpService::~HttpService() { stop(); }

Result<void> HttpService::start() {
  const int port = options_.port == 0 ? server_->bind_to_any_port(options_.host)
                                      : (server_->bind_to_port(options_.host, options_.port)
                                             ? options_.port
                                             : -1);
  if (port < 0) {
    return fail(ErrorCode::kUnavailable, "cannot listen on " + options_.host + ":" +
                                             std::to_string(options_.port) +
                                             " (address in use or not permitted)");
  }
  bound_port_ = port;
  serving_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("serve: listening on http://{}:{} with {} workers, authentication {}",
               options_.host, bound_port_, options_.worker_threads,
               options_.tokens.empty() ? "off" : "on");
  return {};
}

void HttpService::stop() {
  if (server_) server_->stop();
  if (serving_.joinable()) serving_.join();
}

void HttpService::wait() {
  if (serving_.joinable()) serving_.join();
}

void HttpService::install_routes() {
  httplib::Server& server = *server_;
  const int workers = options_.worker_threads;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_payload_max_length(options_.max_body_bytes);
  server.set_read_timeout(options_.read_timeout);
  server.set_write_timeout(options_.write_timeout);

  server.set_pre_routing_handler([this](const httplib::Request& request,
                                        httplib::Response& response) {
    request_started = std::chrono::steady_clock::now();
    request_route = "unmatched";
    const bool public_route = request.path == "/healthz" || request.path == "/metrics";
    if (options_.tokens.empty() || public_route) return httplib::Server::HandlerResponse::Unhandled;

    const std::string authorization = request.get_header_value("Authorization");
    const std::string token =
        authorization.starts_with("Bearer ") ? authorization.substr(7) : std::string();
    if (!options_.tokens.contains(token)) {
      response.set_header("WWW-Authenticate", "Bearer");
      send_problem(response, {401, "unauthorized", "Missing or wrong credentials",
                              "send 'Authorization: Bearer <token>' with a configured token",
                              ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  const httplib::Server::HandlerWithResponse on_error = [](const httplib::Request& request,
                                                          httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (response.status == 413) {
      send_problem(response, {413, "body-too-large", "The request body is too large",
                              "the body exceeds the configured limit", ""});
    } else if (response.status == 404) {
      send_problem(response, {404, "not-found", "Not found", "no route for " + request.path, ""});
    } else if (response.status == 400) {
      send_problem(response, {400, "malformed-http", "Malformed HTTP request",
                              "the request line, a header or the body's framing (such as a "
                              "multipart boundary) could not be parsed",
                              ""});
    } else {
      send_problem(response, {response.status, "http-error", "HTTP error",
                              "the HTTP layer refused the request with status " +
                                  std::to_string(response.status),
                              ""});
    }
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(on_error);

  server.set_exception_handler([](const httplib::Request& request, httplib::Response& response,
                                  std::exception_ptr error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("serve: {} {} failed with an exception: {}", request.method, request.path,
                  what);
    send_problem(response, {500, "internal", "Internal error", "see the service log", ""});
  });

  server.set_logger([this](const httplib::Request&, const httplib::Response& response) {
    const auto elapsed = std::chrono::duration<double, std::milli>(
                             std::chrono::steady_clock::now() - request_started)
                             .count();
    metrics_.count_request(request_route, response.status);
    // The route names the method already ("POST /v1/commands/{name}").
    spdlog::info("http {} status={} latency_ms={:.2f} replayed={}", request_route,
                 response.status, elapsed,
                 response.has_header("Idempotent-Replayed") ? "true" : "false");
  });

  server.Post(R"(/v1/commands/([^/]+))", [this](const httplib::Request& request,
                                                httplib::Response& response) {
    set_request_route("POST /v1/commands/{name}");
    const auto started = std::chrono::steady_clock::now();

    const CommandEntry* entry = catalog_.find(request.matches[1].str());
    if (!entry) {
      return send_problem(response, {404, "unknown-command", "Unknown command",
                                     "no command named '" + request.matches[1].str() + "'", ""});
    }
    if (!is_json_content_type(request.get_header_value("Content-Type"))) {
      return send_problem(response,
                          {415, "unsupported-media-type", "The body must be JSON",
                           "send Content-Type: application/json", ""});
    }
    const std::string key = request.get_header_value("Idempotency-Key");
    if (!request.has_header("Idempotency-Key")) {
      return send_problem(response, {400, "idempotency-key-missing",
                                     "The Idempotency-Key header is required",
                                     "send a unique Idempotency-Key with every command", ""});
    }
    if (auto valid = validate_idempotency_key(key); !valid) {
      return send_problem(response, {400, "idempotency-key-invalid", "Invalid Idempotency-Key",
                                     valid.error().message, ""});
    }

    auto parsed = entry->parse(request.body);
    if (!parsed) return send_problem(response, problem_for(parsed.error()));

    const std::string principal = principal_of(request);
    CommandContext context;
    context.principal = principal;
    auto result = with_idempotency_in_one_statement(
        pool_, {principal, key}, entry->name, parsed->fingerprint,
        [&](UnitOfWork& reads) { return parsed->plan(reads, context); }, options_.idempotency);
    // Failed commands are timed too: a lock timeout or an unreachable database is exactly
    // the slow case an operator looks for in this histogram.
    metrics_.observe_command(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
        result && result->replayed);
    if (!result) return send_problem(response, problem_for(result.error()));

    send_stored(response, result->response, result->replayed);
  });

  install_read_routes(server, ReadContext{pool_, store_, assets_, leases_, metrics_});
}

std::string HttpService::principal_of(const httplib::Request& request) const {
  if (options_.tokens.empty()) return "anonymous";
  const std::string authorization = request.get_header_value("Authorization");
  const auto found = options_.tokens.find(authorization.substr(7));
  return found == options_.tokens.end() ? "anonymous" : found->second;
}

}  // namespace deedkit::service
