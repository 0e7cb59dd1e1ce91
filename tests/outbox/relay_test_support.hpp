#pragma once

// What the relay tests need around the relay: their own nats-server (so a test can stop and
// start it, or give it a small max_payload), `deedkit relay` processes they can kill, a
// JetStream reader, outbox writers, and waiting on conditions with deadlines.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "deedkit/eventstore/connection_pool.hpp"
#include "deedkit/eventstore/types.hpp"
#include "test_database.hpp"

namespace deedkit::testing {

// Polls `condition` until it holds or `timeout` passes; returns whether it held. The pause
// between checks is short and is not what the test waits for: the condition is.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A scratch directory under /tmp, removed when the object goes away.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(const std::string& label);
  ~ScratchDirectory();
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process with stdout and stderr in files. Killed (SIGKILL) if still running when
// the object goes away.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& stdout_file,
               const std::filesystem::path& stderr_file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int signal_number);
  // Waits for the exit; returns the exit status, 128 + signal for a signal, -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  bool reaped_ = false;
};

// A nats-server with JetStream on a free loopback port, storing in its own directory.
class NatsServer {
 public:
  // `config` (nats-server configuration text) is written to a file and passed with -c.
  explicit NatsServer(const std::filesystem::path& directory, const std::string& config = "");
  ~NatsServer();

  void start();  // same port and store every time
  // Takes effect at the next start().
  void set_config(const std::string& config) { config_ = config; }
  void stop();   // SIGTERM, then waits for the exit
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  std::filesystem::path directory_;
  std::string config_;
  int port_;
  int starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// A `deedkit relay` process; its output goes to files in `directory`, named after `name`.
class SpawnedRelay {
 public:
  SpawnedRelay(const std::filesystem::path& directory, const std::string& name,
               std::vector<std::string> arguments);

  void start();
  void kill();            // SIGKILL and reap
  int terminate();        // SIGTERM; returns the exit status
  bool running() { return process_ && process_->running(); }
  std::string log() const;  // what it wrote to stderr so far
  std::filesystem::path stdout_file() const;

 private:
  std::filesystem::path directory_;
  std::string name_;
  std::vector<std::string> arguments_;
  int starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// The lines of a relay log at error level ("someone must act"): a healthy run has none.
std::string error_lines(const std::string& log);

// `deedkit` run to completion (for the outbox subcommands).
struct CommandResult {
  int exit_status = -1;
  std::string output;
};
CommandResult run_deedkit(const std::filesystem::path& directory,
                          const std::vector<std::string>& arguments);

// Appends `count` outbox rows to `stream_id` from version `first_version`, in one
// transaction, through write_outbox_rows. Returns the event ids in version order.
std::vector<Uuid> write_outbox(ConnectionPool& pool, const std::string& stream_id,
                               std::int64_t first_version, int count,
                               std::size_t payload_bytes = 16);

// A message read back from JetStream.
struct StoredMessage {
  std::uint64_t sequence = 0;
  std::string subject;
  std::string message_id;  // Nats-Msg-Id
  std::string stream_id;   // Deedkit-Stream
  std::int64_t version = 0;
  std::string body;
};

// Every message of JetStream stream `stream_name`, in stream order. Fails the test if the
// stream cannot be read.
std::vector<StoredMessage> read_stream(const std::string& nats_url,
                                       const std::string& stream_name = "DEEDKIT");
// The number of messages in the stream (0 when it does not exist yet).
std::uint64_t stream_message_count(const std::string& nats_url,
                                   const std::string& stream_name = "DEEDKIT");

// Creates JetStream stream DEEDKIT (subjects deedkit.>) or updates it to hold at most
// `max_messages` (-1: no limit) and to refuse new messages beyond that ("discard new"), as
// a broker that has run out of room does.
void limit_stream_messages(const std::string& nats_url, std::int64_t max_messages);

// Checks what the crash and outage tests promise: every expected event exactly once, and
// each stream's versions 1..n in order. Returns "" or a description of what broke.
std::string check_exactly_once_in_order(
    const std::vector<StoredMessage>& messages,
    const std::map<std::string, std::vector<Uuid>>& events_by_stream);

// A suite with its own migrated database (DatabaseTest), an empty outbox and a scratch
// directory per test.
class RelayFixture : public DatabaseTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::filesystem::path& scratch() const { return scratch_->path(); }

  // `deedkit --database .. [--nats URL] relay` with short intervals for tests, then `extra`.
  std::vector<std::string> relay_arguments(const std::string& nats_url,
                                           const std::vector<std::string>& extra = {}) const;

  // SELECT count(*) FROM deedkit.<table> WHERE <condition>
  static std::int64_t count_rows(const std::string& table, const std::string& condition);

 private:
  std::unique_ptr<ScratchDirectory> scratch_;
};

}  // namespace deedkit::testing
