#include "deedkit/idempotency/key_janitor.hpp"

#include <spdlog/spdlog.h>

#include "deedkit/idempotency/idempotency.hpp"

namespace deedkit {

KeyJanitor::KeyJanitor(ConnectionPool& pool, KeyJanitorOptions options)
    : pool_(pool), options_(options) {}

KeyJanitor::~KeyJanitor() { stop(); }

void KeyJanitor::start() {
  if (thread_.joinable()) return;
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void KeyJanitor::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wake_.notify_all();
  thread_.join();
}

long long KeyJanitor::keys_purged() const {
  std::lock_guard lock(mutex_);
  return purged_;
}

void KeyJanitor::run(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    const auto purged = purge_expired_idempotency_keys(pool_, options_.retention,
                                                       options_.batch_size);
    if (purged && *purged > 0) {
      spdlog::info("idempotency: purged {} keys older than {} s", *purged,
                   options_.retention.count());
    } else if (!purged) {
      spdlog::warn("idempotency: purging expired keys failed, next try in {} ms: {}",
                   options_.interval.count(), purged.error().to_string());
    }

    std::unique_lock lock(mutex_);
    if (purged) purged_ += *purged;
    // The interval is a schedule, not a synchronisation: stop() wakes this at once.
    wake_.wait_for(lock, stop, options_.interval, [] { return false; });
  }
}

}  // namespace deedkit
