#pragma once

// What the tests of both idempotency paths ask the database: how many rows a stream or a key
// has, and whether some backend waits on a lock.

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include <google/protobuf/wrappers.pb.h>

#include "deedkit/idempotency/idempotency.hpp"
#include "test_database.hpp"

namespace deedkit::testing {

class KeyedCommandTest : public DatabaseTest {
 protected:
  static RequestFingerprint fingerprint_of(const std::string& body) {
    google::protobuf::StringValue command;
    command.set_value(body);
    return fingerprint_request("RegisterThing", command);
  }

  static std::string count(const std::string& table, const std::string& stream) {
    return query_value(database_uri(), "SELECT count(*) FROM deedkit." + table +
                                           " WHERE stream_id = '" + stream + "'");
  }

  static std::string key_count(const std::string& key) {
    return query_value(database_uri(),
                       "SELECT count(*) FROM deedkit.idempotency_keys WHERE idempotency_key = '" +
                           key + "'");
  }

  static std::string fresh_key() { return "key-" + to_string(new_uuid()); }

  // Blocks until a backend of this database waits on a lock; returns its pid.
  static std::string wait_for_a_lock_waiter() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < give_up) {
      const std::string pid = query_value(
          database_uri(),
          "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
          "AND datname = current_database() LIMIT 1");
      if (!pid.empty()) return pid;
      std::this_thread::yield();
    }
    throw std::runtime_error("no session of the test database waited on a lock within 30 s");
  }
};

}  // namespace deedkit::testing
