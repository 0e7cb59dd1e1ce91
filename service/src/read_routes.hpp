#pragma once

// The GET routes of the HTTP API: aggregates rebuilt from their events, read models kept by
// the projections, health and metrics.

#include <string>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/service/metrics.hpp"

namespace httplib {
class Server;
}

namespace deedkit::service {

struct ReadContext {
  ConnectionPool& pool;
  const EventStore& store;
  const CommandHandler<realestate::AssetDecider>& assets;
  const CommandHandler<realestate::LeaseDecider>& leases;
  ServiceMetrics& metrics;
};

void install_read_routes(httplib::Server& server, ReadContext context);

// Names the route of the request being handled on this thread, for logs and metrics.
void set_request_route(std::string label);

}  // namespace deedkit::service
