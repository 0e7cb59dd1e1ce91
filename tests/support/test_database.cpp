#include "test_database.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <unistd.h>

#include <pqxx/connection>
#include <pqxx/nontransaction>

#include "deedkit/eventstore/migrations.hpp"

namespace deedkit::testing {

std::string server_settings() {
  const char* settings = std::getenv("DEEDKIT_TEST_PG");
  if (!settings || !*settings) {
    throw std::runtime_error(
        "DEEDKIT_TEST_PG is not set: run the tests through scripts/test, which starts a "
        "private PostgreSQL");
  }
  return settings;
}

namespace {

std::string database_name(const std::string& label) {
  // The pid keeps two processes running test cases of one suite (ctest -j) apart.
  std::string name = "dk_" + label.substr(0, 40) + "_" + std::to_string(::getpid());
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
    return std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
  });
  return name.substr(0, 60);
}

void run_admin(const std::string& sql) {
  pqxx::connection admin(server_settings() + " dbname=postgres");
  pqxx::nontransaction tx(admin);
  tx.exec(sql);
}

}  // namespace

std::string create_database(const std::string& label) {
  const std::string name = database_name(label);
  run_admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");

  // CREATE DATABASE fails while another session uses the template, which happens when
  // parallel test processes create their databases at the same moment: try a few times.
  for (int attempt = 1;; ++attempt) {
    try {
      run_admin("CREATE DATABASE " + name);
      return server_settings() + " dbname=" + name;
    } catch (const std::exception& error) {
      if (attempt == 20) throw;
      std::fprintf(stderr, "CREATE DATABASE %s failed (%s); trying again\n", name.c_str(),
                   error.what());
    }
  }
}

void drop_database(const std::string& label) {
  run_admin("DROP DATABASE IF EXISTS " + database_name(label) + " WITH (FORCE)");
}

std::string query_value(const std::string& database_uri, const std::string& sql) {
  pqxx::connection connection(database_uri);
  pqxx::nontransaction tx(connection);
  const pqxx::result rows = tx.exec(sql);
  if (rows.empty() || rows[0][0].is_null()) return "";
  return rows[0][0].c_str();
}

std::string DatabaseTest::suite_label() {
  return ::testing::UnitTest::GetInstance()->current_test_suite()->name();
}

void DatabaseTest::SetUpTestSuite() {
  // Without its database no test of the suite means anything; gtest would report them as
  // skipped, which ctest counts as a pass, so end the process with a failure instead.
  try {
    database_uri_ = std::make_unique<std::string>(create_database(suite_label()));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "cannot create the test database: %s\n", error.what());
    std::exit(1);
  }
  const auto migrated = migrate(*database_uri_);
  if (!migrated) {
    std::fprintf(stderr, "cannot migrate the test database: %s\n",
                 migrated.error().to_string().c_str());
    std::exit(1);
  }

  pool_ = std::make_unique<ConnectionPool>(PoolOptions{.database_uri = *database_uri_,
                                                       .max_connections = 20});
  store_ = std::make_unique<EventStore>(*pool_);
}

void DatabaseTest::TearDownTestSuite() {
  store_.reset();
  pool_.reset();
  drop_database(suite_label());
  database_uri_.reset();
}

std::string DatabaseTest::fresh_stream(const std::string& category) {
  return category + "-" + to_string(new_uuid());
}

}  // namespace deedkit::testing
