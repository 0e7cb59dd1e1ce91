#pragma once

// LeaseDecider: the rules of one lease of an asset to a tenant, as a deedkit::Decider over
// the messages of deedkit/realestate/v1/lease.proto. Stream: "lease-<lease_id>".
//
//   LeaseCommand{record_rent_payment: {lease_id, period: "2025-03", amount}}
//     on a SIGNED lease whose term covers March 2025 -> [RentPaymentRecorded]
//     on a DRAFT lease                                -> rejection "lease_not_signed"
//
// Only a SIGNED lease can be terminated: a draft binds nobody, so there is nothing to end.
// Rent is due per calendar month of the term, in full; each rule and its rejection code is
// listed in docs/domain.md. Every function is static, pure and thread-safe.

#include <string>
#include <string_view>

#include "deedkit/engine/decider.hpp"
#include "deedkit/realestate/v1/lease.pb.h"

namespace deedkit::realestate {

struct LeaseDecider {
  using Command = v1::LeaseCommand;
  using Event = v1::LeaseEvent;
  using State = v1::LeaseState;

  static std::string_view category() { return "lease"; }

  // Bump when the meaning of LeaseState changes, so cached snapshots are rebuilt.
  static int state_schema_version() { return 1; }

  // No lease: status LEASE_STATUS_UNSPECIFIED and every other field empty.
  static State initial_state();

  // The events that carry out `command` against `state`, or the rejection of the first
  // rule it breaks. Input is checked before state, so a malformed command is rejected the
  // same way whatever the lease's status. Events carry ids in lower-case canonical form.
  // REQUIRES: `state` is the fold of the stream named by aggregate_id(command).
  static Decision<Event> decide(const Command& command, const State& state);

  // Applies a recorded event. Trusts it: events are facts decide has already checked.
  // Throws std::logic_error for an event with no alternative set, which only a bug in the
  // caller can produce (the event codec never decodes one).
  static State evolve(State state, const Event& event);

  // The lease_id of whichever command is set, in lower-case canonical form when it is a
  // UUID, else as given. "" when the command leaves it empty (DraftLease asking for an
  // assigned id) or no command is set.
  static std::string aggregate_id(const Command& command);

  // Sets the lease_id of whichever command is set; does nothing when none is.
  static void assign_aggregate_id(Command& command, const std::string& id);

  // True for DraftLease only.
  static bool creates_aggregate(const Command& command);
};

static_assert(deedkit::Decider<LeaseDecider>);

}  // namespace deedkit::realestate
