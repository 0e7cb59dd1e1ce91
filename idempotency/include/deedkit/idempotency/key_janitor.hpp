#pragma once

// KeyJanitor: purges expired idempotency keys in the background, so the table stays the size
// of one retention period without an operator's cron job.
//
// Every `interval` it runs purge_expired_idempotency_keys (bounded batches, SKIP LOCKED: no
// long locks, and no waiting on a key another transaction locks). Several services may each
// run one; their batches skip each other's locked rows. A failed round (database down) is
// logged and retried at the next interval.
//
// Thread-safety: start() and stop() from one thread; the purging runs on its own thread.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "deedkit/eventstore/connection_pool.hpp"

namespace deedkit {

// How long a completed key replays its response before it counts as new again.
inline constexpr std::chrono::seconds kDefaultIdempotencyRetention = std::chrono::hours(24);

struct KeyJanitorOptions {
  std::chrono::seconds retention = kDefaultIdempotencyRetention;
  std::chrono::milliseconds interval = std::chrono::minutes(5);
  int batch_size = 1000;
};

class KeyJanitor {
 public:
  KeyJanitor(ConnectionPool& pool, KeyJanitorOptions options);
  ~KeyJanitor();  // stops
  KeyJanitor(const KeyJanitor&) = delete;
  KeyJanitor& operator=(const KeyJanitor&) = delete;

  void start();  // the first round runs at once
  void stop();   // waits for a round in progress to end

  long long keys_purged() const;  // since start, for logs and tests

 private:
  void run(const std::stop_token& stop);

  ConnectionPool& pool_;
  const KeyJanitorOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  long long purged_ = 0;  // guarded by mutex_
  std::jthread thread_;
};

}  // namespace deedkit
