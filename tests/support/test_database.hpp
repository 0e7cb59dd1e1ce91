#pragma once

// Each test suite gets a PostgreSQL database of its own on the private test server that
// scripts/test starts. DEEDKIT_TEST_PG holds libpq key=value settings without a dbname,
// for example "host=/tmp/deedkit-test.X/socket user=postgres".

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/event_store.hpp"

namespace deedkit::testing {

// The server settings from DEEDKIT_TEST_PG; fails the test run when it is missing.
std::string server_settings();

// Creates a fresh, empty database named after `label` and returns its connection string.
// Drops any leftover database of the same name first.
std::string create_database(const std::string& label);
void drop_database(const std::string& label);

// Runs one SQL statement on the given database as the test superuser; returns the first
// column of the first row as text ("" when no rows).
std::string query_value(const std::string& database_uri, const std::string& sql);

// A fixture whose suite owns one migrated database, a pool and an event store.
class DatabaseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  static std::string database_uri() { return *database_uri_; }
  static ConnectionPool& pool() { return *pool_; }
  static EventStore& store() { return *store_; }

  // A stream id unique within the run: "<category>-<uuid>".
  static std::string fresh_stream(const std::string& category = "test");

 private:
  static std::string suite_label();
  static inline std::unique_ptr<std::string> database_uri_;
  static inline std::unique_ptr<ConnectionPool> pool_;
  static inline std::unique_ptr<EventStore> store_;
};

}  // namespace deedkit::testing
