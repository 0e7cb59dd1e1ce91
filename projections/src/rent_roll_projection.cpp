#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <pqxx/result>

#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/sql_array.hpp"

namespace deedkit::realestate {

namespace {

// The rent roll is written in up to three statements per group of events: the rows of
// leases signed in the group, with the payments that followed folded in; payments for rows
// signed before the group; then terminations. Within one lease those always come in that
// order; a group is cut short whenever an event would break it, so the statements have the
// same effect as applying the events one by one.
enum class Phase { kSigned = 0, kPaid = 1, kTerminated = 2 };

// Reads the digits text[at, at + count) as a number, or nothing if any is not a digit.
std::optional<int> digits(std::string_view text, std::size_t at, std::size_t count) {
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

std::string where(const RecordedEvent& event) {
  return "event " + event.event_type + " for " + event.stream_id + " version " +
         std::to_string(event.stream_version);
}

// The month of a date written YYYY-MM-DD that is a real calendar day.
Result<std::chrono::year_month> month_of_date(const std::string& date,
                                              const RecordedEvent& event) {
  if (date.size() == 10 && date[4] == '-' && date[7] == '-') {
    const auto year = digits(date, 0, 4), month = digits(date, 5, 2), day = digits(date, 8, 2);
    if (year && month && day && *year > 0) {
      const std::chrono::year_month_day parsed{std::chrono::year{*year},
                                               std::chrono::month(static_cast<unsigned>(*month)),
                                               std::chrono::day(static_cast<unsigned>(*day))};
      if (parsed.ok()) return parsed.year() / parsed.month();
    }
  }
  return fail(ErrorCode::kInvalidArgument,
              where(event) + " has date '" + date + "', not a calendar day written YYYY-MM-DD");
}

// A period written YYYY-MM that is a real calendar month. The table has no CHECK for it:
// this test runs once per payment in the client, where its error can name the event.
Result<std::chrono::year_month> month_of_period(const std::string& period,
                                                const RecordedEvent& event) {
  if (period.size() == 7 && period[4] == '-') {
    const auto year = digits(period, 0, 4), month = digits(period, 5, 2);
    if (year && month && *year > 0 && *month >= 1 && *month <= 12) {
      return std::chrono::year{*year} / std::chrono::month(static_cast<unsigned>(*month));
    }
  }
  return fail(ErrorCode::kInvalidArgument,
              where(event) + " has period '" + period + "', not a month written YYYY-MM");
}

std::string period_text(std::chrono::year_month month) {
  const int year = static_cast<int>(month.year());
  const unsigned number = static_cast<unsigned>(month.month());
  return {static_cast<char>('0' + year / 1000), static_cast<char>('0' + year / 100 % 10),
          static_cast<char>('0' + year / 10 % 10), static_cast<char>('0' + year % 10), '-',
          static_cast<char>('0' + number / 10), static_cast<char>('0' + number % 10)};
}

// A lease signed in the group: one row per month of its term, and what was paid for each
// month since the signing.
struct SignedLease {
  std::string lease_id, asset_id, tenant_id, currency;
  std::int64_t rent_due_minor = 0;
  std::chrono::year_month first_month;
  std::vector<std::int64_t> paid_minor;  // one per month from first_month

  std::int64_t* paid_for(std::chrono::year_month month) {
    const auto offset = (month - first_month).count();
    if (offset < 0 || offset >= static_cast<std::int64_t>(paid_minor.size())) return nullptr;
    return &paid_minor[static_cast<std::size_t>(offset)];
  }
};

// A payment for a month that no signing in the group wrote.
struct Payment {
  std::string asset_id, tenant_id, currency;
  std::int64_t amount_minor = 0;
};

// The statements' inputs for one group.
struct Group {
  std::unordered_map<std::string, Phase> last_phase;  // by lease id

  std::vector<SignedLease> signed_leases;
  std::unordered_map<std::string, std::size_t> signed_index;  // lease id -> signed_leases
  // Payments of one lease and period add up: ON CONFLICT may touch a row once per statement.
  std::map<std::pair<std::string, std::string>, Payment> payments;  // by lease id, period

  SqlArray ended_leases, ended_last_periods;

  bool accepts(const std::string& lease_id, Phase phase) const {
    const auto seen = last_phase.find(lease_id);
    if (seen == last_phase.end()) return true;
    if (seen->second > phase) return false;
    return seen->second != phase || phase == Phase::kPaid;
  }

  bool empty() const { return last_phase.empty(); }
};

// A lease's first signing finds no rows of it, and its months can be plain inserts, which
// cost PostgreSQL about a third less than ON CONFLICT's speculative insertion. The group's
// leases are looked up first (one probe per lease, not per month) to choose.
const char* const kAnyRowsSql =
    "SELECT EXISTS (SELECT FROM {rent_roll} WHERE lease_id = ANY($1::uuid[]))";

const char* const kNewRowsSql =
    "INSERT INTO {rent_roll} (lease_id, period, asset_id, tenant_id, rent_due_minor, "
    "paid_minor, currency) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], "
    "$6::int8[], $7::text[])";

// A signing sets every column but what was paid, which it keeps: payments recorded before
// the signing (none in this domain, but the log decides) stay counted.
const char* const kSignedSql =
    "INSERT INTO {rent_roll} AS t (lease_id, period, asset_id, tenant_id, rent_due_minor, "
    "paid_minor, currency) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], "
    "$6::int8[], $7::text[]) "
    "ON CONFLICT (lease_id, period) DO UPDATE SET asset_id = excluded.asset_id, "
    "tenant_id = excluded.tenant_id, rent_due_minor = excluded.rent_due_minor, "
    "currency = excluded.currency, paid_minor = t.paid_minor + excluded.paid_minor";

const char* const kPaidSql =
    "INSERT INTO {rent_roll} AS t (lease_id, period, asset_id, tenant_id, rent_due_minor, "
    "paid_minor, currency) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], "
    "$6::int8[], $7::text[]) "
    "ON CONFLICT (lease_id, period) DO UPDATE SET paid_minor = t.paid_minor + excluded.paid_minor";

// After a termination nothing more falls due: later months go, unless rent was already paid
// for them, in which case they stay (nothing due) so the payment remains visible.
const char* const kTerminatedSql =
    "WITH ended AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS e(lease_id, last_period)), "
    "dropped AS (DELETE FROM {rent_roll} t USING ended e WHERE t.lease_id = e.lease_id "
    "AND t.period > e.last_period AND t.paid_minor = 0) "
    "UPDATE {rent_roll} t SET rent_due_minor = 0 FROM ended e WHERE t.lease_id = e.lease_id "
    "AND t.period > e.last_period AND t.paid_minor > 0";

// The columns of the rent roll's upserts, one array each.
struct RowArrays {
  SqlArray leases, periods, assets, tenants, due, paid, currencies;

  void add(const std::string& lease_id, const std::string& period, const std::string& asset_id,
           const std::string& tenant_id, std::int64_t due_minor, std::int64_t paid_minor,
           const std::string& currency) {
    leases.add(lease_id);
    periods.add(period);
    assets.add(asset_id);
    tenants.add(tenant_id);
    due.add(due_minor);
    paid.add(paid_minor);
    currencies.add(currency);
  }

  void exec(ApplyContext& context, const char* name, const char* sql) const {
    context.tx().exec_prepared(context.prepare(name, sql), leases.str(), periods.str(),
                               assets.str(), tenants.str(), due.str(), paid.str(),
                               currencies.str());
  }
};

// One group's statements with their parameters encoded: what prepare leaves for
// apply_prepared, so that the writing thread only sends them.
struct GroupWrites {
  SqlArray signed_lease_ids;  // for the lookup that chooses plain inserts
  RowArrays signed_rows, paid_rows;
  SqlArray ended_leases, ended_last_periods;
};

struct RentRollBatch final : PreparedBatch {
  std::vector<GroupWrites> groups;
};

GroupWrites encode(Group&& group) {
  GroupWrites writes;
  for (const SignedLease& lease : group.signed_leases) {
    writes.signed_lease_ids.add(lease.lease_id);
    auto month = lease.first_month;
    for (const std::int64_t paid : lease.paid_minor) {
      writes.signed_rows.add(lease.lease_id, period_text(month), lease.asset_id,
                             lease.tenant_id, lease.rent_due_minor, paid, lease.currency);
      month += std::chrono::months(1);
    }
  }
  for (const auto& [key, payment] : group.payments) {
    writes.paid_rows.add(key.first, key.second, payment.asset_id, payment.tenant_id, 0,
                         payment.amount_minor, payment.currency);
  }
  writes.ended_leases = std::move(group.ended_leases);
  writes.ended_last_periods = std::move(group.ended_last_periods);
  return writes;
}

void write(ApplyContext& context, const GroupWrites& group) {
  if (group.signed_lease_ids.size() > 0) {
    const pqxx::result found = context.tx().exec_prepared(
        context.prepare("any_rows", kAnyRowsSql), group.signed_lease_ids.str());
    if (found[0][0].as<bool>()) {
      group.signed_rows.exec(context, "signed", kSignedSql);
    } else {
      group.signed_rows.exec(context, "signed_new", kNewRowsSql);
    }
  }
  if (group.paid_rows.leases.size() > 0) group.paid_rows.exec(context, "paid", kPaidSql);
  if (group.ended_leases.size() > 0) {
    context.tx().exec_prepared(context.prepare("terminated", kTerminatedSql),
                               group.ended_leases.str(), group.ended_last_periods.str());
  }
}

}  // namespace

std::vector<std::string> RentRollProjection::event_types() const {
  // A draft binds nobody and owes no rent: the roll starts at signing.
  return {std::string(v1::LeaseSigned::descriptor()->full_name()),
          std::string(v1::RentPaymentRecorded::descriptor()->full_name()),
          std::string(v1::LeaseTerminated::descriptor()->full_name())};
}

std::vector<ProjectionTable> RentRollProjection::tables() const {
  return {
      {"rent_roll",
       "lease_id uuid NOT NULL, period text COLLATE \"C\" NOT NULL, "
       "asset_id uuid NOT NULL, tenant_id uuid NOT NULL, rent_due_minor bigint NOT NULL, "
       "paid_minor bigint NOT NULL, currency text NOT NULL, PRIMARY KEY (lease_id, period)",
       {"(asset_id, period)", "(tenant_id, period)", "(period)"}},
  };
}

std::vector<ProjectionView> RentRollProjection::views() const {
  // Rent for a month falls due on its first day (UTC). Until then an unpaid month is
  // "due"; from the day after, "overdue"; once paid in full, "paid".
  return {
      {"rent_roll",
       "SELECT lease_id, asset_id, tenant_id, period, rent_due_minor, paid_minor, currency, "
       "(period || '-01')::date AS due_date, "
       "CASE WHEN paid_minor >= rent_due_minor THEN 'paid' "
       "WHEN (now() AT TIME ZONE 'UTC')::date > (period || '-01')::date THEN 'overdue' "
       "ELSE 'due' END AS status FROM {rent_roll}"},
  };
}

Result<void> RentRollProjection::apply(ApplyContext& context, EventBatch events) const {
  auto prepared = prepare(events);
  if (!prepared) return std::unexpected(prepared.error());
  return apply_prepared(context, events, **prepared);
}

Result<std::unique_ptr<PreparedBatch>> RentRollProjection::prepare(EventBatch events) const {
  auto batch = std::make_unique<RentRollBatch>();
  Group group;
  const auto close_group = [&] {
    batch->groups.push_back(encode(std::move(group)));
    group = Group{};
  };
  for (const RecordedEvent* event : events) {
    auto lease_event = codec_.decode({event->stream_id, event->stream_version},
                                     event->event_type, event->schema_version, event->payload);
    if (!lease_event) return std::unexpected(lease_event.error());

    if (lease_event->has_lease_signed()) {
      const v1::LeaseSigned& signed_lease = lease_event->lease_signed();
      auto first = month_of_date(signed_lease.start_date(), *event);
      if (!first) return std::unexpected(first.error());
      auto last = month_of_date(signed_lease.end_date(), *event);
      if (!last) return std::unexpected(last.error());
      if (!group.accepts(signed_lease.lease_id(), Phase::kSigned)) close_group();

      group.last_phase[signed_lease.lease_id()] = Phase::kSigned;
      const auto months = *last < *first ? 0 : (*last - *first).count() + 1;
      group.signed_index[signed_lease.lease_id()] = group.signed_leases.size();
      group.signed_leases.push_back(
          SignedLease{.lease_id = signed_lease.lease_id(),
                      .asset_id = signed_lease.asset_id(),
                      .tenant_id = signed_lease.tenant_id(),
                      .currency = signed_lease.monthly_rent().currency(),
                      .rent_due_minor = signed_lease.monthly_rent().amount_minor(),
                      .first_month = *first,
                      .paid_minor = std::vector<std::int64_t>(static_cast<std::size_t>(months))});
    } else if (lease_event->has_rent_payment_recorded()) {
      const v1::RentPaymentRecorded& payment = lease_event->rent_payment_recorded();
      auto month = month_of_period(payment.period(), *event);
      if (!month) return std::unexpected(month.error());
      if (!group.accepts(payment.lease_id(), Phase::kPaid)) close_group();

      group.last_phase[payment.lease_id()] = Phase::kPaid;
      if (const auto signed_here = group.signed_index.find(payment.lease_id());
          signed_here != group.signed_index.end()) {
        SignedLease& lease = group.signed_leases[signed_here->second];
        if (std::int64_t* paid = lease.paid_for(*month)) {
          *paid += payment.amount().amount_minor();
          continue;
        }
      }
      Payment& paid = group.payments[{payment.lease_id(), payment.period()}];
      paid.asset_id = payment.asset_id();
      paid.tenant_id = payment.tenant_id();
      paid.currency = payment.amount().currency();
      paid.amount_minor += payment.amount().amount_minor();
    } else if (lease_event->has_lease_terminated()) {
      const v1::LeaseTerminated& terminated = lease_event->lease_terminated();
      auto last = month_of_date(terminated.date(), *event);
      if (!last) return std::unexpected(last.error());
      if (!group.accepts(terminated.lease_id(), Phase::kTerminated)) close_group();

      group.last_phase[terminated.lease_id()] = Phase::kTerminated;
      group.ended_leases.add(terminated.lease_id());
      group.ended_last_periods.add(period_text(*last));
    }
  }
  if (!group.empty()) close_group();
  return batch;
}

Result<void> RentRollProjection::apply_prepared(ApplyContext& context, EventBatch,
                                                PreparedBatch& prepared) const {
  for (const GroupWrites& group : static_cast<RentRollBatch&>(prepared).groups) {
    write(context, group);
  }
  return {};
}

std::vector<std::unique_ptr<Projection>> make_real_estate_projections() {
  std::vector<std::unique_ptr<Projection>> projections;
  projections.push_back(std::make_unique<AssetsProjection>());
  projections.push_back(std::make_unique<RentRollProjection>());
  return projections;
}

}  // namespace deedkit::realestate
