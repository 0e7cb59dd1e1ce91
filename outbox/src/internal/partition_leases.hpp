#pragma once

// Leases of the outbox's 64 partitions, held as session advisory locks on a connection of
// their own. A lock lives exactly as long as that connection's session: when a relay process
// dies, the kernel closes its socket, the server ends the session and the locks are free for
// the others at once. No heartbeat table, no expiry to tune.
//
// Each relay also holds one "member" lock, so counting member locks in pg_locks counts the
// live relays; each then aims for a fair share, ceil(64 / relays), taking free partitions
// when below it and giving partitions back when above it.
//
// Not thread-safe: the relay's loop owns it.

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "deedkit/core/error.hpp"

namespace deedkit::internal {

struct LeaseStep {
  std::vector<int> gained;
  std::vector<int> lost;  // given back, or gone with the connection
  int relays = 0;         // live relays seen; 0 when the step failed
  // Set when the step failed. If the connection broke, every partition held before is in
  // `lost`: its lock went with the session.
  std::optional<Error> error;
};

class PartitionLeases {
 public:
  explicit PartitionLeases(std::string database_uri);
  ~PartitionLeases();
  PartitionLeases(const PartitionLeases&) = delete;
  PartitionLeases& operator=(const PartitionLeases&) = delete;

  // Connects if needed, checks which locks this session really holds, counts the relays and
  // moves toward the fair share. Gives back only partitions for which `may_release` is true
  // (the relay passes "nothing of it in flight").
  LeaseStep rebalance(const std::function<bool(int)>& may_release);

  // Gives every partition back and closes the connection.
  void release_all();

  const std::set<int>& owned() const { return owned_; }

 private:
  Result<void> connect();
  void disconnect();

  std::string database_uri_;
  std::unique_ptr<pqxx::connection> connection_;
  std::set<int> owned_;
};

}  // namespace deedkit::internal
