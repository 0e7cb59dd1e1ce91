#pragma once

// The fixture of the projection tests: every test gets a database of its own (migrated,
// with a pool and an event store), because projections keep state across the whole log.
// Waiting helpers poll a condition until a deadline; no test sleeps to synchronise.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sys/types.h>

#include <gtest/gtest.h>

#include "deedkit/eventstore/event_store.hpp"
#include "deedkit/projections/admin.hpp"
#include "deedkit/projections/runner.hpp"

namespace deedkit::testing {

class ProjectionTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  ConnectionPool& pool() { return *pool_; }
  const EventStore& store() { return *store_; }
  const std::string& database_uri() const { return database_uri_; }

  // Runner options for tests: small batches, so histories span many of them, and quick
  // polls and leadership checks, so takeovers happen within the test's patience.
  static RunnerOptions fast_options(int batch_size = 7);

  // Polls `condition` every few milliseconds until it holds (true) or `deadline` passes
  // (false, and the test fails naming `what`).
  bool wait_for(const std::function<bool()>& condition, const std::string& what,
                std::chrono::seconds deadline = std::chrono::seconds(60));

  // Waits until each projection has a live generation with nothing left to apply, no
  // rebuild under way and no failure.
  bool wait_until_caught_up(std::span<const Projection* const> projections,
                            std::chrono::seconds deadline = std::chrono::seconds(60));

  std::optional<ProjectionStatus> status_of(const std::string& name);

  // First column of the first row, as an integer (0 when NULL or no row).
  std::int64_t query_int(const std::string& sql);

 private:
  std::string label_;
  std::string database_uri_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<EventStore> store_;
};

// Starts `argv[0]` with these arguments, sharing this process's stdout and stderr.
pid_t spawn_process(const std::vector<std::string>& argv);

// Waits for the process to end: its exit status, or 128 + the signal that ended it.
int wait_process(pid_t pid);

}  // namespace deedkit::testing
