#pragma once

// Follows the global log from a checkpoint, batch by batch, in commit-safe order.
//
// The reader never skips an event: it only moves past positions whose transactions have all
// ended (docs/ordering.md). The price is that a long-running transaction anywhere in the
// cluster holds every reader back until it ends. That stall is never silent: once it lasts
// longer than `stall_warning_after`, the reader logs a warning naming the oldest running
// transaction's backend pid and age, and counts it; stalled_for() lets a status page show it.
//
// Lifecycle: construct with a checkpoint, call next_batch() repeatedly, persist
// batch.next (or position()) as the new checkpoint after handling a batch.
// Thread-safety: one thread at a time.

#include <chrono>
#include <cstdint>
#include <string>

#include "deedkit/core/error.hpp"
#include "deedkit/eventstore/event_store.hpp"

namespace deedkit {

struct GlobalLogReaderOptions {
  int batch_size = 500;
  std::string category;  // empty: every stream
  std::chrono::milliseconds stall_warning_after{5000};
};

class GlobalLogReader {
 public:
  GlobalLogReader(const EventStore& store, LogPosition checkpoint,
                  GlobalLogReaderOptions options = {});

  // Reads the next batch after the current position and advances past it. An empty batch
  // means "nothing more for now" (poll again later).
  [[nodiscard]] Result<GlobalLogBatch> next_batch();

  LogPosition position() const { return position_; }

  // How long the reader has been held back by an open transaction (zero when it is not).
  std::chrono::milliseconds stalled_for() const;
  // How many separate stalls passed stall_warning_after.
  std::uint64_t stalls_reported() const { return stalls_reported_; }

 private:
  void track_stall(bool held_back);

  const EventStore& store_;
  LogPosition position_;
  GlobalLogReaderOptions options_;
  std::chrono::steady_clock::time_point held_back_since_{};
  bool held_back_ = false;
  bool stall_reported_ = false;
  std::uint64_t stalls_reported_ = 0;
};

}  // namespace deedkit
