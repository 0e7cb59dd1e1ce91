// The reference read models against scripted histories: each equals the fold of the whole
// log, and the rules the documentation states hold row by row.

#include <gtest/gtest.h>

#include "deedkit/domain/lease.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/projections/real_estate.hpp"
#include "projection_fixture.hpp"
#include "real_estate_fold.hpp"
#include "real_estate_script.hpp"
#include "test_database.hpp"

namespace deedkit::testing {
namespace {

namespace v1 = realestate::v1;

class RealEstateProjectionTest : public ProjectionTest {
 protected:
  void SetUp() override {
    ProjectionTest::SetUp();
    script_ = std::make_unique<RealEstateScript>(store());
  }

  // Runs both projections until they have applied the whole log, then stops them.
  void project() {
    ProjectionRunner runner(pool(), all_, fast_options());
    runner.start();
    wait_until_caught_up(all_);
    runner.stop();
  }

  void expect_views_equal_fold() {
    const LogFold fold = fold_log(store(), database_today(database_uri()));
    expect_same_models(fold.models, read_views(database_uri()));
  }

  // Rebuilds the rent roll from the whole log in batches of `batch_size`; false if it never
  // caught up.
  bool rebuild_rent_roll(int batch_size) {
    if (!request_rebuild(pool(), rent_roll_)) return false;
    const std::vector<const Projection*> rent_roll_only{&rent_roll_};
    ProjectionRunner runner(pool(), rent_roll_only, fast_options(batch_size));
    runner.start();
    const bool caught_up = wait_until_caught_up(rent_roll_only);
    runner.stop();
    return caught_up;
  }

  std::string summary_column(const std::string& column, const std::string& asset_id) {
    return query_value(database_uri(), "SELECT coalesce(" + column +
                                           "::text, 'NULL') FROM deedkit_read.asset_summary "
                                           "WHERE asset_id = '" + asset_id + "'");
  }

  RealEstateScript& script() { return *script_; }

  realestate::AssetsProjection assets_;
  realestate::RentRollProjection rent_roll_;
  const std::vector<const Projection*> all_{&assets_, &rent_roll_};

 private:
  std::unique_ptr<RealEstateScript> script_;
};

TEST_F(RealEstateProjectionTest, AssetViewsEqualTheFoldOfAScriptedHistory) {
  const std::string alice = fresh_id();
  const std::string bob = fresh_id();
  const std::string carol = fresh_id();

  const std::string canal = script().register_asset(alice, "Canal house", "Amsterdam", 900000);
  script().update_details(canal, "Canal house, renovated", "Amsterdam");
  script().reappraise(canal, 950000);
  script().list(canal, 1000000);
  script().accept_offer(canal, bob, 980000);
  script().complete_sale(canal);

  const std::string loft = script().register_asset(alice, "Loft", "Rotterdam", 400000);
  script().list(loft, 450000);
  script().withdraw(loft);
  script().list(loft, 430000);

  const std::string barn = script().register_asset(bob, "Barn", "Utrecht", 150000, "CHF");
  script().archive(barn);
  const std::string mill = script().register_asset(carol, "Mill", "Zaandam", 300000, "CHF");
  script().list(mill, 350000, "CHF");
  script().accept_offer(mill, alice, 340000, "CHF");

  project();

  expect_views_equal_fold();
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.asset_summary"), 4);
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.active_listings"), 1)
      << "only the loft is listed at the end";
}

TEST_F(RealEstateProjectionTest, AskingPriceIsShownOnlyWhileTheAssetIsListed) {
  const std::string owner = fresh_id();
  const std::string asset = script().register_asset(owner, "Villa", "Haarlem", 500000);
  script().list(asset, 600000);
  project();
  EXPECT_EQ(summary_column("asking_price_minor", asset), "600000");
  EXPECT_EQ(summary_column("status", asset), "LISTED");

  script().accept_offer(asset, fresh_id(), 590000);
  project();
  EXPECT_EQ(summary_column("asking_price_minor", asset), "NULL")
      << "an asset under contract is no longer offered at a price";
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.active_listings"), 0);
  expect_views_equal_fold();
}

TEST_F(RealEstateProjectionTest, SaleMovesTheAssetToTheBuyersPortfolio) {
  const std::string seller = fresh_id();
  const std::string buyer = fresh_id();
  const std::string kept = script().register_asset(seller, "Kept", "Delft", 100000);
  const std::string sold = script().register_asset(seller, "Sold", "Delft", 250000);
  script().list(sold, 300000);
  script().accept_offer(sold, buyer, 290000);
  script().complete_sale(sold);
  script().reappraise(kept, 120000);

  project();

  EXPECT_EQ(query_value(database_uri(),
                        "SELECT asset_count || '/' || total_valuation_minor FROM "
                        "deedkit_read.portfolio WHERE owner_id = '" + seller + "'"),
            "1/120000");
  EXPECT_EQ(query_value(database_uri(),
                        "SELECT asset_count || '/' || total_valuation_minor FROM "
                        "deedkit_read.portfolio WHERE owner_id = '" + buyer + "'"),
            "1/250000")
      << "the buyer's portfolio holds the asset at its valuation, not the price paid";
  EXPECT_EQ(summary_column("owner_id", sold), buyer);
  expect_views_equal_fold();
}

TEST_F(RealEstateProjectionTest, ArchivedAssetsLeaveThePortfolio) {
  const std::string owner = fresh_id();
  const std::string asset = script().register_asset(owner, "Shed", "Leiden", 20000);
  project();
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.portfolio WHERE owner_id = '" +
                      owner + "'"),
            1);

