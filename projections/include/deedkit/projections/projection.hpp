#pragma once

// The contract a read model fulfils to be run by deedkit: a projection.
//
// A projection has a name, a version, the event types it handles, the tables it owns, the
// public views it offers over them, and an apply step that writes one batch of events to
// its tables. The runner (runner.hpp) does everything else: it reads the global log in
// commit-safe order, calls apply inside a transaction that also moves the projection's
// checkpoint, creates the tables, and swaps them atomically on a rebuild.
//
//   class Counter : public Projection {
//     std::string_view name() const override { return "counter"; }
//     int version() const override { return 1; }
//     ...
//     Result<void> apply(ApplyContext& context, EventBatch events) const override {
//       context.tx().exec_prepared(context.prepare("bump", "UPDATE {counter} SET n = n + $1"),
//                                  static_cast<std::int64_t>(events.size()));
//       return {};
//     }
//   };
//
// Tables are never created by hand. Each generation of a projection gets its own physical
// tables, named "<table>_g<generation>" in schema deedkit_read_data; SQL given to the
// projection refers to them by placeholder ("{asset_summary}"). Readers only ever see the
// views in schema deedkit_read, whose definitions the runner points at the live generation.
//
// Thread-safety: apply is const and may run on two threads at once (the live generation and
// a rebuilding one); implementations keep no mutable state outside the database.

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/transaction>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/types.hpp"

namespace deedkit {

// One table a projection owns. The runner creates it, with its indexes, for every
// generation, and drops it with the generation.
struct ProjectionTable {
  std::string name;                  // logical name, [a-z][a-z0-9_]*, at most 40 bytes
  std::string columns;               // the body of CREATE TABLE: "id uuid PRIMARY KEY, ..."
  // Read indexes, each the part after ON <table>: "(city) WHERE ...". They serve readers
  // only: a rebuild creates them once it has caught up, so apply must not depend on them
  // (keys it looks rows up by belong in `columns`, as PRIMARY KEY or UNIQUE).
  std::vector<std::string> indexes;
};

// One public read model: the view deedkit_read.<name>, defined by a SELECT over the
// projection's tables written with placeholders ("SELECT a, b FROM {asset_summary}").
// A view's name and columns are a contract: change them only with a new projection version,
// and document them in docs/projections.md.
struct ProjectionView {
  std::string name;
  std::string select;
};

// The physical names of one generation's tables.
class GenerationTables {
 public:
  GenerationTables(int generation, std::span<const ProjectionTable> tables);

  int generation() const { return generation_; }

  // "deedkit_read_data.<name>_g<generation>". REQUIRES: `name` is one of the tables the
  // generation was made with (a broken invariant otherwise: throws std::logic_error).
  const std::string& qualified(std::string_view name) const;

  // `sql` with every "{name}" of a known table replaced by its qualified name. Braces that do
  // not name a table (array literals, JSON) are left alone.
  std::string expand(std::string_view sql) const;

  // Every qualified name, in the order the tables were declared.
  std::vector<std::string> all() const;

 private:
  int generation_;
  std::vector<std::pair<std::string, std::string>> names_;  // logical -> qualified
};

// What apply works with: the batch's transaction and the generation's tables.
// Owned by the runner; valid only during the apply call it is passed to.
class ApplyContext {
 public:
  ApplyContext(pqxx::transaction_base& tx, ConnectionLease& lease, const GenerationTables& tables,
               std::string statement_prefix)
      : tx_(tx), lease_(lease), tables_(tables), statement_prefix_(std::move(statement_prefix)) {}

  pqxx::transaction_base& tx() { return tx_; }
  const GenerationTables& tables() const { return tables_; }

  // Prepares `sql` (placeholders expanded) on this connection the first time, and returns
  // the statement name to pass to exec_prepared. `key` names the statement within the
  // projection; the same key must always come with the same SQL.
  std::string prepare(std::string_view key, std::string_view sql);

 private:
  pqxx::transaction_base& tx_;
  ConnectionLease& lease_;
  const GenerationTables& tables_;
  std::string statement_prefix_;
};

// The events of one batch that the projection handles, in commit-safe order.
using EventBatch = std::span<const RecordedEvent* const>;

// What a projection worked out from a batch before touching the database (see
// Projection::prepare): decoded events, grouped rows, encoded parameters.
class PreparedBatch {
 public:
  virtual ~PreparedBatch() = default;
};

class Projection {
 public:
  virtual ~Projection() = default;

  // Stable identity: [a-z][a-z0-9_]*, at most 40 bytes. Checkpoints are kept under it.
  virtual std::string_view name() const = 0;

  // Bump when the tables' meaning or shape changes: the runner then rebuilds from the start
  // into new tables and switches the views when they have caught up.
  virtual int version() const = 0;

  // Full Protobuf names of the event types apply wants; others are passed over without
  // being decoded (the checkpoint still moves past them).
  virtual std::vector<std::string> event_types() const = 0;

  virtual std::vector<ProjectionTable> tables() const = 0;
  virtual std::vector<ProjectionView> views() const = 0;

  // Writes the effect of `events` to the generation's tables, through context.tx(), with as
  // few statements as the batch allows (one multi-row statement per table, not one per
  // event). The runner commits the writes together with the checkpoint, or not at all.
  // Returns an error for an event that cannot be applied (kDataLoss for one that does not
  // decode, kInvalidArgument or kFailedPrecondition for one that contradicts the tables);
  // may throw libpqxx exceptions, which the runner maps like database_error(). Either way
  // the runner rolls back, finds the failing event by applying one at a time, and stops the
  // projection there.
  virtual Result<void> apply(ApplyContext& context, EventBatch events) const = 0;

  // Optional: the part of apply that needs no database, split off so that it overlaps with
  // the database's work. While one batch is being written, the runner reads the next one on
  // another thread and calls prepare for it there; the writing thread then calls
  // apply_prepared with the result instead of apply. A rebuild whose client work (decoding,
  // grouping, encoding arrays) is a large share of apply runs that much faster.
  //
  // prepare must not use the database, and returns null (the default) to say there is
  // nothing to prepare; apply then runs as usual. Errors are those of apply, and are handled
  // the same way. A projection that prepares implements apply as prepare followed by
  // apply_prepared, so the two paths write the same rows. The events stay valid until
  // apply_prepared has run, but the span itself does not: a PreparedBatch may keep pointers
  // to events, never `events`. prepare runs on another thread than apply_prepared, so it
  // may read the projection's own state only where that is safe from any thread.
  virtual Result<std::unique_ptr<PreparedBatch>> prepare(EventBatch events) const;

  // Writes a batch prepared by prepare(events), for the same events, and may consume it
  // (move out of it): each prepared batch is applied at most once. Called only with a
  // non-null result of this projection's own prepare.
  virtual Result<void> apply_prepared(ApplyContext& context, EventBatch events,
                                      PreparedBatch& prepared) const;
};

}  // namespace deedkit
