#pragma once

// A unit of work owns one database transaction on one pooled connection.
//
// It commits only when commit() is called and rolls back when it goes out of scope otherwise.
// Every store in deedkit (events, idempotency claims, outbox rows, stored responses) can write
// through the same UnitOfWork, which is how they commit together or not at all.
//
// An autocommit unit sends no BEGIN: each statement commits on its own, two round trips
// fewer per unit. It suits work whose only write is one atomic statement checked by an
// expected version (a command outside with_idempotency); a store that must write several
// statements together calls begin_transaction() first, which turns the rest of the unit
// into an ordinary transaction.
//
// After any operation on it returns an error, the transaction is in an unknown state: the
// caller must let it roll back (commit() refuses). Not thread-safe: one thread at a time.

#include <memory>
#include <string>
#include <string_view>

#include <pqxx/transaction>
#include <pqxx/transaction_base>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/connection_pool.hpp"

namespace deedkit {

class UnitOfWork {
 public:
  // Begins a READ COMMITTED transaction. Fails like ConnectionPool::acquire().
  [[nodiscard]] static Result<UnitOfWork> begin(ConnectionPool& pool);

  // A unit without a transaction (see above). Fails like ConnectionPool::acquire().
  [[nodiscard]] static Result<UnitOfWork> autocommit(ConnectionPool& pool);

  UnitOfWork(UnitOfWork&&) noexcept = default;
  UnitOfWork& operator=(UnitOfWork&&) noexcept = default;
  ~UnitOfWork();

  // The transaction, for stores that add their statements to it.
  pqxx::transaction_base& tx() { return *transaction_; }
  ConnectionLease& lease() { return lease_; }

  bool in_transaction() const { return !autocommit_; }
  // Makes the statements from here on one transaction, committed by commit(). What ran
  // before stays committed. A no-op in a transaction already. Fails like begin().
  [[nodiscard]] Result<void> begin_transaction();

  // Commits (in an autocommit unit there is nothing left to commit, unless it is poisoned).
  // Fails with kOutcomeUnknown when the connection broke while the commit was in flight
  // (the data may or may not be stored: never retry such a write blindly), with
  // kFailedPrecondition if an earlier step poisoned this unit, or as database_error() maps.
  [[nodiscard]] Result<void> commit();

  // Marks the transaction as unusable after an error; commit() will refuse, naming `reason`.
  void poison(std::string reason);
  bool poisoned() const { return !poison_reason_.empty(); }

  // Classifies the exception being handled (call inside a catch block), marks the
  // connection for discarding when it broke, poisons this unit, and returns the error.
  Error fail_with_current_exception(std::string_view context);

 private:
  UnitOfWork(ConnectionLease lease, bool autocommit);

  ConnectionLease lease_;
  bool autocommit_;
  std::unique_ptr<pqxx::transaction_base> transaction_;
  std::string poison_reason_;
};

// Maps the libpqxx exception currently being handled to deedkit's error model:
// broken connection -> kUnavailable; in-doubt commit -> kOutcomeUnknown; serialization
// failure or deadlock -> kAborted; unique violation -> kAlreadyExists; privilege -> 
// kPermissionDenied; data and check errors -> kInvalidArgument; anything else -> kInternal.
// `context` says what was being done ("append to asset-..."). Call only inside a catch block.
Error database_error(std::string_view context);

// True when the error means the connection itself is gone.
bool is_connection_error(const Error& error);

}  // namespace deedkit
