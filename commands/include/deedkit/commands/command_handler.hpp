#pragma once

// Runs commands against any Decider: load the aggregate (snapshot plus the events after it),
// decide, append what was decided with the version that was read as the expected version.
//
// On a concurrency conflict the handler reloads and decides again, up to max_attempts, then
// reports kConflict. A rejection appends nothing and is returned as part of the outcome (it
// is not an Error). Every appended event carries the command's correlation and causation ids
// and the principal; the store stamps the time.
//
// Thread-safety: a configured handler is safe to share between threads.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "deedkit/commands/snapshot_store.hpp"
#include "deedkit/core/error.hpp"
#include "deedkit/engine/decider.hpp"
#include "deedkit/engine/event_codec.hpp"
#include "deedkit/eventstore/event_store.hpp"

namespace deedkit {

struct CommandContext {
  Uuid command_id = new_uuid();         // becomes each event's causation id
  std::optional<Uuid> correlation_id;   // the request's; defaults to command_id
  std::string principal;
};

struct HandlerOptions {
  int max_attempts = 4;        // decide+append attempts before a conflict is reported
  int snapshot_every = 100;    // take a snapshot each time the version crosses a multiple; 0=off
  int load_batch_size = 500;   // rows fetched per round trip while folding a stream
  bool use_snapshots = true;   // false: always fold the whole stream (for checks and tests)
};

template <Decider D>
struct LoadedAggregate {
  typename D::State state = D::initial_state();
  std::int64_t version = 0;        // stream version the state includes
  std::int64_t snapshot_version = 0;  // 0 when no snapshot was used
  std::int64_t events_folded = 0;
};

template <Decider D>
struct CommandOutcome {
  std::string aggregate_id;
  std::string stream_id;
  std::optional<Rejection> rejection;  // set when decide said no; nothing was appended
  bool created = false;                // the command created the aggregate
  std::int64_t version = 0;            // the stream's version after the command
  std::int64_t version_read = 0;       // the version decide saw (appended after it)
  std::vector<NewEvent> appended;      // versions version-appended.size()+1 .. version
  typename D::State state = D::initial_state();
  int attempts = 0;
};

template <Decider D>
class CommandHandler {
 public:
  explicit CommandHandler(const EventStore& store, HandlerOptions options = {})
      : store_(store), options_(options) {}

  // Configure before sharing: schema versions and upcasters of the decider's events.
  EventCodec<typename D::Event>& codec() { return codec_; }
  const EventCodec<typename D::Event>& codec() const { return codec_; }
  const HandlerOptions& options() const { return options_; }

  static std::string stream_for(const std::string& aggregate_id) {
    return std::string(D::category()) + "-" + aggregate_id;
  }

  // Rebuilds the aggregate's state. An unknown stream gives the initial state at version 0.
  // Fails with kDataLoss naming the stream, version and type of an event that cannot be
  // decoded, or with the store's errors.
  [[nodiscard]] Result<LoadedAggregate<D>> load(UnitOfWork& unit,
                                                const std::string& stream_id) const;

  // Handles one command inside the caller's unit, which the caller commits. Retries in the
  // same unit while a conflict left it clean; a conflict that poisoned the unit is returned
  // (kConflict) and the caller must retry with a fresh unit.
  [[nodiscard]] Result<CommandOutcome<D>> handle(UnitOfWork& unit, typename D::Command command,
                                                 const CommandContext& context) const;

  // Handles one command in transactions of its own, retrying conflicts with fresh ones.
  [[nodiscard]] Result<CommandOutcome<D>> handle(typename D::Command command,
                                                 const CommandContext& context) const;

  // Loads and decides, and writes nothing: `appended` holds the events that would follow
  // `version_read`, `version` and `state` what the stream would then be. For callers that
  // write the events themselves (with_idempotency_in_one_statement); a conflict means
  // planning again.
  [[nodiscard]] Result<CommandOutcome<D>> plan(UnitOfWork& unit, typename D::Command command,
                                               const CommandContext& context) const;

  // Saves a snapshot when the outcome's events took the version past a multiple of
  // snapshot_every. handle() does this itself; a caller of plan() does it after writing.
  [[nodiscard]] Result<void> save_snapshot_if_due(UnitOfWork& unit,
                                                  const CommandOutcome<D>& outcome) const;

 private:
  Result<std::vector<NewEvent>> encode(const std::vector<typename D::Event>& events,
                                       const CommandContext& context) const;
  // Names the command's aggregate, giving it a new id when the command leaves that to us.
  CommandOutcome<D> start(typename D::Command& command) const;
  // Decides on `loaded` and fills the outcome: a rejection, or the encoded events and the
  // state after them.
  Result<void> decide_on(LoadedAggregate<D> loaded, const typename D::Command& command,
                         const CommandContext& context, CommandOutcome<D>& outcome) const;

  const EventStore& store_;
  HandlerOptions options_;
  EventCodec<typename D::Event> codec_;
  SnapshotStore snapshots_;
};

}  // namespace deedkit

#include "deedkit/commands/internal/command_handler_impl.hpp"
