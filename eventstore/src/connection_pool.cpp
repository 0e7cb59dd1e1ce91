#include "deedkit/eventstore/connection_pool.hpp"

#include <regex>
#include <set>

#include <pqxx/nontransaction>
#include <spdlog/spdlog.h>

namespace deedkit {

struct ConnectionLease::Slot {
  std::unique_ptr<pqxx::connection> connection;
  std::set<std::string> prepared;
  std::chrono::steady_clock::time_point last_used;
};

ConnectionLease::ConnectionLease(ConnectionPool* pool, std::unique_ptr<Slot> slot)
    : pool_(pool), slot_(std::move(slot)), connection_(slot_->connection.get()) {}

ConnectionLease::ConnectionLease(ConnectionLease&& other) noexcept
    : pool_(other.pool_),
      slot_(std::move(other.slot_)),
      connection_(other.connection_),
      discard_(other.discard_) {
  other.pool_ = nullptr;
}

ConnectionLease& ConnectionLease::operator=(ConnectionLease&& other) noexcept {
  if (this != &other) {
    if (pool_ && slot_) pool_->give_back(std::move(slot_), discard_);
    pool_ = other.pool_;
    slot_ = std::move(other.slot_);
    connection_ = other.connection_;
    discard_ = other.discard_;
    other.pool_ = nullptr;
  }
  return *this;
}

ConnectionLease::~ConnectionLease() {
  if (pool_ && slot_) pool_->give_back(std::move(slot_), discard_);
}

void ConnectionLease::ensure_prepared(const std::string& name, const std::string& sql) {
  if (slot_->prepared.contains(name)) return;
  slot_->connection->prepare(name, sql);
  slot_->prepared.insert(name);
}

void ConnectionLease::ensure_prepared_lazily(const std::string& name,
                                             const std::function<std::string()>& make_sql) {
  if (slot_->prepared.contains(name)) return;
  ensure_prepared(name, make_sql());
}

ConnectionPool::ConnectionPool(PoolOptions options) : options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() = default;

int ConnectionPool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

namespace {

bool probe(pqxx::connection& connection) {
  try {
    pqxx::nontransaction probe_tx(connection);
    probe_tx.exec("SELECT 1");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Result<ConnectionLease> ConnectionPool::acquire() {
  std::unique_ptr<ConnectionLease::Slot> slot;
  bool suspect = false;
  {
    std::unique_lock lock(mutex_);
    const bool ready = returned_.wait_for(lock, options_.acquire_timeout, [&] {
      return !idle_.empty() || open_ < options_.max_connections;
    });
    if (!ready) {
      // kUnavailable, not kDeadlineExceeded: to a caller this is "the database cannot take
      // more work now, retry later" (HTTP 503), unlike a bounded wait on a request's own key.
      return fail(ErrorCode::kUnavailable,
                  "all " + std::to_string(options_.max_connections) +
                      " database connections stayed busy for " +
                      std::to_string(options_.acquire_timeout.count()) + " ms");
    }
    if (!idle_.empty()) {
      slot = std::move(idle_.back());
      idle_.pop_back();
      suspect = slot->last_used < last_break_;
    } else {
      ++open_;  // reserve the place before connecting outside the lock
    }
  }

  // An idle connection may have died with a server restart; probing it only when another
  // connection broke since, or after a quiet period, keeps the busy path free of an extra
  // round trip.
  if (slot) {
    const auto idle_for = std::chrono::steady_clock::now() - slot->last_used;
    const bool worth_a_probe = suspect || idle_for > options_.health_check_after;
    if (!slot->connection->is_open() || (worth_a_probe && !probe(*slot->connection))) {
      spdlog::warn("pool: dropped a dead idle database connection; opening a new one");
      slot.reset();
    } else {
      return ConnectionLease(this, std::move(slot));
    }
  }

  try {
    slot = std::make_unique<ConnectionLease::Slot>();
    slot->connection = std::make_unique<pqxx::connection>(options_.database_uri);
    return ConnectionLease(this, std::move(slot));
  } catch (const std::exception& error) {
    {
      std::lock_guard lock(mutex_);
      --open_;
    }
    returned_.notify_one();
    return fail(ErrorCode::kUnavailable, "cannot connect to PostgreSQL at " +
                                             redact_database_uri(options_.database_uri) + ": " +
                                             error.what());
  }
}

void ConnectionPool::give_back(std::unique_ptr<ConnectionLease::Slot> slot, bool discard) {
  {
    std::lock_guard lock(mutex_);
    if (discard || !slot->connection->is_open()) {
      --open_;
      last_break_ = std::chrono::steady_clock::now();
    } else {
      slot->last_used = std::chrono::steady_clock::now();
      idle_.push_back(std::move(slot));
    }
  }
  returned_.notify_one();
}

std::string redact_database_uri(const std::string& uri) {
  if (uri.empty()) return "(PG* environment)";
  static const std::regex kUserinfoPassword(R"(://([^:/@]*):[^@/]*@)");
  static const std::regex kKeywordPassword(R"(password=[^&\s]*)");
  std::string redacted = std::regex_replace(uri, kUserinfoPassword, "://$1:***@");
  return std::regex_replace(redacted, kKeywordPassword, "password=***");
}

}  // namespace deedkit
