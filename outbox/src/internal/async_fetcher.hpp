#pragma once

// Runs the relay's fetch of pending rows on a thread and a database connection of its own,
// so the loop goes on publishing and settling acknowledgements while PostgreSQL reads the
// next rows. One fetch at a time: its skip list was taken when it started, so a second one
// running beside it could return the same rows.
//
// Thread-safety: start() and take() from the relay's loop; the thread calls `done` when a
// fetch finished.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "deedkit/core/error.hpp"
#include "internal/relay_database.hpp"

namespace deedkit::internal {

class AsyncFetcher {
 public:
  struct Finished {
    std::vector<PartitionRoom> rooms;  // what was asked for
    OutboxPoll poll;                   // the poll the fetch followed
    std::int64_t settled = 0;          // CommitHorizon's bound at that poll
    Result<std::vector<OutboxRow>> rows;
  };

  AsyncFetcher(std::string database_uri, std::function<void()> done);
  ~AsyncFetcher();  // waits for a fetch under way, then stops the thread

  AsyncFetcher(const AsyncFetcher&) = delete;
  AsyncFetcher& operator=(const AsyncFetcher&) = delete;

  // True from start() until the finished fetch is taken.
  bool busy() const;

  // Starts a fetch; ignored while busy().
  void start(std::vector<PartitionRoom> rooms, std::vector<std::int64_t> skip,
             OutboxPoll poll, std::int64_t settled);

  // The finished fetch, once.
  std::optional<Finished> take();

 private:
  struct Request {
    std::vector<PartitionRoom> rooms;
    std::vector<std::int64_t> skip;
    OutboxPoll poll;
    std::int64_t settled = 0;
  };

  void run();

  RelayDatabase database_;
  std::function<void()> done_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Request> request_;    // guarded by mutex_
  std::optional<Finished> finished_;  // guarded by mutex_
  bool busy_ = false;                 // guarded by mutex_
  bool stopping_ = false;             // guarded by mutex_
  std::thread thread_;
};

}  // namespace deedkit::internal
