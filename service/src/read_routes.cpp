#include "read_routes.hpp"

#include <charconv>

#include <httplib.h>
#include <pqxx/result>

#include "deedkit/core/json_text.hpp"
#include "deedkit/service/command_catalog.hpp"
#include "deedkit/service/problem.hpp"

namespace deedkit::service {

namespace {

void send_problem(httplib::Response& response, const Problem& problem) {
  response.status = problem.status;
  response.set_content(problem.to_json(), kProblemContentType);
}

void send_json(httplib::Response& response, const std::string& json) {
  response.status = 200;
  response.set_content(json, "application/json");
}

// A strict non-negative integer query parameter: absent gives `fallback`.
Result<long long> integer_parameter(const httplib::Request& request, const std::string& name,
                                    long long fallback) {
  if (!request.has_param(name.c_str())) return fallback;
  const std::string text = request.get_param_value(name.c_str());
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) {
    return fail(ErrorCode::kInvalidArgument,
                "query parameter " + name + " must be a non-negative integer, got '" + text + "'");
  }
  return value;
}

// {"version":N, <state fields>}
std::string with_version(const google::protobuf::Message& state, std::int64_t version) {
  const std::string state_json = to_json(state);
  std::string json = "{\"version\":" + std::to_string(version);
  if (state_json.size() > 2) json += "," + state_json.substr(1);
  else json += "}";
  return json;
}

template <typename D>
void send_aggregate(httplib::Response& response, const CommandHandler<D>& handler,
                    ConnectionPool& pool, const std::string& id_text) {
  const auto id = parse_uuid(id_text);
  if (!id) {
    return send_problem(response, {400, "invalid-request", "The request is invalid",
                                   std::string(D::category()) + " id '" + id_text +
                                       "' is not a UUID",
                                   ""});
  }
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return send_problem(response, problem_for(unit.error()));
  auto loaded = handler.load(*unit, handler.stream_for(to_string(*id)));
  if (!loaded) return send_problem(response, problem_for(loaded.error()));
  if (loaded->version == 0) {
    return send_problem(response, {404, "not-found", "Not found",
                                   "no " + std::string(D::category()) + " " + to_string(*id), ""});
  }
  send_json(response, with_version(loaded->state, loaded->version));
}

void send_asset_events(httplib::Response& response, const ReadContext& context,
                       const std::string& id_text) {
  const auto id = parse_uuid(id_text);
  if (!id) {
    return send_problem(response, {400, "invalid-request", "The request is invalid",
                                   "asset id '" + id_text + "' is not a UUID", ""});
  }
  const std::string stream = context.assets.stream_for(to_string(*id));
  auto events = context.store.read_stream_forward(stream, 1, 10000);
  if (!events) return send_problem(response, problem_for(events.error()));
  if (events->empty()) {
    return send_problem(response,
                        {404, "not-found", "Not found", "no asset " + to_string(*id), ""});
  }

  std::string json = "{\"stream_id\":" + json_string(stream) + ",\"items\":[";
  for (std::size_t i = 0; i < events->size(); ++i) {
    const RecordedEvent& event = (*events)[i];
    auto decoded = context.assets.codec().decode({event.stream_id, event.stream_version},
                                                 event.event_type, event.schema_version,
                                                 event.payload);
    if (!decoded) return send_problem(response, problem_for(decoded.error()));
    if (i > 0) json += ",";
    json += "{\"stream_version\":" + std::to_string(event.stream_version) +
            ",\"global_position\":" + std::to_string(event.global_position) +
            ",\"event_id\":" + json_string(to_string(event.event_id)) +
            ",\"event_type\":" + json_string(event.event_type) +
            ",\"recorded_at\":" + json_string(format_rfc3339(event.recorded_at)) +
            ",\"principal\":" + json_string(event.metadata.principal) +
            ",\"data\":" + to_json(*decoded) + "}";
  }
  send_json(response, json + "]}");
}

void send_listings(httplib::Response& response, const httplib::Request& request,
                   ConnectionPool& pool) {
  const auto min_price = integer_parameter(request, "min_price", 0);
  const auto max_price = integer_parameter(request, "max_price", INT64_MAX);
  const auto limit = integer_parameter(request, "limit", 50);
  const auto offset = integer_parameter(request, "page_token", 0);
  for (const auto* parameter : {&min_price, &max_price, &limit, &offset}) {
    if (!*parameter) return send_problem(response, problem_for(parameter->error()));
  }
  const long long page_size = std::clamp(*limit, 1LL, 500LL);
  const std::string city = request.get_param_value("city");

  auto unit = UnitOfWork::begin(pool);
  if (!unit) return send_problem(response, problem_for(unit.error()));
  try {
    // One row more than the page tells whether another page follows.
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT asset_id::text, name, city, asking_price_minor, currency "
        "FROM deedkit_read.active_listings WHERE ($1 = '' OR city = $1) "
        "AND asking_price_minor BETWEEN $2 AND $3 "
        "ORDER BY asking_price_minor, asset_id LIMIT $4 OFFSET $5",
        city, *min_price, *max_price, page_size + 1, *offset);

    std::string json = "{\"items\":[";
    const auto shown = std::min<long long>(page_size, static_cast<long long>(rows.size()));
    for (long long i = 0; i < shown; ++i) {
      const auto& row = rows[static_cast<int>(i)];
      if (i > 0) json += ",";
      json += "{\"asset_id\":" + json_string(row[0].c_str()) + ",\"name\":" +
              json_string(row[1].c_str()) + ",\"city\":" + json_string(row[2].c_str()) +
              ",\"asking_price\":{\"amount_minor\":" + row[3].c_str() +
              ",\"currency\":" + json_string(row[4].c_str()) + "}}";
    }
    json += "]";
    if (static_cast<long long>(rows.size()) > page_size) {
      json += ",\"next_page_token\":\"" + std::to_string(*offset + page_size) + "\"";
    }
    send_json(response, json + "}");
  } catch (const std::exception&) {
    send_problem(response, problem_for(unit->fail_with_current_exception("read listings")));
  }
}

