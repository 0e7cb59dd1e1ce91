#include "real_estate_fold.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/eventstore/global_log_reader.hpp"

namespace deedkit::testing {

namespace {

namespace v1 = realestate::v1;
using realestate::AssetDecider;
using realestate::LeaseDecider;

struct FoldedAsset {
  v1::AssetState state = AssetDecider::initial_state();
  std::int64_t version = 0;
  std::int64_t updated_at_us = 0;
  std::int64_t listed_at_us = 0;
};

struct FoldedLease {
  v1::LeaseState state = LeaseDecider::initial_state();
};

std::string join(std::initializer_list<std::string> columns) {
  std::string row;
  for (const std::string& column : columns) {
    if (!row.empty()) row += '|';
    row += column;
  }
  return row;
}

std::int64_t micros(Timestamp time) { return time.time_since_epoch().count(); }

// Months as a count since year 0, so ranges of them are plain integer ranges.
int month_index(const std::string& date_or_period) {
  return std::stoi(date_or_period.substr(0, 4)) * 12 + std::stoi(date_or_period.substr(5, 2)) -
         1;
}

std::string period_of(int index) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d", index / 12, index % 12 + 1);
  return text;
}

void add_asset_rows(const FoldedAsset& asset, ReadModels& models,
                    std::map<std::pair<std::string, std::string>,
                             std::pair<std::int64_t, std::int64_t>>& portfolio) {
  const v1::AssetState& state = asset.state;
  const bool listed = state.status() == v1::LISTED;
  const std::string asking =
      listed ? std::to_string(state.asking_price().amount_minor()) : "NULL";
  models.asset_summary.push_back(
      join({state.asset_id(), state.name(), v1::AssetKind_Name(state.kind()), state.owner_id(),
            v1::AssetStatus_Name(state.status()),
            std::to_string(state.valuation().amount_minor()), state.valuation().currency(),
            asking, state.address().city(), std::to_string(asset.version),
            std::to_string(asset.updated_at_us)}));
  if (listed) {
    models.active_listings.push_back(join({state.asset_id(), state.name(),
                                           state.address().city(), asking,
                                           state.asking_price().currency(),
                                           std::to_string(asset.listed_at_us)}));
  }
  if (state.status() != v1::ARCHIVED) {
    auto& totals = portfolio[{state.owner_id(), state.valuation().currency()}];
    totals.first += 1;
    totals.second += state.valuation().amount_minor();
  }
}

// The rent roll's rule, stated once more independently of its SQL: every month of a signed
// lease's term is due in full up to the termination month; later months only stay when rent
// was paid for them, with nothing due.
void add_lease_rows(const v1::LeaseState& lease, const std::string& today, ReadModels& models) {
  if (lease.status() != v1::SIGNED && lease.status() != v1::TERMINATED) return;
  std::map<std::string, std::int64_t> paid;
  for (const v1::RentPayment& payment : lease.payments()) {
    paid[payment.period()] += payment.amount().amount_minor();
  }
  const int first = month_index(lease.start_date());
  const int last = month_index(lease.end_date());
  const int last_due =
      lease.status() == v1::TERMINATED ? month_index(lease.termination_date()) : last;

  for (int month = first; month <= last; ++month) {
    const std::string period = period_of(month);
    const std::int64_t paid_minor = paid.contains(period) ? paid[period] : 0;
    if (month > last_due && paid_minor == 0) continue;
    const std::int64_t due = month > last_due ? 0 : lease.monthly_rent().amount_minor();
    const std::string due_date = period + "-01";
    const std::string status = paid_minor >= due ? "paid" : today > due_date ? "overdue" : "due";
    models.rent_roll.push_back(join({lease.lease_id(), lease.asset_id(), lease.tenant_id(),
                                     period, std::to_string(due), std::to_string(paid_minor),
                                     lease.monthly_rent().currency(), due_date, status}));
  }
}

std::vector<std::string> query_rows(pqxx::nontransaction& tx, const std::string& sql) {
  std::vector<std::string> rows;
  for (const auto& row : tx.exec(sql)) rows.push_back(row[0].c_str());
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace

LogFold fold_log(const EventStore& store, const std::string& today) {
  const EventCodec<v1::AssetEvent> asset_codec;
  const EventCodec<v1::LeaseEvent> lease_codec;
  std::map<std::string, FoldedAsset> assets;
  std::map<std::string, FoldedLease> leases;
  LogFold fold;

  GlobalLogReader reader(store, LogPosition::start(), {.batch_size = 1000});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    auto batch = reader.next_batch();
    if (!batch) {
      ADD_FAILURE() << "reading the log for the fold failed: " << batch.error().to_string();
      break;
    }
    if (batch->events.empty() && !batch->held_back) break;
    for (const RecordedEvent& event : batch->events) {
      ++fold.events;
      const StoredEventRef where{event.stream_id, event.stream_version};
      if (asset_codec.knows(event.event_type)) {
        auto decoded = asset_codec.decode(where, event.event_type, event.schema_version,
                                          event.payload);
        if (!decoded) {
          ADD_FAILURE() << decoded.error().to_string();
          continue;
        }
        FoldedAsset& asset = assets[event.stream_id];
        asset.state = AssetDecider::evolve(std::move(asset.state), *decoded);
        asset.version = event.stream_version;
        asset.updated_at_us = micros(event.recorded_at);
        if (decoded->has_asset_listed_for_sale()) asset.listed_at_us = micros(event.recorded_at);
        ++fold.asset_events;
      } else if (lease_codec.knows(event.event_type)) {
        auto decoded = lease_codec.decode(where, event.event_type, event.schema_version,
                                          event.payload);
        if (!decoded) {
          ADD_FAILURE() << decoded.error().to_string();
          continue;
        }
        FoldedLease& lease = leases[event.stream_id];
        lease.state = LeaseDecider::evolve(std::move(lease.state), *decoded);
        if (!decoded->has_lease_drafted()) ++fold.lease_events;
      }
    }
  }

  std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, std::int64_t>> totals;
  for (const auto& [stream, asset] : assets) add_asset_rows(asset, fold.models, totals);
  for (const auto& [key, total] : totals) {
    fold.models.portfolio.push_back(join({key.first, key.second, std::to_string(total.first),
                                          std::to_string(total.second)}));
  }
  for (const auto& [stream, lease] : leases) add_lease_rows(lease.state, today, fold.models);

  for (auto* rows : {&fold.models.asset_summary, &fold.models.active_listings,
                     &fold.models.portfolio, &fold.models.rent_roll}) {
    std::sort(rows->begin(), rows->end());
  }
  return fold;
}

ReadModels read_views(const std::string& database_uri) {
  pqxx::connection connection(database_uri);
  pqxx::nontransaction tx(connection);
  auto micros_sql = [&](const std::string& column) {
    return "(extract(epoch FROM " + column + ") * 1000000)::int8::text";
  };
  ReadModels models;
  models.asset_summary = query_rows(
      tx, "SELECT concat_ws('|', asset_id, name, kind, owner_id, status, valuation_minor, "
          "currency, coalesce(asking_price_minor::text, 'NULL'), city, version, " +
              micros_sql("updated_at") + ") FROM deedkit_read.asset_summary");
  models.active_listings = query_rows(
      tx, "SELECT concat_ws('|', asset_id, name, city, asking_price_minor, currency, " +
              micros_sql("listed_at") + ") FROM deedkit_read.active_listings");
  models.portfolio = query_rows(
      tx, "SELECT concat_ws('|', owner_id, currency, asset_count, total_valuation_minor) "
          "FROM deedkit_read.portfolio");
  models.rent_roll = query_rows(
      tx, "SELECT concat_ws('|', lease_id, asset_id, tenant_id, period, rent_due_minor, "
          "paid_minor, currency, due_date, status) FROM deedkit_read.rent_roll");
  return models;
}

std::string database_today(const std::string& database_uri) {
  pqxx::connection connection(database_uri);
  pqxx::nontransaction tx(connection);
  return tx.exec1("SELECT (now() AT TIME ZONE 'UTC')::date::text")[0].c_str();
}

void expect_same_rows(const std::vector<std::string>& expected,
                      const std::vector<std::string>& actual, const std::string& what) {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                      std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                      std::back_inserter(unexpected));
  if (missing.empty() && unexpected.empty()) return;

  std::string report;
  for (std::size_t i = 0; i < std::min<std::size_t>(missing.size(), 5); ++i) {
    report += "\n  missing:    " + missing[i];
  }
  for (std::size_t i = 0; i < std::min<std::size_t>(unexpected.size(), 5); ++i) {
    report += "\n  unexpected: " + unexpected[i];
  }
  ADD_FAILURE() << what << " differs from the fold of the log: " << missing.size()
                << " rows missing, " << unexpected.size() << " unexpected (of "
                << expected.size() << " expected)" << report;
}

void expect_same_models(const ReadModels& expected, const ReadModels& actual) {
  expect_same_rows(expected.asset_summary, actual.asset_summary, "asset_summary");
  expect_same_rows(expected.active_listings, actual.active_listings, "active_listings");
  expect_same_rows(expected.portfolio, actual.portfolio, "portfolio");
  expect_same_rows(expected.rent_roll, actual.rent_roll, "rent_roll");
}

}  // namespace deedkit::testing
