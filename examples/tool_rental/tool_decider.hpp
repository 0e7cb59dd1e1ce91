#pragma once

// ToolDecider: one rentable tool, as a deedkit::Decider over the messages of
// tool_rental.proto. Stream: "tool-<tool_id>".
//
//   ToolCommand{rent_tool: {tool_id, renter_id, days: 3}} on a tool on the shelf
//     -> [ToolRented{charge_minor: 3 × daily rate}]
//   the same command while it is out -> rejection "tool_already_rented"
//
// Nothing here knows PostgreSQL: the engine stores, loads and retries.

#include <string>
#include <string_view>

#include <deedkit/engine/decider.hpp>

#include "tool_rental.pb.h"

namespace toolrental {

struct ToolDecider {
  using Command = v1::ToolCommand;
  using Event = v1::ToolEvent;
  using State = v1::ToolState;

  static std::string_view category() { return "tool"; }
  static int state_schema_version() { return 1; }
  static State initial_state() { return State(); }

  static deedkit::Decision<Event> decide(const Command& command, const State& state);
  static State evolve(State state, const Event& event);

  static std::string aggregate_id(const Command& command);
  static void assign_aggregate_id(Command& command, const std::string& id);
  static bool creates_aggregate(const Command& command) { return command.has_register_tool(); }
};

static_assert(deedkit::Decider<ToolDecider>);

}  // namespace toolrental