  script().archive(asset);
  project();

  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.portfolio WHERE owner_id = '" +
                      owner + "'"),
            0)
      << "an owner with no live assets has no portfolio row";
  EXPECT_EQ(summary_column("status", asset), "ARCHIVED");
  expect_views_equal_fold();
}

TEST_F(RealEstateProjectionTest, RentRollEqualsTheFoldOfAScriptedHistory) {
  const std::string asset = script().register_asset(fresh_id(), "Flat", "Breda", 200000);
  const std::string paid_up = script().draft_lease(asset, fresh_id(), 1200, "2020-01-15",
                                                   "2020-12-31");
  script().sign(paid_up);
  for (const char* period : {"2020-01", "2020-02", "2020-03", "2020-11"}) {
    script().pay(paid_up, period, 1200);
  }
  script().terminate(paid_up, "2020-06-30");

  const std::string future = script().draft_lease(asset, fresh_id(), 900, "2090-03-01",
                                                  "2091-02-28", "CHF");
  script().sign(future);
  script().pay(future, "2090-03", 900, "CHF");
  script().draft_lease(asset, fresh_id(), 700, "2021-01-01", "2021-12-31");  // never signed

  project();

  expect_views_equal_fold();
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                      paid_up + "'"),
            7)
      << "January to June are due; November was paid in advance and stays, due 0";
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                      future + "'"),
            12);
}

// The rent roll folds a lease's payments into the months its signing writes when both fall
// in one batch, and writes them separately when they do not. Rebuilding with every small
// batch size cuts the history at every event, so each path meets every other.
TEST_F(RealEstateProjectionTest, RentRollEqualsTheFoldWhereverBatchesAreCut) {
  const std::string asset = script().register_asset(fresh_id(), "Loft", "Delft", 300000);
  const std::string first = script().draft_lease(asset, fresh_id(), 1000, "2021-11-01",
                                                 "2022-04-30");
  const std::string second = script().draft_lease(asset, fresh_id(), 800, "2022-01-10",
                                                  "2022-12-31", "CHF");
  script().sign(first);
  script().pay(first, "2021-11", 1000);
  script().sign(second);
  script().pay(first, "2022-03", 1000);  // paid ahead
  script().pay(second, "2022-01", 800, "CHF");
  script().terminate(first, "2022-01-31");
  script().pay(second, "2022-02", 800, "CHF");
  script().terminate(second, "2022-06-30");
  project();

  for (int batch_size = 1; batch_size <= 10; ++batch_size) {
    SCOPED_TRACE("batch size " + std::to_string(batch_size));
    ASSERT_TRUE(rebuild_rent_roll(batch_size));

    expect_views_equal_fold();
    EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                        first + "'"),
              4)
        << "November to January, and March, paid ahead, with nothing due";
  }
}

// Writes lease events straight to the log, as no decider would: the rent roll must cope
// with whatever the log holds. Every lease shares one asset, tenant and six-month term.
class RawLeaseLog {
 public:
  explicit RawLeaseLog(const EventStore& store) : store_(store) {}

  void drafted(const std::string& lease) {
    v1::LeaseEvent event;
    auto& draft = *event.mutable_lease_drafted();
    draft.set_lease_id(lease);
    draft.set_asset_id(asset_);
    draft.set_tenant_id(tenant_);
    *draft.mutable_monthly_rent() = money(1000);
    draft.set_start_date("2023-01-01");
    draft.set_end_date("2023-06-30");
    append(lease, event);
  }

