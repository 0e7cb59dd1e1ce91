#include "internal/async_fetcher.hpp"

#include "internal/relay_log.hpp"

namespace deedkit::internal {

AsyncFetcher::AsyncFetcher(std::string database_uri, std::function<void()> done)
    : database_(std::move(database_uri)), done_(std::move(done)), thread_([this] { run(); }) {}

AsyncFetcher::~AsyncFetcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

bool AsyncFetcher::busy() const {
  std::lock_guard lock(mutex_);
  return busy_;
}

void AsyncFetcher::start(std::vector<PartitionRoom> rooms, std::vector<std::int64_t> skip,
                         OutboxPoll poll, std::int64_t settled) {
  {
    std::lock_guard lock(mutex_);
    if (busy_) return;
    busy_ = true;
    request_ = Request{std::move(rooms), std::move(skip), std::move(poll), settled};
  }
  changed_.notify_all();
}

std::optional<AsyncFetcher::Finished> AsyncFetcher::take() {
  std::lock_guard lock(mutex_);
  if (!finished_) return std::nullopt;
  std::optional<Finished> taken = std::move(finished_);
  finished_.reset();
  busy_ = false;
  return taken;
}

void AsyncFetcher::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || request_.has_value(); });
    if (stopping_) return;

    Request request = std::move(*request_);
    request_.reset();
    lock.unlock();
    const auto began = std::chrono::steady_clock::now();
    auto rows = database_.fetch(request.rooms, request.skip);
    relay_log().debug("fetch: {} rows past {} skipped ids in {} ms",
                      rows ? rows->size() : 0, request.skip.size(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - began).count());
    lock.lock();

    finished_ = Finished{std::move(request.rooms), std::move(request.poll), request.settled,
                         std::move(rows)};
    lock.unlock();
    if (done_) done_();
    lock.lock();
  }
}

}  // namespace deedkit::internal
