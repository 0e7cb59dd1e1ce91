#pragma once

// A small bounded pool of PostgreSQL connections.
//
// Lifecycle: connections open lazily, up to `max_connections`. A lease hands one connection to
// one thread; dropping the lease returns it. A connection that saw a broken-connection error is
// discarded rather than returned, so after a server restart the next acquire opens a fresh one.
// Such a discard also makes every connection that was idle at that moment suspect: each is
// probed before it is handed out again, so a server restart costs one failed statement, not
// one per pooled connection. A connection that sat idle longer than `health_check_after` is
// probed as well.
//
// Thread-safety: ConnectionPool is safe to share between threads. A ConnectionLease is owned
// by one thread at a time.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "deedkit/core/error.hpp"

namespace deedkit {

struct PoolOptions {
  // A libpq connection URI or key=value string; empty means libpq's PG* environment variables.
  std::string database_uri;
  int max_connections = 8;
  // How long acquire() waits for a free connection before failing with kUnavailable.
  std::chrono::milliseconds acquire_timeout{5000};
  std::chrono::seconds health_check_after{30};
};

class ConnectionPool;

// One connection, checked out of the pool. Move-only.
class ConnectionLease {
 public:
  ConnectionLease(ConnectionLease&& other) noexcept;
  ConnectionLease& operator=(ConnectionLease&& other) noexcept;
  ConnectionLease(const ConnectionLease&) = delete;
  ConnectionLease& operator=(const ConnectionLease&) = delete;
  ~ConnectionLease();

  pqxx::connection& connection() { return *connection_; }

  // Prepares `name` on this connection the first time it is asked for. The SQL must be the
  // same every time for a given name (statements are keyed by name).
  void ensure_prepared(const std::string& name, const std::string& sql);
  // The same, for SQL that costs something to build: `make_sql` runs only the first time.
  void ensure_prepared_lazily(const std::string& name,
                              const std::function<std::string()>& make_sql);

  // Marks the connection as unusable: it is closed instead of being returned to the pool.
  void discard() { discard_ = true; }

 private:
  friend class ConnectionPool;
  struct Slot;
  ConnectionLease(ConnectionPool* pool, std::unique_ptr<Slot> slot);

  ConnectionPool* pool_;
  std::unique_ptr<Slot> slot_;
  pqxx::connection* connection_;
  bool discard_ = false;
};

class ConnectionPool {
 public:
  explicit ConnectionPool(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Returns a healthy connection, opening one if the pool is below its bound.
  // Fails with kUnavailable when the server cannot be reached (the message carries libpq's
  // reason, never the password) and also when all connections stay busy.
  [[nodiscard]] Result<ConnectionLease> acquire();

  const PoolOptions& options() const { return options_; }

  // Connections currently open (idle and leased).
  int open_connections() const;

 private:
  friend class ConnectionLease;
  void give_back(std::unique_ptr<ConnectionLease::Slot> slot, bool discard);

  const PoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<ConnectionLease::Slot>> idle_;  // guarded by mutex_
  int open_ = 0;                                              // guarded by mutex_
  // When a connection last broke; idle ones returned before then are probed. Guarded by
  // mutex_.
  std::chrono::steady_clock::time_point last_break_{};
};

// Removes the password from a connection URI so it can be logged or shown in an error.
std::string redact_database_uri(const std::string& uri);

}  // namespace deedkit
