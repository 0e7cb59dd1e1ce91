#pragma once

// The contract an aggregate fulfils to run on deedkit: a decider.
//
//   decide(command, state) -> events, or a typed rejection
//   evolve(state, event)   -> the next state (pure: depends on nothing but its arguments)
//   initial_state()        -> the state before the first event
//
// Commands, events and state are Protobuf messages. A decider names one wrapper message for
// its commands and one for its events, each holding exactly one `oneof`: the wrapper's
// alternatives are the concrete command or event messages. Events are stored under the full
// name of the concrete message (e.g. "deedkit.realestate.v1.AssetRegistered"), so the log
// reads the same to any tool, and EventCodec maps them back through Protobuf reflection.
//
// A decider knows nothing of storage: no SQL, no I/O, no clock (the time it needs arrives in
// the command). That keeps decide and evolve testable as plain functions.

#include <concepts>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace deedkit {

// A business rule said no. Not an error: it is an ordinary outcome of decide.
struct Rejection {
  std::string code;    // stable, snake_case, documented (e.g. "asset_already_listed")
  std::string reason;  // one sentence a person can read, naming the values involved

  friend bool operator==(const Rejection&, const Rejection&) = default;
};

template <typename Event>
using Decision = std::expected<std::vector<Event>, Rejection>;

template <typename Event>
std::unexpected<Rejection> reject(std::string code, std::string reason) {
  return std::unexpected<Rejection>(Rejection{std::move(code), std::move(reason)});
}

// D must provide:
//   using Command = <Protobuf wrapper with one oneof of command messages>;
//   using Event   = <Protobuf wrapper with one oneof of event messages>;
//   using State   = <Protobuf message>;
//   static std::string_view category();          // stream ids are "<category>-<id>"
//   static int state_schema_version();          // bump when State's meaning changes
//   static State initial_state();
//   static Decision<Event> decide(const Command&, const State&);
//   static State evolve(State, const Event&);
//   static std::string aggregate_id(const Command&);   // "" when the engine must assign one
//   static void assign_aggregate_id(Command&, const std::string& id);
//   static bool creates_aggregate(const Command&);     // true for the stream's first command
template <typename D>
concept Decider = requires(const typename D::Command& command,
                           typename D::Command& mutable_command,
                           const typename D::State& state, typename D::State state_value,
                           const typename D::Event& event) {
  { D::category() } -> std::convertible_to<std::string_view>;
  { D::state_schema_version() } -> std::convertible_to<int>;
  { D::initial_state() } -> std::same_as<typename D::State>;
  { D::decide(command, state) } -> std::same_as<Decision<typename D::Event>>;
  { D::evolve(std::move(state_value), event) } -> std::same_as<typename D::State>;
  { D::aggregate_id(command) } -> std::convertible_to<std::string>;
  { D::assign_aggregate_id(mutable_command, std::string()) };
  { D::creates_aggregate(command) } -> std::convertible_to<bool>;
};

}  // namespace deedkit