  void signed_lease(const std::string& lease) {
    v1::LeaseEvent event;
    auto& signing = *event.mutable_lease_signed();
    signing.set_lease_id(lease);
    signing.set_asset_id(asset_);
    signing.set_tenant_id(tenant_);
    *signing.mutable_monthly_rent() = money(1000);
    signing.set_start_date("2023-01-01");
    signing.set_end_date("2023-06-30");
    append(lease, event);
  }

  void paid(const std::string& lease, const std::string& period, std::int64_t minor) {
    v1::LeaseEvent event;
    auto& payment = *event.mutable_rent_payment_recorded();
    payment.set_lease_id(lease);
    payment.set_asset_id(asset_);
    payment.set_tenant_id(tenant_);
    payment.set_period(period);
    *payment.mutable_amount() = money(minor);
    append(lease, event);
  }

  void terminated(const std::string& lease, const std::string& date) {
    v1::LeaseEvent event;
    auto& termination = *event.mutable_lease_terminated();
    termination.set_lease_id(lease);
    termination.set_asset_id(asset_);
    termination.set_tenant_id(tenant_);
    termination.set_date(date);
    termination.set_reason("test");
    append(lease, event);
  }

 private:
  static v1::Money money(std::int64_t minor) {
    v1::Money amount;
    amount.set_amount_minor(minor);
    amount.set_currency("EUR");
    return amount;
  }

  void append(const std::string& lease, const v1::LeaseEvent& event) {
    auto encoded = codec_.encode(event);
    ASSERT_TRUE(encoded.has_value()) << encoded.error().to_string();
    const NewEvent stored{new_uuid(), encoded->event_type, encoded->schema_version,
                          encoded->payload, {}};
    ASSERT_TRUE(
        store_.append("lease-" + lease, ExpectedVersion::any(), std::span(&stored, 1)));
  }

  const EventStore& store_;
  const EventCodec<v1::LeaseEvent> codec_;
  const std::string asset_ = fresh_id();
  const std::string tenant_ = fresh_id();
};

// Histories the domain's deciders never write but a log may hold (imported, or written by
// an older decider): a payment before the signing, two payments for one month, a second
// signing, payments after a termination, a second termination, a signing after one. The
// rent roll must still equal the fold, wherever the batches are cut: these are the paths
// where it closes a group and starts another, and where a signing finds rows already.
TEST_F(RealEstateProjectionTest, RentRollEqualsTheFoldOfHistoriesTheDecidersNeverWrite) {
  RawLeaseLog log(store());
  const std::string lease = fresh_id();
  const std::string other = fresh_id();
  log.drafted(lease);
  log.drafted(other);
  log.paid(lease, "2023-02", 500);  // before the signing
  log.signed_lease(lease);
  log.signed_lease(other);
  log.paid(lease, "2023-03", 300);
  log.paid(lease, "2023-03", 200);  // the same month again
  log.paid(other, "2023-01", 1000);
  log.signed_lease(lease);  // signed a second time
  log.paid(lease, "2023-04", 1000);
  log.terminated(lease, "2023-04-30");
  log.paid(lease, "2023-06", 1000);  // after the termination, within the term
  log.terminated(lease, "2023-03-31");  // terminated again, earlier
  log.paid(other, "2023-02", 1000);
  log.signed_lease(lease);  // and signed once more: every month falls due again
  log.paid(lease, "2023-05", 700);
  project();
  expect_views_equal_fold();

  for (int batch_size = 1; batch_size <= 12; ++batch_size) {
    SCOPED_TRACE("batch size " + std::to_string(batch_size));
    ASSERT_TRUE(rebuild_rent_roll(batch_size));

    expect_views_equal_fold();
    EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                        lease + "' AND rent_due_minor = 1000"),
              6)
        << "the last signing makes every month of the term due again";
    EXPECT_EQ(query_int("SELECT sum(paid_minor) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                        lease + "'"),
              3700);
  }
}

