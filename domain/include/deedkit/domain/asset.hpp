#pragma once

// AssetDecider: the rules of one piece of real estate, as a deedkit::Decider over the
// messages of deedkit/realestate/v1/asset.proto. Stream: "asset-<asset_id>".
//
//   AssetCommand{register_asset: {kind: HOUSE, name: "Canal house", ...}}
//     on the initial state -> [AssetRegistered]
//   AssetCommand{complete_sale: {asset_id}}
//     on a REGISTERED asset -> rejection "sale_without_accepted_offer"
//
// Every function is static, pure and thread-safe. Each rule and its rejection code is
// listed in docs/domain.md.

#include <string>
#include <string_view>

#include "deedkit/engine/decider.hpp"
#include "deedkit/realestate/v1/asset.pb.h"

namespace deedkit::realestate {

struct AssetDecider {
  using Command = v1::AssetCommand;
  using Event = v1::AssetEvent;
  using State = v1::AssetState;

  static std::string_view category() { return "asset"; }

  // Bump when the meaning of AssetState changes, so cached snapshots are rebuilt.
  static int state_schema_version() { return 1; }

  // No asset: status STATUS_UNSPECIFIED and every other field empty.
  static State initial_state();

  // The events that carry out `command` against `state`, or the rejection of the first
  // rule it breaks. Input is checked before state, so a malformed command is rejected the
  // same way whatever the asset's status. Events carry ids in lower-case canonical form.
  // REQUIRES: `state` is the fold of the stream named by aggregate_id(command).
  static Decision<Event> decide(const Command& command, const State& state);

  // Applies a recorded event. Trusts it: events are facts decide has already checked.
  // Throws std::logic_error for an event with no alternative set, which only a bug in the
  // caller can produce (the event codec never decodes one).
  static State evolve(State state, const Event& event);

  // The asset_id of whichever command is set, in lower-case canonical form when it is a
  // UUID (so "ABC..." and "abc..." name one stream), else as given. "" when the command
  // leaves it empty (RegisterAsset asking for an assigned id) or no command is set.
  static std::string aggregate_id(const Command& command);

  // Sets the asset_id of whichever command is set; does nothing when none is.
  static void assign_aggregate_id(Command& command, const std::string& id);

  // True for RegisterAsset only.
  static bool creates_aggregate(const Command& command);
};

static_assert(deedkit::Decider<AssetDecider>);

}  // namespace deedkit::realestate
