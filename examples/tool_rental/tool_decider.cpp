#include "tool_decider.hpp"

#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include <deedkit/core/ids.hpp>

namespace toolrental {

namespace {

using deedkit::reject;
using Decided = deedkit::Decision<ToolDecider::Event>;

constexpr int kMaxRentalDays = 365;

Decided just(ToolDecider::Event event) {
  std::vector<ToolDecider::Event> events;
  events.push_back(std::move(event));
  return events;
}

bool is_currency_code(const std::string& code) {
  if (code.size() != 3) return false;
  for (char c : code) {
    if (c < 'A' || c > 'Z') return false;
  }
  return true;
}

Decided decide_register(const v1::RegisterTool& command, const ToolDecider::State& state) {
  if (!state.tool_id().empty()) {
    return reject<ToolDecider::Event>("tool_already_registered",
                                      "tool " + state.tool_id() + " is already registered");
  }
  if (command.name().empty()) {
    return reject<ToolDecider::Event>("invalid_name", "a tool needs a name");
  }
  if (command.daily_rate_minor() <= 0 || !is_currency_code(command.currency())) {
    return reject<ToolDecider::Event>(
        "invalid_rate", "daily rate " + std::to_string(command.daily_rate_minor()) + " " +
                            command.currency() + " is not a positive amount in an ISO 4217 code");
  }

  ToolDecider::Event event;
  auto& registered = *event.mutable_registered();
  registered.set_tool_id(command.tool_id());
  registered.set_name(command.name());
  registered.set_daily_rate_minor(command.daily_rate_minor());
  registered.set_currency(command.currency());
  return just(std::move(event));
}

Decided decide_rent(const v1::RentTool& command, const ToolDecider::State& state) {
  if (state.tool_id().empty()) {
    return reject<ToolDecider::Event>("tool_not_found",
                                      "tool " + command.tool_id() + " is not registered");
  }
  if (!state.renter_id().empty()) {
    return reject<ToolDecider::Event>(
        "tool_already_rented", "tool " + state.tool_id() + " is out with " + state.renter_id());
  }
  if (!deedkit::parse_uuid(command.renter_id())) {
    return reject<ToolDecider::Event>("invalid_renter_id",
                                      "renter_id '" + command.renter_id() + "' is not a UUID");
  }
  if (command.days() < 1 || command.days() > kMaxRentalDays) {
    return reject<ToolDecider::Event>(
        "invalid_days", "days " + std::to_string(command.days()) + " is not between 1 and 365");
  }

  // At most 365 days: the product stays far below int64 for any sane daily rate, and an
  // insane one is caught here rather than wrapping.
  const std::int64_t rate = state.daily_rate_minor();
  if (rate > INT64_MAX / kMaxRentalDays) {
    return reject<ToolDecider::Event>("invalid_rate", "daily rate is too large to charge");
  }

  ToolDecider::Event event;
  auto& rented = *event.mutable_rented();
  rented.set_tool_id(state.tool_id());
  rented.set_renter_id(command.renter_id());
  rented.set_days(command.days());
  rented.set_charge_minor(rate * command.days());
  return just(std::move(event));
}

Decided decide_return(const ToolDecider::State& state, const std::string& tool_id) {
  if (state.tool_id().empty()) {
    return reject<ToolDecider::Event>("tool_not_found", "tool " + tool_id + " is not registered");
  }
  if (state.renter_id().empty()) {
    return reject<ToolDecider::Event>("tool_not_rented",
                                      "tool " + state.tool_id() + " is on the shelf");
  }

  ToolDecider::Event event;
  auto& returned = *event.mutable_returned();
  returned.set_tool_id(state.tool_id());
  returned.set_renter_id(state.renter_id());
  return just(std::move(event));
}

}  // namespace

deedkit::Decision<ToolDecider::Event> ToolDecider::decide(const Command& command,
                                                         const State& state) {
  switch (command.command_case()) {
    case Command::kRegisterTool:
      return decide_register(command.register_tool(), state);
    case Command::kRentTool:
      return decide_rent(command.rent_tool(), state);
    case Command::kReturnTool:
      return decide_return(state, command.return_tool().tool_id());
    case Command::COMMAND_NOT_SET:
      break;
  }
  return reject<Event>("empty_command", "the command names no action");
}

ToolDecider::State ToolDecider::evolve(State state, const Event& event) {
  switch (event.event_case()) {
    case Event::kRegistered:
      state.set_tool_id(event.registered().tool_id());
      state.set_name(event.registered().name());
      state.set_daily_rate_minor(event.registered().daily_rate_minor());
      state.set_currency(event.registered().currency());
      return state;
    case Event::kRented:
      state.set_renter_id(event.rented().renter_id());
      state.set_rentals(state.rentals() + 1);
      state.set_charged_minor(state.charged_minor() + event.rented().charge_minor());
      return state;
    case Event::kReturned:
      state.clear_renter_id();
      return state;
    case Event::EVENT_NOT_SET:
      break;
  }
  throw std::logic_error("ToolDecider::evolve: event with no alternative set");
}

std::string ToolDecider::aggregate_id(const Command& command) {
  switch (command.command_case()) {
    case Command::kRegisterTool:
      return command.register_tool().tool_id();
    case Command::kRentTool:
      return command.rent_tool().tool_id();
    case Command::kReturnTool:
      return command.return_tool().tool_id();
    case Command::COMMAND_NOT_SET:
      break;
  }
  return "";
}

void ToolDecider::assign_aggregate_id(Command& command, const std::string& id) {
  switch (command.command_case()) {
    case Command::kRegisterTool:
      command.mutable_register_tool()->set_tool_id(id);
      return;
    case Command::kRentTool:
      command.mutable_rent_tool()->set_tool_id(id);
      return;
    case Command::kReturnTool:
      command.mutable_return_tool()->set_tool_id(id);
      return;
    case Command::COMMAND_NOT_SET:
      return;
  }
}

}  // namespace toolrental
