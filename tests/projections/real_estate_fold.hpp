#pragma once

// The test oracle: what the real-estate read models must hold, computed straight from the
// whole log with the domain's own evolve functions, independently of the projections' SQL.
//
// Rows are compared as text, one string per row with '|' between columns and NULL spelled
// "NULL", so a mismatch prints as readable rows. The same formats are produced from the
// views by read_views().

#include <cstdint>
#include <string>
#include <vector>

#include "deedkit/eventstore/event_store.hpp"

namespace deedkit::testing {

struct ReadModels {
  std::vector<std::string> asset_summary;    // id|name|kind|owner|status|valuation|currency|
                                             //   asking|city|version|updated_at_us
  std::vector<std::string> active_listings;  // id|name|city|asking|currency|listed_at_us
  std::vector<std::string> portfolio;        // owner|currency|count|total
  std::vector<std::string> rent_roll;        // lease|asset|tenant|period|due|paid|currency|
                                             //   due_date|status
};

struct LogFold {
  ReadModels models;
  std::int64_t events = 0;         // every event in the log
  std::int64_t asset_events = 0;   // events the assets projection applies
  std::int64_t lease_events = 0;   // events the rent_roll projection applies
};

// Folds every event committed so far (waits out transactions still open). `today` is the
// UTC date the rent roll's status is relative to, YYYY-MM-DD.
LogFold fold_log(const EventStore& store, const std::string& today);

// The rows of the deedkit_read views, sorted, in the formats above.
ReadModels read_views(const std::string& database_uri);

// The database's current UTC date, as the rent_roll view sees it.
std::string database_today(const std::string& database_uri);

// Fails the test with the rows that differ, naming `what`.
void expect_same_rows(const std::vector<std::string>& expected,
                      const std::vector<std::string>& actual, const std::string& what);

void expect_same_models(const ReadModels& expected, const ReadModels& actual);

}  // namespace deedkit::testing
