// LeaseDecider as plain functions: the happy path of every command, every rejection code, and
// a randomised run of command sequences that checks the lease's invariants after each step.
#include "deedkit/domain/lease.hpp"

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "decider_test_support.hpp"

namespace deedkit::realestate {
namespace {

using test_support::accepted;
using test_support::money;
using test_support::rejected_with;
using Command = LeaseDecider::Command;
using Event = LeaseDecider::Event;
using State = LeaseDecider::State;

constexpr const char* kLeaseId = "7d9f2b1c-3e4a-4b5c-8d6e-9f0a1b2c3d4e";
constexpr const char* kAssetId = "3b241101-e2bb-4255-8caf-4136c566a962";
constexpr const char* kTenantId = "e5d4c3b2-a190-4f8e-9d7c-6b5a4f3e2d1c";
constexpr std::int64_t kRent = 1'850'00;

// A lease from the middle of January to the end of 2025.
Command draft() {
  Command command;
  auto& drafted = *command.mutable_draft_lease();
  drafted.set_lease_id(kLeaseId);
  drafted.set_asset_id(kAssetId);
  drafted.set_tenant_id(kTenantId);
  *drafted.mutable_monthly_rent() = money(kRent);
  drafted.set_start_date("2025-01-15");
  drafted.set_end_date("2025-12-31");
  return command;
}

Command sign() {
  Command command;
  command.mutable_sign_lease()->set_lease_id(kLeaseId);
  return command;
}

Command pay(const std::string& period, const v1::Money& amount = money(kRent)) {
  Command command;
  command.mutable_record_rent_payment()->set_lease_id(kLeaseId);
  command.mutable_record_rent_payment()->set_period(period);
  *command.mutable_record_rent_payment()->mutable_amount() = amount;
  return command;
}

Command terminate(const std::string& date, const std::string& reason = "tenant moved abroad") {
  Command command;
  command.mutable_terminate_lease()->set_lease_id(kLeaseId);
  command.mutable_terminate_lease()->set_date(date);
  command.mutable_terminate_lease()->set_reason(reason);
  return command;
}

template <typename Edit>
Command edited(Command command, Edit edit) {
  edit(command);
  return command;
}

Command draft_with_term(const std::string& start, const std::string& end) {
  return edited(draft(), [&](Command& c) {
    c.mutable_draft_lease()->set_start_date(start);
    c.mutable_draft_lease()->set_end_date(end);
  });
}

// The state after deciding and folding each command in turn; every one must be accepted.
State fold(const std::vector<Command>& history) {
  State state = LeaseDecider::initial_state();
  for (const Command& command : history) {
    const auto decision = LeaseDecider::decide(command, state);
    EXPECT_TRUE(accepted(decision)) << "while building history: " << command.ShortDebugString();
    if (!decision) break;
    for (const Event& event : *decision) state = LeaseDecider::evolve(std::move(state), event);
  }
  return state;
}

std::vector<Command> drafted() { return {draft()}; }

std::vector<Command> signed_lease() { return {draft(), sign()}; }

std::vector<Command> march_paid() { return {draft(), sign(), pay("2025-03")}; }

std::vector<Command> terminated() { return {draft(), sign(), terminate("2025-06-30")}; }

// ---- Happy paths -------------------------------------------------------------------------

TEST(LeaseDecider, DraftLeaseRecordsTheTermsOfTheLease) {
  const auto decision = LeaseDecider::decide(draft(), LeaseDecider::initial_state());

  ASSERT_TRUE(accepted(decision));
  ASSERT_EQ(decision->size(), 1u);
  const auto& event = (*decision)[0].lease_drafted();
  EXPECT_EQ(event.lease_id(), kLeaseId);
  EXPECT_EQ(event.asset_id(), kAssetId);
  EXPECT_EQ(event.tenant_id(), kTenantId);
  EXPECT_EQ(event.monthly_rent().amount_minor(), kRent);
  EXPECT_EQ(event.start_date(), "2025-01-15");
  EXPECT_EQ(event.end_date(), "2025-12-31");

  const State state = fold(drafted());
  EXPECT_EQ(state.status(), v1::DRAFT);
  EXPECT_EQ(state.payments_size(), 0);
}

TEST(LeaseDecider, DraftLeaseAcceptsALeapDay) {
  const auto decision =
      LeaseDecider::decide(draft_with_term("2024-02-29", "2025-02-28"), State{});

  EXPECT_TRUE(accepted(decision));
}

TEST(LeaseDecider, SigningADraftMakesTheLeaseBinding) {
  const auto decision = LeaseDecider::decide(sign(), fold(drafted()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].lease_signed();
  EXPECT_EQ(event.lease_id(), kLeaseId);
  EXPECT_EQ(event.asset_id(), kAssetId);
  EXPECT_EQ(event.tenant_id(), kTenantId);
  EXPECT_EQ(event.monthly_rent().amount_minor(), kRent);
  EXPECT_EQ(fold(signed_lease()).status(), v1::SIGNED);
}

TEST(LeaseDecider, RentPaymentIsRecordedForAMonthOfTheTerm) {
  const auto decision = LeaseDecider::decide(pay("2025-03"), fold(signed_lease()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].rent_payment_recorded();
  EXPECT_EQ(event.period(), "2025-03");
  EXPECT_EQ(event.amount().amount_minor(), kRent);
  EXPECT_EQ(event.asset_id(), kAssetId);
  EXPECT_EQ(event.tenant_id(), kTenantId);

  const State state = fold(march_paid());
  ASSERT_EQ(state.payments_size(), 1);
  EXPECT_EQ(state.payments(0).period(), "2025-03");
}

TEST(LeaseDecider, RentIsDueForTheFirstAndLastMonthsEvenWhenPartlyCovered) {
  State state = fold(signed_lease());

  for (const char* period : {"2025-01", "2025-12"}) {
    const auto decision = LeaseDecider::decide(pay(period), state);
    ASSERT_TRUE(accepted(decision)) << period;
    state = LeaseDecider::evolve(std::move(state), (*decision)[0]);
  }

  EXPECT_EQ(state.payments_size(), 2);
}

TEST(LeaseDecider, TerminatingASignedLeaseEndsItWithDateAndReason) {
  const auto decision = LeaseDecider::decide(terminate("2025-06-30"), fold(march_paid()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].lease_terminated();
  EXPECT_EQ(event.date(), "2025-06-30");
  EXPECT_EQ(event.reason(), "tenant moved abroad");
  EXPECT_EQ(event.tenant_id(), kTenantId);

  const State state = fold(terminated());
  EXPECT_EQ(state.status(), v1::TERMINATED);
  EXPECT_EQ(state.termination_date(), "2025-06-30");
  EXPECT_EQ(state.termination_reason(), "tenant moved abroad");
}

TEST(LeaseDecider, TerminationMayFallOnTheFirstOrLastDayOfTheTerm) {
  for (const char* date : {"2025-01-15", "2025-12-31"}) {
    EXPECT_TRUE(accepted(LeaseDecider::decide(terminate(date), fold(signed_lease())))) << date;
  }
}

TEST(LeaseDecider, AggregateIdIsTheLeaseIdOfWhicheverCommandIsSet) {
  const std::vector<Command> commands = {draft(), sign(), pay("2025-03"),
                                         terminate("2025-06-30")};

  for (const Command& command : commands) {
    EXPECT_EQ(LeaseDecider::aggregate_id(command), kLeaseId) << command.ShortDebugString();
  }
  const Command shouted = edited(sign(), [](Command& c) {
    c.mutable_sign_lease()->set_lease_id("7D9F2B1C-3E4A-4B5C-8D6E-9F0A1B2C3D4E");
  });
  EXPECT_EQ(LeaseDecider::aggregate_id(shouted), kLeaseId) << "one lease, one stream";
  EXPECT_EQ(LeaseDecider::aggregate_id(Command{}), "");
  EXPECT_EQ(LeaseDecider::category(), "lease");
}

TEST(LeaseDecider, AssignAggregateIdFillsTheIdOfWhicheverCommandIsSet) {
  std::vector<Command> commands = {draft(), sign(), pay("2025-03"), terminate("2025-06-30")};
  const std::string assigned = "0a8b43c5-5d71-4f0e-9d2a-7c1b6e3f4a59";

  for (Command& command : commands) {
    LeaseDecider::assign_aggregate_id(command, assigned);
    EXPECT_EQ(LeaseDecider::aggregate_id(command), assigned) << command.ShortDebugString();
  }
}

TEST(LeaseDecider, OnlyDraftLeaseCreatesTheAggregate) {
  EXPECT_TRUE(LeaseDecider::creates_aggregate(draft()));
  EXPECT_FALSE(LeaseDecider::creates_aggregate(sign()));
  EXPECT_FALSE(LeaseDecider::creates_aggregate(pay("2025-03")));
  EXPECT_FALSE(LeaseDecider::creates_aggregate(Command{}));
}

TEST(LeaseDecider, EvolveRefusesAnEventWithNoAlternativeSet) {
  EXPECT_THROW(LeaseDecider::evolve(fold(drafted()), Event{}), std::logic_error);
}

// ---- Every rejection code ----------------------------------------------------------------

struct RejectionCase {
  std::string name;                 // the situation, as a test name
  std::vector<Command> history;     // accepted before `command`
  Command command;
  std::string code;
  std::string mention;              // a value the reason must name
};

std::vector<RejectionCase> rejection_cases() {
  return {
      {"CommandNamingNoOperation", {}, Command{}, "missing_command", "no operation"},
      {"DraftWithoutLeaseId", {},
       edited(draft(), [](Command& c) { c.mutable_draft_lease()->clear_lease_id(); }),
       "missing_id", "lease_id"},
      {"DraftWithoutTenant", {},
       edited(draft(), [](Command& c) { c.mutable_draft_lease()->clear_tenant_id(); }),
       "missing_id", "tenant_id"},
      {"DraftForMalformedAssetId", {},
       edited(draft(), [](Command& c) { c.mutable_draft_lease()->set_asset_id("asset-9"); }),
       "invalid_id", "asset-9"},
      {"DraftWithoutRent", {},
       edited(draft(), [](Command& c) { c.mutable_draft_lease()->clear_monthly_rent(); }),
       "non_positive_amount", "monthly_rent"},
      {"PayNegativeAmount", signed_lease(), pay("2025-03", money(-100)), "non_positive_amount",
       "-100"},
      {"DraftWithRentInCurrencyName", {},
       edited(draft(),
              [](Command& c) {
                c.mutable_draft_lease()->mutable_monthly_rent()->set_currency("Euro");
              }),
       "invalid_currency", "Euro"},
      {"DraftWithUnpaddedStartDate", {}, draft_with_term("2025-1-15", "2025-12-31"),
       "invalid_date", "start_date"},
      {"DraftWithLeapDayInCommonYear", {}, draft_with_term("2023-02-29", "2025-12-31"),
       "invalid_date", "2023-02-29"},
      {"DraftEndingInMonthThirteen", {}, draft_with_term("2025-01-15", "2025-13-01"),
       "invalid_date", "end_date"},
      {"TerminateOnAWord", signed_lease(), terminate("tomorrow"), "invalid_date", "tomorrow"},
      {"DraftEndingOnItsStartDate", {}, draft_with_term("2025-01-15", "2025-01-15"),
       "lease_end_not_after_start", "2025-01-15"},
      {"DraftEndingBeforeItStarts", {}, draft_with_term("2025-01-15", "2024-12-31"),
       "lease_end_not_after_start", "2024-12-31"},
      {"PayForMonthThirteen", signed_lease(), pay("2025-13"), "invalid_period", "2025-13"},
      {"PayForUnpaddedMonth", signed_lease(), pay("2025-3"), "invalid_period", "2025-3"},
      {"PayForADayInsteadOfAMonth", signed_lease(), pay("2025-03-01"), "invalid_period",
       "2025-03-01"},
      {"TerminateWithoutReason", signed_lease(), terminate("2025-06-30", ""), "missing_reason",
       "reason"},
      {"TerminateWithOverlongReason", signed_lease(),
       terminate("2025-06-30", std::string(1001, 'r')), "text_too_long", "1001"},
      {"TerminateWithANulInTheReason", signed_lease(),
       terminate("2025-06-30", std::string("moved\0out", 9)), "control_character", "byte 5"},
      {"DraftTwice", drafted(), draft(), "lease_already_drafted", kLeaseId},
      {"SignUndraftedLease", {}, sign(), "lease_not_found", kLeaseId},
      {"PayOnUndraftedLease", {}, pay("2025-03"), "lease_not_found", kLeaseId},
      {"SignTerminatedLease", terminated(), sign(), "lease_terminated", "2025-06-30"},
      {"PayOnTerminatedLease", terminated(), pay("2025-03"), "lease_terminated", kLeaseId},
      {"TerminateTwice", terminated(), terminate("2025-07-31"), "lease_terminated",
       "2025-06-30"},
      {"SignTwice", signed_lease(), sign(), "lease_already_signed", kLeaseId},
      {"PayOnDraftLease", drafted(), pay("2025-03"), "lease_not_signed", "DRAFT"},
      {"TerminateDraftLease", drafted(), terminate("2025-06-30"), "lease_not_signed", kLeaseId},
      {"PaySameMonthTwice", march_paid(), pay("2025-03"), "rent_already_paid", "2025-03"},
      {"PayForMonthBeforeTheTerm", signed_lease(), pay("2024-12"), "period_outside_lease",
       "2025-01-15 to 2025-12-31"},
      {"PayForMonthAfterTheTerm", signed_lease(), pay("2026-01"), "period_outside_lease",
       "2026-01"},
      {"PayInAnotherCurrency", signed_lease(), pay("2025-03", money(kRent, "USD")),
       "currency_mismatch", "USD"},
      {"PayPartOfTheRent", signed_lease(), pay("2025-03", money(kRent - 1)),
       "rent_amount_mismatch", "184999 EUR"},
      {"PayMoreThanTheRent", signed_lease(), pay("2025-03", money(kRent * 2)),
       "rent_amount_mismatch", "185000 EUR"},
      {"TerminateBeforeTheTermStarts", signed_lease(), terminate("2025-01-14"),
       "termination_outside_lease", "2025-01-14"},
      {"TerminateAfterTheTermEnds", signed_lease(), terminate("2026-01-01"),
       "termination_outside_lease", "2025-12-31"},
  };
}

class LeaseRejection : public ::testing::TestWithParam<RejectionCase> {};

TEST_P(LeaseRejection, NamesTheBrokenRuleByItsCode) {
  const RejectionCase& rule = GetParam();
  const State state = fold(rule.history);

  const auto decision = LeaseDecider::decide(rule.command, state);

  EXPECT_TRUE(rejected_with(decision, rule.code, rule.mention))
      << rule.command.ShortDebugString();
}

INSTANTIATE_TEST_SUITE_P(LeaseRules, LeaseRejection, ::testing::ValuesIn(rejection_cases()),
                         [](const auto& info) { return info.param.name; });

// ---- Randomised sequences ----------------------------------------------------------------

const std::vector<std::string> kValidationCodes = {
    "missing_command", "missing_id",         "invalid_id",     "non_positive_amount",
    "invalid_currency", "invalid_date",      "invalid_period", "lease_end_not_after_start",
    "missing_reason",   "text_too_long",     "control_character"};

bool is_validation_code(const std::string& code) {
  return std::find(kValidationCodes.begin(), kValidationCodes.end(), code) !=
         kValidationCodes.end();
}

std::string two_digits(std::size_t value) {
  return (value < 10 ? "0" : "") + std::to_string(value);
}

// Random commands against one lease, with terms, periods and dates spread over 2024 to 2026
// so that both sides of every boundary come up; about one in five has a malformed field.
class CommandSource {
 public:
  explicit CommandSource(std::uint64_t seed) : random_(seed) {}

  struct Draw {
    Command command;
    bool well_formed;
  };

  // `state` only steers periods and dates towards the edges of its term, where off-by-one
  // mistakes live; the draw is valid or malformed regardless of it.
  Draw next(const State& state) {
    Draw draw{command_of_kind(pick(4)), true};
    if (!state.start_date().empty() && pick(3) == 0) aim_at_term_edge(draw.command, state);
    if (pick(5) == 0) {
      malform(draw.command);
      draw.well_formed = false;
    }
    return draw;
  }

 private:
  std::size_t pick(std::size_t n) { return random_() % n; }

  std::string period() { return std::to_string(2024 + pick(3)) + "-" + two_digits(1 + pick(12)); }

  std::string date() { return period() + "-" + two_digits(1 + pick(28)); }

  Command command_of_kind(std::size_t kind) {
    switch (kind) {
      case 0: {
        // Terms start on the 15th (so the 14th is the day before) and end in a later year.
        const std::string start = "2024-" + two_digits(1 + pick(12)) + "-15";
        const std::string end = std::to_string(2025 + pick(2)) + "-" + two_digits(1 + pick(12)) +
                                "-" + two_digits(1 + pick(28));
        return edited(draft_with_term(start, end), [&](Command& c) {
          *c.mutable_draft_lease()->mutable_monthly_rent() = money(100 * (1 + pick(3)));
        });
      }
      case 1: return sign();
      case 2: {
        const std::int64_t amount = pick(4) == 0 ? 100 * (1 + pick(3)) : 100;
        return pay(period(), money(amount, pick(8) == 0 ? "USD" : "EUR"));
      }
      default: return terminate(date());
    }
  }

  void aim_at_term_edge(Command& command, const State& state) {
    const std::string day_before_start = state.start_date().substr(0, 8) + "14";
    const std::string edges[] = {state.start_date(), state.end_date(), day_before_start};
    const std::string& edge = edges[pick(3)];
    if (command.has_record_rent_payment()) {
      command.mutable_record_rent_payment()->set_period(edge.substr(0, 7));
    } else if (command.has_terminate_lease()) {
      command.mutable_terminate_lease()->set_date(edge);
    }
  }

  void malform(Command& command) {
    if (pick(2) == 0) {
      LeaseDecider::assign_aggregate_id(command, pick(2) == 0 ? "" : "lease-1");
      return;
    }
    switch (command.command_case()) {
      case Command::kDraftLease:
        command.mutable_draft_lease()->set_end_date(command.draft_lease().start_date());
        return;
      case Command::kRecordRentPayment:
        command.mutable_record_rent_payment()->set_period("2025-00");
        return;
      case Command::kTerminateLease:
        command.mutable_terminate_lease()->set_date("2025-02-30");
        return;
      default: command.Clear(); return;
    }
  }

  std::mt19937_64 random_;
};

bool paid(const State& state, const std::string& period) {
  return std::any_of(state.payments().begin(), state.payments().end(),
                     [&](const v1::RentPayment& p) { return p.period() == period; });
}

// An independent statement of when a well-formed command must be accepted. Fixed-width
// dates compare as text, which keeps the model apart from the decider's calendar code.
bool model_accepts(const Command& command, const State& state) {
  const auto status = state.status();
  if (command.has_draft_lease()) return status == v1::LEASE_STATUS_UNSPECIFIED;
  if (command.has_sign_lease()) return status == v1::DRAFT;
  if (status != v1::SIGNED) return false;

  const std::string first_month = state.start_date().substr(0, 7);
  const std::string last_month = state.end_date().substr(0, 7);
  if (command.has_record_rent_payment()) {
    const auto& payment = command.record_rent_payment();
    return payment.period() >= first_month && payment.period() <= last_month &&
           !paid(state, payment.period()) && payment.amount().currency() == "EUR" &&
           payment.amount().amount_minor() == state.monthly_rent().amount_minor();
  }
  const std::string& date = command.terminate_lease().date();
  return date >= state.start_date() && date <= state.end_date();
}

void expect_invariants(const State& before, const Event& event, const State& after) {
  EXPECT_EQ(after.lease_id(), kLeaseId);
  EXPECT_LT(after.start_date(), after.end_date());
  EXPECT_EQ(after.status() == v1::TERMINATED, !after.termination_date().empty());

  std::set<std::string> periods;
  for (const auto& payment : after.payments()) {
    EXPECT_TRUE(periods.insert(payment.period()).second) << "paid twice: " << payment.period();
    EXPECT_GE(payment.period(), after.start_date().substr(0, 7));
    EXPECT_LE(payment.period(), after.end_date().substr(0, 7));
    EXPECT_EQ(payment.amount().amount_minor(), after.monthly_rent().amount_minor());
    EXPECT_EQ(payment.amount().currency(), after.monthly_rent().currency());
  }

  if (event.has_rent_payment_recorded()) {
    EXPECT_EQ(before.status(), v1::SIGNED);
  }
  if (event.has_lease_terminated()) {
    EXPECT_EQ(before.status(), v1::SIGNED);
    EXPECT_GE(after.termination_date(), after.start_date());
    EXPECT_LE(after.termination_date(), after.end_date());
  }
}

TEST(LeaseDeciderProperty, RandomCommandSequencesKeepEveryInvariant) {
  const std::uint64_t seed = test_support::test_seed("LeaseDeciderProperty");
  SCOPED_TRACE("seed " + std::to_string(seed));
  CommandSource source(seed);

  for (int run = 0; run < 300 && !HasFailure(); ++run) {
    State state = LeaseDecider::initial_state();
    std::vector<Event> log;

    for (int step = 0; step < 40 && !HasFailure(); ++step) {
      const auto [command, well_formed] = source.next(state);
      SCOPED_TRACE("run " + std::to_string(run) + " step " + std::to_string(step) + ": " +
                   command.ShortDebugString() + " on " + state.ShortDebugString());

      const auto decision = LeaseDecider::decide(command, state);

      if (!well_formed) {
        ASSERT_FALSE(decision.has_value()) << "a malformed command was accepted";
        ASSERT_TRUE(is_validation_code(decision.error().code)) << decision.error().code;
        continue;
      }
      ASSERT_EQ(decision.has_value(), model_accepts(command, state))
          << (decision ? std::string("accepted") : decision.error().code);
      if (!decision) {
        ASSERT_FALSE(is_validation_code(decision.error().code)) << decision.error().reason;
        continue;
      }

      ASSERT_EQ(decision->size(), 1u);
      const Event& event = decision->front();
      State next = LeaseDecider::evolve(state, event);
      expect_invariants(state, event, next);
      state = std::move(next);
      log.push_back(event);
    }

    // The log alone, through its wire form, must rebuild the same state.
    State replayed = LeaseDecider::initial_state();
    for (const Event& event : log) {
      Event decoded;
      ASSERT_TRUE(decoded.ParseFromString(event.SerializeAsString()));
      replayed = LeaseDecider::evolve(std::move(replayed), decoded);
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(replayed, state))
        << "replayed " << replayed.ShortDebugString() << " vs " << state.ShortDebugString();
  }
}

}  // namespace
}  // namespace deedkit::realestate