void send_portfolio(httplib::Response& response, ConnectionPool& pool,
                    const std::string& owner_text) {
  const auto owner = parse_uuid(owner_text);
  if (!owner) {
    return send_problem(response, {400, "invalid-request", "The request is invalid",
                                   "owner id '" + owner_text + "' is not a UUID", ""});
  }
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return send_problem(response, problem_for(unit.error()));
  try {
    const pqxx::result rows = unit->tx().exec_params(
        "SELECT currency, asset_count, total_valuation_minor FROM deedkit_read.portfolio "
        "WHERE owner_id = $1::uuid ORDER BY currency",
        to_string(*owner));
    std::string json = "{\"owner_id\":" + json_string(to_string(*owner)) + ",\"items\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) json += ",";
      json += "{\"currency\":" + json_string(rows[i][0].c_str()) +
              ",\"asset_count\":" + rows[i][1].c_str() +
              ",\"total_valuation_minor\":" + rows[i][2].c_str() + "}";
    }
    send_json(response, json + "]}");
  } catch (const std::exception&) {
    send_problem(response, problem_for(unit->fail_with_current_exception("read portfolio")));
  }
}

// Counting a projection's lag scans the log after its checkpoint; past this many events the
// exact number no longer matters to an alert, and a scrape must stay cheap.
constexpr int kLagCountCap = 100000;

std::string gauge_header(const std::string& name, const std::string& help) {
  return "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
}

// The relays' own counters live in their processes; these are read from the outbox table,
// as `deedkit outbox status` reads them, so they cover every relay.
std::string outbox_gauges(pqxx::transaction_base& tx) {
  const pqxx::row outbox = tx.exec1(
      "SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0), "
      "(SELECT count(*) FROM deedkit.outbox_dead_letters), "
      "(SELECT count(*) FROM deedkit.outbox WHERE published_at > now() - interval '1 minute' "
      "  AND discarded_at IS NULL)::float8 / 60, "
      "coalesce(sum(attempts), 0) "
      "FROM deedkit.outbox WHERE published_at IS NULL");
  return gauge_header("deedkit_outbox_backlog", "Outbox rows waiting to be published.") +
         "deedkit_outbox_backlog " + outbox[0].c_str() + "\n" +
         gauge_header("deedkit_outbox_oldest_age_seconds", "Age of the oldest waiting row.") +
         "deedkit_outbox_oldest_age_seconds " + outbox[1].c_str() + "\n" +
         gauge_header("deedkit_outbox_dead_letters",
                      "Messages the broker refused for good; their streams wait behind them.") +
         "deedkit_outbox_dead_letters " + outbox[2].c_str() + "\n" +
         gauge_header("deedkit_outbox_published_per_second",
                      "Rows published by all relays, over the last minute.") +
         "deedkit_outbox_published_per_second " + outbox[3].c_str() + "\n" +
         gauge_header("deedkit_outbox_failed_attempts",
                      "Failed publish attempts (retries) of the rows still waiting.") +
         "deedkit_outbox_failed_attempts " + outbox[4].c_str() + "\n";
}

