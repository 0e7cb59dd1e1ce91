#include "internal/partition_leases.hpp"

#include <algorithm>
#include <random>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/unit_of_work.hpp"
#include "internal/lease_keys.hpp"
#include "internal/outbox_row.hpp"
#include "internal/relay_database.hpp"

namespace deedkit::internal {

namespace {

// Every deedkit advisory lock of the two-key kind in this database: whose it is (ours or
// not), its class and its key. One read of pg_locks per rebalance.
constexpr const char* kLocksSql =
    "SELECT pid = pg_backend_pid(), classid::int8, objid::int8 FROM pg_locks "
    "WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "  AND classid::int8 IN ($1::int8, $2::int8)";

// Takes the first free member slot. pg_try_advisory_lock runs once per row the Limit pulls,
// so it stops at the first slot it gets.
constexpr const char* kJoinSql =
    "SELECT s FROM generate_series(0, $2::int4 - 1) AS s "
    "WHERE pg_try_advisory_lock($1::int4, s) LIMIT 1";

constexpr const char* kTakeSql =
    "SELECT p FROM unnest($2::int4[]) AS p WHERE pg_try_advisory_lock($1::int4, p)";

constexpr const char* kGiveBackSql =
    "SELECT p FROM unnest($2::int4[]) AS p WHERE pg_advisory_unlock($1::int4, p)";

struct LockView {
  std::set<int> mine;
  std::set<int> taken;  // by anyone
  int relays = 0;
  bool member = false;  // this session holds its member lock
};

LockView read_locks(pqxx::nontransaction& tx) {
  LockView view;
  for (const auto& row : tx.exec_prepared("deedkit_lease_locks", kPartitionLockClass,
                                          kMemberLockClass)) {
    const bool mine = row[0].as<bool>();
    const auto lock_class = row[1].as<std::int64_t>();
    const int key = static_cast<int>(row[2].as<std::int64_t>());
    if (lock_class == kMemberLockClass) {
      ++view.relays;
      view.member = view.member || mine;
    } else {
      view.taken.insert(key);
      if (mine) view.mine.insert(key);
    }
  }
  return view;
}

std::vector<int> keys_of(const pqxx::result& result) {
  std::vector<int> keys;
  for (const auto& row : result) keys.push_back(row[0].as<int>());
  return keys;
}

}  // namespace

PartitionLeases::PartitionLeases(std::string database_uri)
    : database_uri_(std::move(database_uri)) {}

PartitionLeases::~PartitionLeases() { disconnect(); }

Result<void> PartitionLeases::connect() {
  try {
    connection_ = std::make_unique<pqxx::connection>(database_uri_);
    // NOTE: libpqxx 6 would silently open a new session when this one breaks, and the new
    // session holds none of our locks. Refusing that makes a broken session an error, which
    // is how the relay learns that its leases are gone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    connection_->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    connection_->prepare("deedkit_lease_locks", kLocksSql);
    connection_->prepare("deedkit_lease_join", kJoinSql);
    connection_->prepare("deedkit_lease_take", kTakeSql);
    connection_->prepare("deedkit_lease_give_back", kGiveBackSql);

    pqxx::nontransaction tx(*connection_);
    tx.exec(std::string("SET application_name = '") + kRelayApplicationName + "'");
    // If the relay's host dies without closing the socket, the server learns of it only
    // through TCP keepalives (2 hours by default), and the locks would stay held that long.
    // The relay talks on this connection every lease interval, so after 2 s of silence the
    // server probes, and about 4 s after the host died the session ends and its partitions
    // are free. (Ignored over a Unix socket, where a dead peer is seen at once.)
    // TODO: the other direction is not covered: a relay cut off from the server waits on its
    // statement until the kernel gives up on the socket (libpq's keepalive and
    // tcp_user_timeout options are not added to the operator's URI). It publishes nothing new
    // while it waits, so ordering holds; the cost is that relay's throughput meanwhile.
    tx.exec("SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; "
            "SET tcp_keepalives_count = 2");
    const pqxx::result slot = tx.exec_prepared("deedkit_lease_join", kMemberLockClass,
                                               kMemberSlots);
    if (slot.empty()) {
      connection_.reset();
      return fail(ErrorCode::kUnavailable, "all " + std::to_string(kMemberSlots) +
                                               " relay member slots are taken");
    }
    return {};
  } catch (const std::exception&) {
    connection_.reset();
    return std::unexpected(database_error("open the relay's lease connection to " +
                                          redact_database_uri(database_uri_)));
  }
}

void PartitionLeases::disconnect() {
  if (connection_) connection_->disconnect();
  connection_.reset();
}

LeaseStep PartitionLeases::rebalance(const std::function<bool(int)>& may_release) {
  LeaseStep step;
  const auto lose_everything = [&](Error error) {
    step.lost.assign(owned_.begin(), owned_.end());
    owned_.clear();
    disconnect();
    step.error = std::move(error);
  };

  if (!connection_) {
    if (auto connected = connect(); !connected) {
      lose_everything(connected.error());
      return step;
    }
  }

  try {
    pqxx::nontransaction tx(*connection_);
    LockView view = read_locks(tx);
    if (!view.member) {
      lose_everything(Error{ErrorCode::kUnavailable, "the relay's lease session lost its locks"});
      return step;
    }
    // Only what pg_locks shows is ours counts; anything else went with an earlier session.
    for (const int partition : owned_) {
      if (!view.mine.contains(partition)) step.lost.push_back(partition);
    }
    owned_ = view.mine;
    step.relays = view.relays;

    const int fair_share = (kOutboxPartitions + view.relays - 1) / view.relays;
    const int owned = static_cast<int>(owned_.size());
    if (owned > fair_share) {
      std::vector<int> surplus;
      for (const int partition : owned_) {
        if (static_cast<int>(surplus.size()) == owned - fair_share) break;
        if (may_release(partition)) surplus.push_back(partition);
      }
      for (const int partition : keys_of(tx.exec_prepared(
               "deedkit_lease_give_back", kPartitionLockClass, array_literal(surplus)))) {
        owned_.erase(partition);
        step.lost.push_back(partition);
      }
    } else if (owned < fair_share) {
      std::vector<int> free;
      for (int partition = 0; partition < kOutboxPartitions; ++partition) {
        if (!view.taken.contains(partition)) free.push_back(partition);
      }
      // Relays starting together would otherwise all race for the same low partitions.
      thread_local std::minstd_rand random(std::random_device{}());
      std::shuffle(free.begin(), free.end(), random);
      free.resize(std::min<std::size_t>(free.size(), fair_share - owned));
      for (const int partition : keys_of(tx.exec_prepared(
               "deedkit_lease_take", kPartitionLockClass, array_literal(free)))) {
        owned_.insert(partition);
        step.gained.push_back(partition);
      }
    }
  } catch (const std::exception&) {
    lose_everything(database_error("rebalance outbox partitions"));
  }
  return step;
}

void PartitionLeases::release_all() {
  owned_.clear();
  disconnect();
}

}  // namespace deedkit::internal
