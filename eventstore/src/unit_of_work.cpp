#include "deedkit/eventstore/unit_of_work.hpp"

#include <pqxx/except>
#include <pqxx/nontransaction>

namespace deedkit {

UnitOfWork::UnitOfWork(ConnectionLease lease, bool autocommit)
    : lease_(std::move(lease)), autocommit_(autocommit) {}

Result<UnitOfWork> UnitOfWork::begin(ConnectionPool& pool) {
  // BEGIN is the first thing sent, so when it finds the connection dead (the server restarted
  // while it sat in the pool) nothing has happened yet and a fresh connection may try again.
  // The pool probes the other idle connections after such a break, so one retry suffices.
  constexpr int kAttempts = 2;
  for (int attempt = 1;; ++attempt) {
    auto lease = pool.acquire();
    if (!lease) return std::unexpected(lease.error());

    UnitOfWork unit(std::move(*lease), false);
    try {
      unit.transaction_ = std::make_unique<pqxx::work>(unit.lease_.connection());
      return unit;
    } catch (const std::exception&) {
      Error error = unit.fail_with_current_exception("begin transaction");
      if (!is_connection_error(error) || attempt == kAttempts) return std::unexpected(error);
    }
  }
}

Result<UnitOfWork> UnitOfWork::autocommit(ConnectionPool& pool) {
  auto lease = pool.acquire();
  if (!lease) return std::unexpected(lease.error());

  UnitOfWork unit(std::move(*lease), true);
  try {
    unit.transaction_ = std::make_unique<pqxx::nontransaction>(unit.lease_.connection());
  } catch (const std::exception&) {
    return std::unexpected(unit.fail_with_current_exception("open connection"));
  }
  return unit;
}

Result<void> UnitOfWork::begin_transaction() {
  if (!autocommit_) return {};
  try {
    // libpqxx allows one transaction object per connection at a time.
    transaction_.reset();
    transaction_ = std::make_unique<pqxx::work>(lease_.connection());
    autocommit_ = false;
    return {};
  } catch (const std::exception&) {
    return std::unexpected(fail_with_current_exception("begin transaction"));
  }
}

UnitOfWork::~UnitOfWork() {
  // pqxx::work's destructor rolls back an open transaction and never throws.
  transaction_.reset();
}

void UnitOfWork::poison(std::string reason) {
  if (poison_reason_.empty()) poison_reason_ = std::move(reason);
}

Result<void> UnitOfWork::commit() {
  if (poisoned()) {
    return fail(ErrorCode::kFailedPrecondition,
                "refusing to commit a transaction after an error: " + poison_reason_);
  }
  if (autocommit_) return {};
  try {
    transaction_->commit();
    return {};
  } catch (const std::exception&) {
    return std::unexpected(fail_with_current_exception("commit"));
  }
}

Error UnitOfWork::fail_with_current_exception(std::string_view context) {
  Error error = database_error(context);
  if (is_connection_error(error) || error.code == ErrorCode::kOutcomeUnknown) lease_.discard();
  poison(error.message);
  return error;
}

Error database_error(std::string_view context) {
  const std::string prefix = std::string(context) + ": ";
  try {
    // REQUIRES (header): called inside a catch block, so there is an exception to rethrow.
    // cppcheck-suppress rethrowNoCurrentException
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    return {ErrorCode::kOutcomeUnknown, prefix + "connection lost during commit; " + e.what()};
  } catch (const pqxx::broken_connection& e) {
    return {ErrorCode::kUnavailable, prefix + "database connection lost: " + e.what()};
  } catch (const pqxx::transaction_rollback& e) {
    return {ErrorCode::kAborted, prefix + e.what()};
  } catch (const pqxx::unique_violation& e) {
    return {ErrorCode::kAlreadyExists, prefix + e.what()};
  } catch (const pqxx::insufficient_privilege& e) {
    return {ErrorCode::kPermissionDenied, prefix + e.what()};
  } catch (const pqxx::data_exception& e) {
    return {ErrorCode::kInvalidArgument, prefix + e.what()};
  } catch (const pqxx::check_violation& e) {
    return {ErrorCode::kInvalidArgument, prefix + e.what()};
  } catch (const pqxx::sql_error& e) {
    // Administrator shutdown (57P01, e.g. pg_terminate_backend) and crash recovery (57P03,
    // "the database system is starting up") mean the server went away: retry later.
    const std::string& state = e.sqlstate();
    // A lock wait that ran out (lock_timeout, which an idempotent command keeps set after
    // its claim) is a transient contention like a deadlock: roll back and retry.
    const bool lock_timeout =
        state == "55P03" || std::string_view(e.what()).find("lock timeout") != std::string::npos;
    if (lock_timeout) {
      return {ErrorCode::kAborted, prefix + "lock wait timed out: " + e.what()};
    }
    if (state.starts_with("57P") || state.starts_with("08")) {
      return {ErrorCode::kUnavailable, prefix + "database unavailable: " + e.what()};
    }
    return {ErrorCode::kInternal, prefix + "SQLSTATE " + state + ": " + e.what()};
  } catch (const std::exception& e) {
    return {ErrorCode::kInternal, prefix + e.what()};
  }
}

bool is_connection_error(const Error& error) { return error.code == ErrorCode::kUnavailable; }

}  // namespace deedkit
