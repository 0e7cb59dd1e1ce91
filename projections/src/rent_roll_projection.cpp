#include <map>
#include <memory>
#include <unordered_map>

#include <pqxx/result>

#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/sql_array.hpp"

namespace deedkit::realestate {

namespace {

// The rent roll is written in up to three statements per group of events: rows for signed
// leases, then payments, then terminations. Within one lease those always come in that
// order; a group is cut short whenever an event would break it, so the statements have the
// same effect as applying the events one by one.
enum class Phase { kSigned = 0, kPaid = 1, kTerminated = 2 };

bool is_date(const std::string& text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (const std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

Result<std::string> month_of(const std::string& date, const RecordedEvent& event) {
  if (!is_date(date)) {
    return fail(ErrorCode::kInvalidArgument,
                "event " + event.event_type + " for " + event.stream_id + " version " +
                    std::to_string(event.stream_version) + " has date '" + date +
                    "', not YYYY-MM-DD");
  }
  return date.substr(0, 7);
}

// The statements' inputs for one group, column by column.
struct Group {
  std::unordered_map<std::string, Phase> last_phase;  // by lease id

  SqlArray signed_leases, signed_assets, signed_tenants, first_months, last_months, rents,
      rent_currencies;

  // Payments of one lease and period add up; ON CONFLICT may touch a row once per statement.
  struct Payment {
    std::string asset_id, tenant_id, currency;
    std::int64_t amount_minor = 0;
  };
  std::map<std::pair<std::string, std::string>, Payment> payments;

  SqlArray ended_leases, ended_last_periods;

  bool accepts(const std::string& lease_id, Phase phase) const {
    const auto seen = last_phase.find(lease_id);
    if (seen == last_phase.end()) return true;
    if (seen->second > phase) return false;
    return seen->second != phase || phase == Phase::kPaid;
  }

  bool empty() const { return last_phase.empty(); }
};

const char* const kSignedSql =
    "INSERT INTO {rent_roll} AS t (lease_id, period, asset_id, tenant_id, rent_due_minor, "
    "paid_minor, currency) "
    "SELECT r.lease_id, to_char(month, 'YYYY-MM'), r.asset_id, r.tenant_id, r.rent, 0, "
    "r.currency FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::date[], $5::date[], "
    "$6::int8[], $7::text[]) AS r(lease_id, asset_id, tenant_id, first_month, last_month, "
    "rent, currency), "
    "generate_series(r.first_month::timestamp, r.last_month::timestamp, interval '1 month') "
    "AS month "
    "ON CONFLICT (lease_id, period) DO UPDATE SET asset_id = excluded.asset_id, "
    "tenant_id = excluded.tenant_id, rent_due_minor = excluded.rent_due_minor, "
    "currency = excluded.currency";

const char* const kPaidSql =
    "INSERT INTO {rent_roll} AS t (lease_id, period, asset_id, tenant_id, rent_due_minor, "
    "paid_minor, currency) "
    "SELECT r.lease_id, r.period, r.asset_id, r.tenant_id, 0, r.amount, r.currency "
    "FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int8[], $6::text[]) "
    "AS r(lease_id, period, asset_id, tenant_id, amount, currency) "
    "ON CONFLICT (lease_id, period) DO UPDATE SET paid_minor = t.paid_minor + excluded.paid_minor";

// After a termination nothing more falls due: later months go, unless rent was already paid
// for them, in which case they stay (nothing due) so the payment remains visible.
const char* const kTerminatedSql =
    "WITH ended AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS e(lease_id, last_period)), "
    "dropped AS (DELETE FROM {rent_roll} t USING ended e WHERE t.lease_id = e.lease_id "
    "AND t.period > e.last_period AND t.paid_minor = 0) "
    "UPDATE {rent_roll} t SET rent_due_minor = 0 FROM ended e WHERE t.lease_id = e.lease_id "
    "AND t.period > e.last_period AND t.paid_minor > 0";

void write(ApplyContext& context, Group& group) {
  if (group.signed_leases.size() > 0) {
    context.tx().exec_prepared(context.prepare("signed", kSignedSql), group.signed_leases.str(),
                               group.signed_assets.str(), group.signed_tenants.str(),
                               group.first_months.str(), group.last_months.str(),
                               group.rents.str(), group.rent_currencies.str());
  }
  if (!group.payments.empty()) {
    SqlArray leases, periods, assets, tenants, amounts, currencies;
    for (const auto& [key, payment] : group.payments) {
      leases.add(key.first);
      periods.add(key.second);
      assets.add(payment.asset_id);
      tenants.add(payment.tenant_id);
      amounts.add(payment.amount_minor);
      currencies.add(payment.currency);
    }
    context.tx().exec_prepared(context.prepare("paid", kPaidSql), leases.str(), periods.str(),
                               assets.str(), tenants.str(), amounts.str(), currencies.str());
  }
  if (group.ended_leases.size() > 0) {
    context.tx().exec_prepared(context.prepare("terminated", kTerminatedSql),
                               group.ended_leases.str(), group.ended_last_periods.str());
  }
  group = Group{};
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
       "lease_id uuid NOT NULL, period text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'), "
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
  Group group;
  for (const RecordedEvent* event : events) {
    auto lease_event = codec_.decode({event->stream_id, event->stream_version},
                                     event->event_type, event->schema_version, event->payload);
    if (!lease_event) return std::unexpected(lease_event.error());

    if (lease_event->has_lease_signed()) {
      const v1::LeaseSigned& signed_lease = lease_event->lease_signed();
      auto first = month_of(signed_lease.start_date(), *event);
      if (!first) return std::unexpected(first.error());
      auto last = month_of(signed_lease.end_date(), *event);
      if (!last) return std::unexpected(last.error());
      if (!group.accepts(signed_lease.lease_id(), Phase::kSigned)) write(context, group);

      group.last_phase[signed_lease.lease_id()] = Phase::kSigned;
      group.signed_leases.add(signed_lease.lease_id());
      group.signed_assets.add(signed_lease.asset_id());
      group.signed_tenants.add(signed_lease.tenant_id());
      group.first_months.add(*first + "-01");
      group.last_months.add(*last + "-01");
      group.rents.add(signed_lease.monthly_rent().amount_minor());
      group.rent_currencies.add(signed_lease.monthly_rent().currency());
    } else if (lease_event->has_rent_payment_recorded()) {
      const v1::RentPaymentRecorded& payment = lease_event->rent_payment_recorded();
      if (!group.accepts(payment.lease_id(), Phase::kPaid)) write(context, group);

      group.last_phase[payment.lease_id()] = Phase::kPaid;
      Group::Payment& paid = group.payments[{payment.lease_id(), payment.period()}];
      paid.asset_id = payment.asset_id();
      paid.tenant_id = payment.tenant_id();
      paid.currency = payment.amount().currency();
      paid.amount_minor += payment.amount().amount_minor();
    } else if (lease_event->has_lease_terminated()) {
      const v1::LeaseTerminated& terminated = lease_event->lease_terminated();
      auto last = month_of(terminated.date(), *event);
      if (!last) return std::unexpected(last.error());
      if (!group.accepts(terminated.lease_id(), Phase::kTerminated)) write(context, group);

      group.last_phase[terminated.lease_id()] = Phase::kTerminated;
      group.ended_leases.add(terminated.lease_id());
      group.ended_last_periods.add(*last);
    }
  }
  if (!group.empty()) write(context, group);
  return {};
}

std::vector<std::unique_ptr<Projection>> make_real_estate_projections() {
  std::vector<std::unique_ptr<Projection>> projections;
  projections.push_back(std::make_unique<AssetsProjection>());
  projections.push_back(std::make_unique<RentRollProjection>());
  return projections;
}

}  // namespace deedkit::realestate
