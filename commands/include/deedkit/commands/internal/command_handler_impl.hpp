#pragma once

// Template definitions of CommandHandler; included by command_handler.hpp only.

namespace deedkit {

template <Decider D>
Result<LoadedAggregate<D>> CommandHandler<D>::load(UnitOfWork& unit,
                                                   const std::string& stream_id) const {
  LoadedAggregate<D> loaded;
  typename D::Event event;
  const auto fold = [&](const RecordedEvent& recorded) -> Result<void> {
    const StoredEventRef where{recorded.stream_id, recorded.stream_version};
    auto decoded = codec_.EventTypeRegistry::decode(where, recorded.event_type,
                                                    recorded.schema_version, recorded.payload,
                                                    event);
    if (!decoded) return decoded;
    loaded.state = D::evolve(std::move(loaded.state), event);
    loaded.version = recorded.stream_version;
    ++loaded.events_folded;
    return {};
  };

  if (options_.use_snapshots && options_.snapshot_every > 0) {
    // The snapshot and the first batch after it come in one round trip.
    auto first = store_.read_stream_after_snapshot(unit, stream_id, D::state_schema_version(),
                                                   options_.load_batch_size);
    if (!first) return std::unexpected(first.error());
    // An unreadable snapshot is ignored: the events alone are the truth, read from the start.
    const bool usable = first->snapshot_version &&
                        loaded.state.ParseFromString(first->snapshot_state);
    if (first->snapshot_version && !usable) {
      loaded.state = D::initial_state();
    } else {
      if (usable) {
        loaded.version = *first->snapshot_version;
        loaded.snapshot_version = loaded.version;
      }
      for (const RecordedEvent& recorded : first->events) {
        if (auto folded = fold(recorded); !folded) return std::unexpected(folded.error());
      }
      if (static_cast<int>(first->events.size()) < options_.load_batch_size) return loaded;
    }
  }

  auto folded = store_.fold_stream(unit, stream_id, loaded.version + 1,
                                   options_.load_batch_size, fold);
  if (!folded) return std::unexpected(folded.error());
  return loaded;
}

template <Decider D>
Result<std::vector<NewEvent>> CommandHandler<D>::encode(
    const std::vector<typename D::Event>& events, const CommandContext& context) const {
  std::vector<NewEvent> encoded_events;
  encoded_events.reserve(events.size());
  for (const auto& event : events) {
    auto encoded = codec_.encode(event);
    if (!encoded) return std::unexpected(encoded.error());

    NewEvent stored;
    stored.event_id = new_uuid();
    stored.event_type = std::move(encoded->event_type);
    stored.schema_version = encoded->schema_version;
    stored.payload = std::move(encoded->payload);
    stored.metadata.correlation_id = context.correlation_id.value_or(context.command_id);
    stored.metadata.causation_id = context.command_id;
    stored.metadata.principal = context.principal;
    encoded_events.push_back(std::move(stored));
  }
  return encoded_events;
}

template <Decider D>
Result<void> CommandHandler<D>::save_snapshot_if_due(UnitOfWork& unit,
                                                     const CommandOutcome<D>& outcome) const {
  const int every = options_.snapshot_every;
  if (every <= 0 || outcome.rejection || outcome.version / every == outcome.version_read / every) {
    return {};
  }

  const Snapshot snapshot{outcome.version, deterministic_bytes(outcome.state)};
  return snapshots_.save(unit, outcome.stream_id, std::string(D::State::descriptor()->full_name()),
                         D::state_schema_version(), snapshot);
}

template <Decider D>
CommandOutcome<D> CommandHandler<D>::start(typename D::Command& command) const {
  CommandOutcome<D> outcome;
  outcome.aggregate_id = D::aggregate_id(command);
  if (outcome.aggregate_id.empty()) {
    outcome.aggregate_id = to_string(new_uuid());
    D::assign_aggregate_id(command, outcome.aggregate_id);
  }
  outcome.stream_id = stream_for(outcome.aggregate_id);
  outcome.created = D::creates_aggregate(command);
  return outcome;
}

template <Decider D>
Result<void> CommandHandler<D>::decide_on(LoadedAggregate<D> loaded,
                                          const typename D::Command& command,
                                          const CommandContext& context,
                                          CommandOutcome<D>& outcome) const {
  outcome.version_read = loaded.version;
  outcome.version = loaded.version;
  outcome.appended.clear();

  auto decision = D::decide(command, loaded.state);
  if (!decision) {
    outcome.rejection = std::move(decision.error());
    outcome.state = std::move(loaded.state);
    return {};
  }

  auto events = encode(*decision, context);
  if (!events) return std::unexpected(events.error());
  outcome.state = std::move(loaded.state);
  for (const auto& event : *decision) outcome.state = D::evolve(std::move(outcome.state), event);
  outcome.version += static_cast<std::int64_t>(events->size());
  outcome.appended = std::move(*events);
  return {};
}

template <Decider D>
Result<CommandOutcome<D>> CommandHandler<D>::plan(UnitOfWork& unit, typename D::Command command,
                                                  const CommandContext& context) const {
  // A stream named by a UUID generated here cannot exist yet: no need to load it.
  const bool fresh_stream = D::aggregate_id(command).empty();
  CommandOutcome<D> outcome = start(command);
  outcome.attempts = 1;

  auto loaded = fresh_stream ? Result<LoadedAggregate<D>>(LoadedAggregate<D>{})
                             : load(unit, outcome.stream_id);
  if (!loaded) return std::unexpected(loaded.error());
  if (auto decided = decide_on(std::move(*loaded), command, context, outcome); !decided) {
    return std::unexpected(decided.error());
  }
  return outcome;
}

template <Decider D>
Result<CommandOutcome<D>> CommandHandler<D>::handle(UnitOfWork& unit,
                                                    typename D::Command command,
                                                    const CommandContext& context) const {
  // A stream named by a UUID generated here cannot exist yet: loading it would only cost
  // two round trips to learn that.
  const bool fresh_stream = D::aggregate_id(command).empty();
  CommandOutcome<D> outcome = start(command);

  for (outcome.attempts = 1;; ++outcome.attempts) {
    auto loaded = fresh_stream && outcome.attempts == 1
                      ? Result<LoadedAggregate<D>>(LoadedAggregate<D>{})
                      : load(unit, outcome.stream_id);
    if (!loaded) return std::unexpected(loaded.error());
    if (auto decided = decide_on(std::move(*loaded), command, context, outcome); !decided) {
      return std::unexpected(decided.error());
    }
    if (outcome.rejection) return outcome;

    const auto expected = outcome.version_read == 0
                              ? ExpectedVersion::no_stream()
                              : ExpectedVersion::exact(outcome.version_read);
    auto appended = store_.append(unit, outcome.stream_id, expected, outcome.appended);
    if (appended) {
      outcome.version = appended->last_version;
      if (auto saved = save_snapshot_if_due(unit, outcome); !saved) {
        return std::unexpected(saved.error());
      }
      return outcome;
    }

    const bool can_retry_here = appended.error().code == ErrorCode::kConflict &&
                                !unit.poisoned() && outcome.attempts < options_.max_attempts;
    if (!can_retry_here) {
      if (appended.error().code == ErrorCode::kConflict) {
        appended.error().message += " (after " + std::to_string(outcome.attempts) +
                                    " attempts)";
      }
      return std::unexpected(appended.error());
    }
  }
}

template <Decider D>
Result<CommandOutcome<D>> CommandHandler<D>::handle(typename D::Command command,
                                                    const CommandContext& context) const {
  // No transaction: the load reads committed events, and the append is one statement that
  // checks the version the load saw, so a writer in between is caught as a conflict. That
  // saves BEGIN and COMMIT, two of a command's four round trips. (An append too large for
  // one statement turns the unit into a transaction by itself.)
  // A command that leaves its id to the engine gets a new one in each attempt; only an
  // attempt that commits is ever seen, so the id stays stable for the caller.
  for (int attempt = 1;; ++attempt) {
    auto unit = UnitOfWork::autocommit(store_.pool());
    if (!unit) return std::unexpected(unit.error());

    auto outcome = handle(*unit, command, context);
    const bool retry = !outcome && outcome.error().code == ErrorCode::kConflict &&
                       unit->poisoned() && attempt < options_.max_attempts;
    if (retry) continue;
    if (!outcome || outcome->rejection) return outcome;

    if (auto committed = unit->commit(); !committed) return std::unexpected(committed.error());
    return outcome;
  }
}

}  // namespace deedkit