// The table has no CHECK on periods: the projection checks them, and stops at the event
// that names a month that does not exist, with the events before it applied.
TEST_F(RealEstateProjectionTest, APaymentForAMonthThatDoesNotExistStopsTheRentRollThere) {
  RawLeaseLog log(store());
  const std::string lease = fresh_id();
  log.drafted(lease);
  log.signed_lease(lease);
  log.paid(lease, "2023-13", 1000);
  const std::vector<const Projection*> rent_roll_only{&rent_roll_};

  ProjectionRunner runner(pool(), rent_roll_only, fast_options());
  runner.start();
  const bool stopped = wait_for(
      [&] {
        const auto status = status_of("rent_roll");
        return status && status->live && status->live->failure;
      },
      "the rent roll to stop at the payment");
  runner.stop();

  ASSERT_TRUE(stopped);
  const FailedEvent failure = *status_of("rent_roll")->live->failure;
  EXPECT_EQ(failure.stream_id, "lease-" + lease);
  EXPECT_EQ(failure.event_type, "deedkit.realestate.v1.RentPaymentRecorded");
  EXPECT_NE(failure.error.find("'2023-13'"), std::string::npos) << failure.error;
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                      lease + "'"),
            6)
      << "the signing before the bad payment is applied, the payment is not";
}

TEST_F(RealEstateProjectionTest, ACorruptEventStopsOnlyTheProjectionThatReadsIt) {
  const std::string asset = script().register_asset(fresh_id(), "Flat", "Breda", 200000);
  const std::string stream = "asset-" + asset;
  const NewEvent corrupt{new_uuid(), "deedkit.realestate.v1.AssetReappraised", 1,
                         "\xff\xff not protobuf", {}};
  ASSERT_TRUE(store().append(stream, ExpectedVersion::exact(1), std::span(&corrupt, 1)));
  const std::string lease = script().draft_lease(asset, fresh_id(), 1200, "2020-01-01",
                                                 "2020-03-31");
  script().sign(lease);

  ProjectionRunner runner(pool(), all_, fast_options());
  runner.start();
  const bool assets_stopped = wait_for(
      [&] {
        const auto status = status_of("assets");
        return status && status->live && status->live->failure;
      },
      "the assets projection to stop at the corrupt event");
  const std::vector<const Projection*> rent_roll_only{&rent_roll_};
  const bool rent_roll_followed = wait_until_caught_up(rent_roll_only);
  runner.stop();

  ASSERT_TRUE(assets_stopped);
  const FailedEvent failure = *status_of("assets")->live->failure;
  EXPECT_EQ(failure.stream_id, stream);
  EXPECT_EQ(failure.event_type, "deedkit.realestate.v1.AssetReappraised");
  EXPECT_NE(failure.error.find(stream + "@2"), std::string::npos) << failure.error;
  EXPECT_EQ(summary_column("version", asset), "1") << "applied up to the corrupt event";
  EXPECT_TRUE(rent_roll_followed) << "a corrupt asset event must not stop the rent roll";
  EXPECT_EQ(query_int("SELECT count(*) FROM deedkit_read.rent_roll WHERE lease_id = '" +
                      lease + "'"),
            3);
}

TEST_F(RealEstateProjectionTest, RentRollStatusIsPaidDueOrOverdue) {
  const std::string asset = script().register_asset(fresh_id(), "Flat", "Breda", 200000);
  const std::string past = script().draft_lease(asset, fresh_id(), 1000, "2020-01-01",
                                                "2020-02-29");
  script().sign(past);
  script().pay(past, "2020-01", 1000);
  const std::string future = script().draft_lease(asset, fresh_id(), 1000, "2090-01-01",
                                                  "2090-01-31");
  script().sign(future);

  project();

  auto status = [&](const std::string& lease, const std::string& period) {
    return query_value(database_uri(), "SELECT status FROM deedkit_read.rent_roll WHERE "
                                       "lease_id = '" + lease + "' AND period = '" + period +
                                           "'");
  };
  EXPECT_EQ(status(past, "2020-01"), "paid");
  EXPECT_EQ(status(past, "2020-02"), "overdue") << "unpaid after its first day";
  EXPECT_EQ(status(future, "2090-01"), "due") << "unpaid but not yet due";
}

TEST_F(RealEstateProjectionTest, ListingsAreIndexedForPriceRangesWithinACity) {
  project();

  const std::string definitions = query_value(
      database_uri(),
      "SELECT string_agg(indexdef, ' ; ' ORDER BY indexdef) FROM pg_indexes "
      "WHERE schemaname = 'deedkit_read_data' AND tablename LIKE 'asset_summary_g%'");
  EXPECT_NE(definitions.find("(asking_price_minor) WHERE (status = 'LISTED'::text)"),
            std::string::npos)
      << definitions;
  EXPECT_NE(definitions.find("(city, asking_price_minor) WHERE (status = 'LISTED'::text)"),
            std::string::npos)
      << definitions;
}

}  // namespace
}  // namespace deedkit::testing