std::string projection_gauges(pqxx::transaction_base& tx) {
  const pqxx::result rows = tx.exec_params(
      "SELECT g.projection, (g.failed_at IS NOT NULL)::int, "
      "(SELECT count(*) FROM (SELECT 1 FROM deedkit.events e "
      "  WHERE (e.transaction_id, e.global_position) > (g.transaction_id, g.global_position) "
      "  LIMIT $1) behind), "
      "coalesce((SELECT extract(epoch FROM now() - e.recorded_at) FROM deedkit.events e "
      "  WHERE (e.transaction_id, e.global_position) > (g.transaction_id, g.global_position) "
      "  ORDER BY e.transaction_id, e.global_position LIMIT 1), 0)::float8 "
      "FROM deedkit.projection_generations g WHERE g.role = 'live' ORDER BY g.projection",
      kLagCountCap);
  std::string events = gauge_header(
      "deedkit_projection_lag_events",
      "Events committed after the live read model's checkpoint (counted up to " +
          std::to_string(kLagCountCap) + ").");
  std::string seconds = gauge_header(
      "deedkit_projection_lag_seconds",
      "Age of the next event the live read model will apply (the first after its checkpoint).");
  std::string failed = gauge_header("deedkit_projection_failed",
                                    "1 while the projection is stopped at an event.");
  for (const auto& row : rows) {
    const std::string label = "{projection=\"" + std::string(row[0].c_str()) + "\"} ";
    failed += "deedkit_projection_failed" + label + row[1].c_str() + "\n";
    events += "deedkit_projection_lag_events" + label + row[2].c_str() + "\n";
    seconds += "deedkit_projection_lag_seconds" + label + row[3].c_str() + "\n";
  }
  return events + seconds + failed;
}

// Readers of the global log stop below the oldest transaction still running (docs/ordering.md):
// events committed after it wait until it ends. Normally that is a few events for a few
// milliseconds; a transaction left open makes these grow, and every projection stalls with
// them, whatever its own health. The horizon is the whole server's, so a transaction in
// another database holds it back too.
std::string log_horizon_gauges(pqxx::transaction_base& tx) {
  const pqxx::row held = tx.exec_params1(
      "SELECT count(*), coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8 "
      "FROM (SELECT e.recorded_at FROM deedkit.events e "
      "  WHERE e.transaction_id >= pg_snapshot_xmin(pg_current_snapshot()) "
      "  ORDER BY e.transaction_id, e.global_position LIMIT $1) held",
      kLagCountCap);
  return gauge_header("deedkit_log_held_back_events",
                      "Committed events that log readers cannot see yet, because an older "
                      "transaction is still open (counted up to " +
                          std::to_string(kLagCountCap) + ").") +
         "deedkit_log_held_back_events " + held[0].c_str() + "\n" +
         gauge_header("deedkit_log_held_back_seconds",
                      "Age of the oldest of those events by recorded_at (its writer's transaction "
                      "start): about how long readers have waited.") +
         "deedkit_log_held_back_seconds " + held[1].c_str() + "\n";
}

std::string database_gauges(ConnectionPool& pool) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return "# database unavailable: " + unit.error().message + "\n";
  try {
    return outbox_gauges(unit->tx()) + projection_gauges(unit->tx()) +
           log_horizon_gauges(unit->tx());
  } catch (const std::exception&) {
    return "# database gauges unavailable: " +
           unit->fail_with_current_exception("metrics").message + "\n";
  }
}

}  // namespace

void install_read_routes(httplib::Server& server, ReadContext context) {
  server.Get(R"(/v1/assets/([^/]+))", [context](const httplib::Request& request,
                                                httplib::Response& response) {
    set_request_route("GET /v1/assets/{id}");
    send_aggregate(response, context.assets, context.pool, request.matches[1].str());
  });
  server.Get(R"(/v1/assets/([^/]+)/events)", [context](const httplib::Request& request,
                                                       httplib::Response& response) {
    set_request_route("GET /v1/assets/{id}/events");
    send_asset_events(response, context, request.matches[1].str());
  });
  server.Get(R"(/v1/leases/([^/]+))", [context](const httplib::Request& request,
                                                httplib::Response& response) {
    set_request_route("GET /v1/leases/{id}");
    send_aggregate(response, context.leases, context.pool, request.matches[1].str());
  });
  server.Get("/v1/listings", [context](const httplib::Request& request,
                                       httplib::Response& response) {
    set_request_route("GET /v1/listings");
    send_listings(response, request, context.pool);
  });
  server.Get(R"(/v1/owners/([^/]+)/portfolio)", [context](const httplib::Request& request,
                                                          httplib::Response& response) {
    set_request_route("GET /v1/owners/{id}/portfolio");
    send_portfolio(response, context.pool, request.matches[1].str());
  });
  server.Get("/healthz", [context](const httplib::Request&, httplib::Response& response) {
    set_request_route("GET /healthz");
    auto unit = UnitOfWork::begin(context.pool);
    if (!unit) return send_problem(response, problem_for(unit.error()));
    try {
      unit->tx().exec("SELECT 1");
      send_json(response, "{\"status\":\"ok\"}");
    } catch (const std::exception&) {
      send_problem(response, problem_for(unit->fail_with_current_exception("health check")));
    }
  });
  server.Get("/metrics", [context](const httplib::Request&, httplib::Response& response) {
    set_request_route("GET /metrics");
    response.set_content(context.metrics.render() + database_gauges(context.pool),
                         "text/plain; version=0.0.4");
  });
}

}  // namespace deedkit::service
