#include "deedkit/domain/lease.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>
#include <vector>

#include "validation.hpp"

namespace deedkit::realestate {

namespace {

using internal::canonical_id;
using internal::Check;
using internal::check_id;
using internal::describe;
using internal::first_failure;
using State = LeaseDecider::State;
using Event = LeaseDecider::Event;
using Decided = Decision<Event>;

Decided rejected(Rejection rejection) { return std::unexpected(std::move(rejection)); }

Decided just(Event event) {
  std::vector<Event> events;
  events.push_back(std::move(event));
  return events;
}

std::string subject(const State& state) { return "lease " + state.lease_id(); }

std::string term(const State& state) {
  return state.start_date() + " to " + state.end_date();
}

// Dates in the state passed parse_date when the lease was drafted; failing now means the
// stream or the fold is corrupt, which no caller can handle.
std::chrono::year_month_day stored_date(const State& state, const std::string& text) {
  const auto date = internal::parse_date(text);
  if (!date) {
    throw std::logic_error(subject(state) + " holds an unreadable date \"" + text + "\"");
  }
  return *date;
}

// Every command but DraftLease needs a lease that exists and has not ended.
Check check_live(const State& state, const std::string& lease_id) {
  if (state.status() == v1::LEASE_STATUS_UNSPECIFIED) {
    return Rejection{"lease_not_found", "lease " + lease_id + " has not been drafted"};
  }
  if (state.status() == v1::TERMINATED) {
    return Rejection{"lease_terminated", subject(state) + " was terminated on " +
                                             state.termination_date() +
                                             " and accepts no changes"};
  }
  return std::nullopt;
}

Check check_signed(const State& state, std::string_view action) {
  if (state.status() == v1::SIGNED) return std::nullopt;
  return Rejection{"lease_not_signed",
                   subject(state) + " is still a DRAFT; only a signed lease can " +
                       std::string(action)};
}

Check check_term(const v1::DraftLease& command) {
  const auto start = internal::parse_date(command.start_date());
  const auto end = internal::parse_date(command.end_date());
  if (start && end && *end <= *start) {
    return Rejection{"lease_end_not_after_start", "end_date " + command.end_date() +
                                                      " is not after start_date " +
                                                      command.start_date()};
  }
  return std::nullopt;
}

Decided decide_draft(const v1::DraftLease& command, const State& state) {
  if (auto rejection = first_failure(
          {check_id("lease_id", command.lease_id()), check_id("asset_id", command.asset_id()),
           check_id("tenant_id", command.tenant_id()),
           internal::check_money("monthly_rent", command.monthly_rent()),
           internal::check_date("start_date", command.start_date()),
           internal::check_date("end_date", command.end_date()), check_term(command)})) {
    return rejected(std::move(*rejection));
  }

  if (state.status() != v1::LEASE_STATUS_UNSPECIFIED) {
    return rejected({"lease_already_drafted",
                     subject(state) + " already exists (" +
                         v1::LeaseStatus_Name(state.status()) + ")"});
  }

  Event event;
  auto& drafted = *event.mutable_lease_drafted();
  drafted.set_lease_id(canonical_id(command.lease_id()));
  drafted.set_asset_id(canonical_id(command.asset_id()));
  drafted.set_tenant_id(canonical_id(command.tenant_id()));
  *drafted.mutable_monthly_rent() = command.monthly_rent();
  drafted.set_start_date(command.start_date());
  drafted.set_end_date(command.end_date());
  return just(std::move(event));
}

Decided decide_sign(const v1::SignLease& command, const State& state) {
  if (auto rejection = first_failure({check_id("lease_id", command.lease_id()),
                                      check_live(state, canonical_id(command.lease_id()))})) {
    return rejected(std::move(*rejection));
  }

  if (state.status() != v1::DRAFT) {
    return rejected({"lease_already_signed", subject(state) + " is already signed"});
  }

  Event event;
  auto& signed_lease = *event.mutable_lease_signed();
  signed_lease.set_lease_id(state.lease_id());
  signed_lease.set_asset_id(state.asset_id());
  signed_lease.set_tenant_id(state.tenant_id());
  *signed_lease.mutable_monthly_rent() = state.monthly_rent();
  signed_lease.set_start_date(state.start_date());
  signed_lease.set_end_date(state.end_date());
  return just(std::move(event));
}

// A month is within the term when any of its days is: a lease starting on the 15th still
// owes rent for its first month.
Check check_period_in_term(const State& state, const std::string& period) {
  const std::chrono::year_month month = *internal::parse_period(period);
  const auto start = stored_date(state, state.start_date());
  const auto end = stored_date(state, state.end_date());
  if (month >= start.year() / start.month() && month <= end.year() / end.month()) {
    return std::nullopt;
  }
  return Rejection{"period_outside_lease", "period " + period + " is outside the term of " +
                                               subject(state) + ", " + term(state)};
}

Check check_not_paid(const State& state, const std::string& period) {
  const auto& payments = state.payments();
  const auto paid = std::find_if(payments.begin(), payments.end(),
                                 [&](const v1::RentPayment& p) { return p.period() == period; });
  if (paid == payments.end()) return std::nullopt;
  return Rejection{"rent_already_paid", "rent for " + period + " on " + subject(state) +
                                            " was already recorded (" +
                                            describe(paid->amount()) + ")"};
}

Decided decide_record_payment(const v1::RecordRentPayment& command, const State& state) {
  if (auto rejection = first_failure({check_id("lease_id", command.lease_id()),
                                      internal::check_period(command.period()),
                                      internal::check_money("amount", command.amount()),
                                      check_live(state, canonical_id(command.lease_id()))})) {
    return rejected(std::move(*rejection));
  }

  if (auto rejection = first_failure(
          {check_signed(state, "take rent"), check_period_in_term(state, command.period()),
           check_not_paid(state, command.period()),
           internal::check_same_currency("amount", command.amount(),
                                         state.monthly_rent().currency())})) {
    return rejected(std::move(*rejection));
  }

  // Rent is owed per whole month and recorded once, so a partial payment could never be
  // completed; it is refused rather than recorded as if the month were settled.
  if (command.amount().amount_minor() != state.monthly_rent().amount_minor()) {
    return rejected({"rent_amount_mismatch", "amount " + describe(command.amount()) +
                                                 " is not the monthly rent " +
                                                 describe(state.monthly_rent()) + " of " +
                                                 subject(state)});
  }

  Event event;
  auto& paid = *event.mutable_rent_payment_recorded();
  paid.set_lease_id(state.lease_id());
  paid.set_asset_id(state.asset_id());
  paid.set_tenant_id(state.tenant_id());
  paid.set_period(command.period());
  *paid.mutable_amount() = command.amount();
  return just(std::move(event));
}

Decided decide_terminate(const v1::TerminateLease& command, const State& state) {
  if (auto rejection = first_failure({check_id("lease_id", command.lease_id()),
                                      internal::check_date("date", command.date()),
                                      internal::check_reason(command.reason()),
                                      check_live(state, canonical_id(command.lease_id()))})) {
    return rejected(std::move(*rejection));
  }

  if (auto rejection = check_signed(state, "be terminated")) {
    return rejected(std::move(*rejection));
  }

  const auto date = *internal::parse_date(command.date());
  if (date < stored_date(state, state.start_date()) ||
      date > stored_date(state, state.end_date())) {
    return rejected({"termination_outside_lease", "termination date " + command.date() +
                                                      " is outside the term of " +
                                                      subject(state) + ", " + term(state)});
  }

  Event event;
  auto& terminated = *event.mutable_lease_terminated();
  terminated.set_lease_id(state.lease_id());
  terminated.set_asset_id(state.asset_id());
  terminated.set_tenant_id(state.tenant_id());
  terminated.set_date(command.date());
  terminated.set_reason(command.reason());
  return just(std::move(event));
}

}  // namespace

State LeaseDecider::initial_state() { return State{}; }

Decision<Event> LeaseDecider::decide(const Command& command, const State& state) {
  switch (command.command_case()) {
    case Command::kDraftLease: return decide_draft(command.draft_lease(), state);
    case Command::kSignLease: return decide_sign(command.sign_lease(), state);
    case Command::kRecordRentPayment:
      return decide_record_payment(command.record_rent_payment(), state);
    case Command::kTerminateLease: return decide_terminate(command.terminate_lease(), state);
    case Command::COMMAND_NOT_SET: break;
  }
  return rejected({"missing_command", "the lease command names no operation"});
}

State LeaseDecider::evolve(State state, const Event& event) {
  switch (event.event_case()) {
    case Event::kLeaseDrafted: {
      const auto& drafted = event.lease_drafted();
      state.set_lease_id(drafted.lease_id());
      state.set_asset_id(drafted.asset_id());
      state.set_tenant_id(drafted.tenant_id());
      *state.mutable_monthly_rent() = drafted.monthly_rent();
      state.set_start_date(drafted.start_date());
      state.set_end_date(drafted.end_date());
      state.set_status(v1::DRAFT);
      return state;
    }
    case Event::kLeaseSigned:
      state.set_status(v1::SIGNED);
      return state;
    case Event::kRentPaymentRecorded: {
      auto& payment = *state.add_payments();
      payment.set_period(event.rent_payment_recorded().period());
      *payment.mutable_amount() = event.rent_payment_recorded().amount();
      return state;
    }
    case Event::kLeaseTerminated:
      state.set_status(v1::TERMINATED);
      state.set_termination_date(event.lease_terminated().date());
      state.set_termination_reason(event.lease_terminated().reason());
      return state;
    case Event::EVENT_NOT_SET: break;
  }
  throw std::logic_error("LeaseDecider::evolve: event for " + state.lease_id() +
                         " has no alternative set");
}

std::string LeaseDecider::aggregate_id(const Command& command) {
  switch (command.command_case()) {
    case Command::kDraftLease: return canonical_id(command.draft_lease().lease_id());
    case Command::kSignLease: return canonical_id(command.sign_lease().lease_id());
    case Command::kRecordRentPayment:
      return canonical_id(command.record_rent_payment().lease_id());
    case Command::kTerminateLease: return canonical_id(command.terminate_lease().lease_id());
    case Command::COMMAND_NOT_SET: break;
  }
  return "";
}

void LeaseDecider::assign_aggregate_id(Command& command, const std::string& id) {
  switch (command.command_case()) {
    case Command::kDraftLease: command.mutable_draft_lease()->set_lease_id(id); return;
    case Command::kSignLease: command.mutable_sign_lease()->set_lease_id(id); return;
    case Command::kRecordRentPayment:
      command.mutable_record_rent_payment()->set_lease_id(id);
      return;
    case Command::kTerminateLease: command.mutable_terminate_lease()->set_lease_id(id); return;
    case Command::COMMAND_NOT_SET: return;
  }
}

bool LeaseDecider::creates_aggregate(const Command& command) {
  return command.command_case() == Command::kDraftLease;
}

}  // namespace deedkit::realestate
