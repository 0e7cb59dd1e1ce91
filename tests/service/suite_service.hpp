#pragma once

// Starting the one HTTP service a service test suite shares.

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "deedkit/service/http_service.hpp"

namespace deedkit::testing {

// Starts a service on a free port over `pool`. Exits the test program when it cannot start:
// a fatal failure in SetUpTestSuite would only skip the suite, and a skipped suite passes.
inline std::unique_ptr<service::HttpService> start_suite_service(
    const service::ServiceOptions& options, ConnectionPool& pool) {
  auto started_service = std::make_unique<service::HttpService>(options, pool);
  if (auto started = started_service->start(); !started) {
    std::fprintf(stderr, "cannot start the service: %s\n", started.error().to_string().c_str());
    std::exit(1);
  }
  return started_service;
}

}  // namespace deedkit::testing
