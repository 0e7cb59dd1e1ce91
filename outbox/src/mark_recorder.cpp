#include "internal/mark_recorder.hpp"

#include "internal/relay_log.hpp"

namespace deedkit::internal {

namespace {

// One UPDATE records at most this many rows; more wait for the next.
constexpr std::size_t kMaxBatch = 2048;

bool retryable(const Error& error) {
  return error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kAborted ||
         error.code == ErrorCode::kDeadlineExceeded || error.code == ErrorCode::kOutcomeUnknown;
}

}  // namespace

MarkRecorder::MarkRecorder(std::string database_uri, Record how,
                           std::chrono::milliseconds backoff_initial,
                           std::chrono::milliseconds backoff_max,
                           std::function<void()> recorded)
    : database_(std::move(database_uri)),
      how_(how),
      backoff_(backoff_initial, backoff_max),
      recorded_callback_(std::move(recorded)),
      thread_([this] { run(); }) {}

MarkRecorder::~MarkRecorder() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void MarkRecorder::record(const std::vector<std::int64_t>& ids) {
  if (ids.empty()) return;
  {
    std::lock_guard lock(mutex_);
    queued_.insert(queued_.end(), ids.begin(), ids.end());
  }
  changed_.notify_all();
}

std::vector<std::int64_t> MarkRecorder::pending_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::int64_t> ids = queued_;
  ids.insert(ids.end(), recording_.begin(), recording_.end());
  return ids;
}

std::size_t MarkRecorder::pending_count() const {
  std::lock_guard lock(mutex_);
  return queued_.size() + recording_.size();
}

std::uint64_t MarkRecorder::take_recorded() {
  std::lock_guard lock(mutex_);
  const std::uint64_t recorded = recorded_;
  recorded_ = 0;
  return recorded;
}

std::optional<Error> MarkRecorder::fatal() const {
  std::lock_guard lock(mutex_);
  return fatal_;
}

bool MarkRecorder::wait_until_idle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline,
                      [&] { return fatal_ || (queued_.empty() && recording_.empty()); });
  return queued_.empty() && recording_.empty();
}

void MarkRecorder::run() {
  WarnLimiter warnings;
  std::unique_lock lock(mutex_);
  while (true) {
    const auto ready = [&] {
      return stopping_ || (!queued_.empty() && !fatal_ &&
                           backoff_.due(std::chrono::steady_clock::now()));
    };
    if (backoff_.failures() > 0 && !fatal_) {
      changed_.wait_until(lock, backoff_.retry_at(), ready);
    } else {
      changed_.wait(lock, ready);
    }
    if (stopping_) return;
    if (queued_.empty() || fatal_ || !backoff_.due(std::chrono::steady_clock::now())) continue;

    // Everything queued so far, up to the batch bound, goes in one UPDATE.
    const std::size_t take = std::min(queued_.size(), kMaxBatch);
    recording_.assign(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(take));
    queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(take));
    lock.unlock();
    const auto marked = how_ == Record::kMark ? database_.mark_published(recording_)
                                              : database_.remove_published(recording_);
    const auto now = std::chrono::steady_clock::now();
    lock.lock();

    if (marked) {
      recorded_ += recording_.size();
      recording_.clear();
      if (backoff_.failures() > 0) {
        relay_log().info("recording published rows again after {} failed attempts",
                         backoff_.failures());
      }
      backoff_.succeeded();
    } else {
      // Back to the front: these rows are still pending, and still skipped by fetches.
      queued_.insert(queued_.begin(), recording_.begin(), recording_.end());
      recording_.clear();
      if (!retryable(marked.error())) {
        fatal_ = marked.error();
      } else {
        const auto delay = backoff_.failed(now);
        if (warnings.allow(now)) {
          relay_log().warn(
              "could not record {} published rows ({} warnings held back), retrying in {} ms; "
              "they are kept in memory meanwhile: {}",
              queued_.size(), warnings.suppressed(), delay.count(), marked.error().message);
        }
      }
    }
    lock.unlock();
    changed_.notify_all();
    if (recorded_callback_) recorded_callback_();
    lock.lock();
  }
}

}  // namespace deedkit::internal
