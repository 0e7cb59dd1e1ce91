// projection_crash_child: a projection runner that dies on purpose, for crash_test.cpp.
//
//   projection_crash_child --database URI [--batch-size N] [--crash-at read|applied|committed]
//                          [--crash-after K] [--crash-generation G]
//
// Runs the real-estate projections and a ledger of every real-estate event. With --crash-at,
// the process ends with _exit(42) the K-th time any batch (of generation G only, when given)
// reaches that point: no destructor, no rollback, no goodbye to the server, like a power cut
// or kill -9. Otherwise it exits 0 as soon as every projection has caught up.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <unistd.h>

#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/runner.hpp"
#include "test_projections.hpp"

namespace {

using namespace deedkit;

constexpr int kCrashed = 42;

std::vector<std::string> real_estate_event_types() {
  std::vector<std::string> types = realestate::AssetsProjection().event_types();
  for (const std::string& type : realestate::RentRollProjection().event_types()) {
    types.push_back(type);
  }
  return types;
}

bool all_caught_up(ConnectionPool& pool, const std::vector<const Projection*>& projections) {
  auto statuses = projection_status(pool, projections);
  if (!statuses) return false;
  for (const ProjectionStatus& status : *statuses) {
    if (!status.live || status.building || status.live->failure) return false;
    if (status.live->lag_events != 0) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string database;
  int batch_size = 7;
  std::string crash_at;
  int crash_after = 1;
  int crash_generation = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--database")) database = argv[i + 1];
    if (!std::strcmp(argv[i], "--batch-size")) batch_size = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--crash-at")) crash_at = argv[i + 1];
    if (!std::strcmp(argv[i], "--crash-after")) crash_after = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--crash-generation")) crash_generation = std::atoi(argv[i + 1]);
  }

  std::optional<BatchPoint> point;
  if (crash_at == "read") point = BatchPoint::kRead;
  if (crash_at == "applied") point = BatchPoint::kApplied;
  if (crash_at == "committed") point = BatchPoint::kCommitted;

  ConnectionPool pool(PoolOptions{.database_uri = database, .max_connections = 16});
  const realestate::AssetsProjection assets;
  const realestate::RentRollProjection rent_roll;
  const testing::LedgerProjection ledger("ledger", real_estate_event_types());
  const std::vector<const Projection*> projections{&assets, &rent_roll, &ledger};

  std::atomic<int> hits{0};
  RunnerOptions options{.batch_size = batch_size,
                        .min_poll = std::chrono::milliseconds(1),
                        .max_poll = std::chrono::milliseconds(10),
                        .leadership_interval = std::chrono::milliseconds(50)};
  options.fault_hook = [&](BatchPoint reached, std::string_view, int generation) {
    if (!point || reached != *point) return;
    if (crash_generation != 0 && generation != crash_generation) return;
    if (++hits >= crash_after) ::_exit(kCrashed);
  };

  ProjectionRunner runner(pool, projections, options);
  runner.start();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < give_up) {
    if (all_caught_up(pool, projections)) {
      runner.stop();
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::fprintf(stderr, "projection_crash_child: not caught up after 120 s\n");
  return 3;
}
