#include "relay_test_support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include "deedkit/eventstore/unit_of_work.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "event_factory.hpp"

extern char** environ;

namespace deedkit::testing {

namespace {

int free_port() {
  const int socket_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(socket_fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(socket_fd);
  return ntohs(address.sin_port);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string header(natsMsg* message, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(message, key, &value) != NATS_OK || value == nullptr) return "";
  return value;
}

// A connection and JetStream context for the test's own reads.
struct JetStreamClient {
  natsConnection* connection = nullptr;
  jsCtx* context = nullptr;

  explicit JetStreamClient(const std::string& url) {
    if (natsConnection_ConnectTo(&connection, url.c_str()) != NATS_OK ||
        natsConnection_JetStream(&context, connection, nullptr) != NATS_OK) {
      throw std::runtime_error("cannot connect to NATS at " + url);
    }
  }
  ~JetStreamClient() {
    jsCtx_Destroy(context);
    natsConnection_Destroy(connection);
  }
  JetStreamClient(const JetStreamClient&) = delete;
  JetStreamClient& operator=(const JetStreamClient&) = delete;
};

}  // namespace

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

ScratchDirectory::ScratchDirectory(const std::string& label) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("deedkit-" + label + "-XXXXXX"));
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScratchDirectory::~ScratchDirectory() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::filesystem::path& stdout_file,
                           const std::filesystem::path& stderr_file) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> arguments;
  for (const std::string& argument : argv) arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);

  const int failed = ::posix_spawnp(&pid_, arguments[0], &actions, nullptr, arguments.data(),
                                    environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed != 0) throw std::runtime_error("cannot start " + argv[0]);
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
}

bool ChildProcess::running() {
  if (reaped_) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

void ChildProcess::signal(int signal_number) {
  if (!reaped_) ::kill(pid_, signal_number);
}

int ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return !running(); }, timeout)) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

NatsServer::NatsServer(const std::filesystem::path& directory, const std::string& config)
    : directory_(directory), config_(config), port_(free_port()) {
  std::filesystem::create_directories(directory_ / "store");
  start();
}

NatsServer::~NatsServer() { stop(); }

void NatsServer::start() {
  std::vector<std::string> argv = {"nats-server", "-js", "-sd", (directory_ / "store").string(),
                                   "-p", std::to_string(port_), "-a", "127.0.0.1"};
  if (!config_.empty()) {
    std::ofstream(directory_ / "nats.conf") << config_ << "\n";
    argv.push_back("-c");
    argv.push_back((directory_ / "nats.conf").string());
  }
  const auto log = directory_ / ("nats-" + std::to_string(++starts_) + ".log");
  process_ = std::make_unique<ChildProcess>(argv, log, log);
  if (!wait_until([&] { return read_file(log).find("Server is ready") != std::string::npos; })) {
    throw std::runtime_error("nats-server did not start: " + read_file(log));
  }
}

void NatsServer::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  process_->wait_exit();
  process_.reset();
}

SpawnedRelay::SpawnedRelay(const std::filesystem::path& directory, const std::string& name,
                           std::vector<std::string> arguments)
    : directory_(directory), name_(name), arguments_(std::move(arguments)) {}

void SpawnedRelay::start() {
  std::vector<std::string> argv = {DEEDKIT_BINARY};
  argv.insert(argv.end(), arguments_.begin(), arguments_.end());
  ++starts_;
  process_ = std::make_unique<ChildProcess>(argv, stdout_file(), directory_ / (name_ + ".err"));
}

void SpawnedRelay::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->wait_exit();
  process_.reset();
}

int SpawnedRelay::terminate() {
  if (!process_) return -1;
  process_->signal(SIGTERM);
  const int status = process_->wait_exit();
  process_.reset();
  return status;
}

std::string SpawnedRelay::log() const { return read_file(directory_ / (name_ + ".err")); }

std::filesystem::path SpawnedRelay::stdout_file() const { return directory_ / (name_ + ".out"); }

std::string error_lines(const std::string& log) {
  std::string errors;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("] [error] ") != std::string::npos) errors += line + "\n";
  }
  return errors.substr(0, 4000);
}

CommandResult run_deedkit(const std::filesystem::path& directory,
                          const std::vector<std::string>& arguments) {
  static int runs = 0;
  const auto output = directory / ("command-" + std::to_string(++runs) + ".txt");
  std::vector<std::string> argv = {DEEDKIT_BINARY};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  ChildProcess process(argv, output, output);
  const int status = process.wait_exit();
  return {status, read_file(output)};
}

std::vector<Uuid> write_outbox(ConnectionPool& pool, const std::string& stream_id,
                               std::int64_t first_version, int count,
                               std::size_t payload_bytes) {
  std::vector<NewEvent> events;
  for (int i = 0; i < count; ++i) {
    events.push_back(make_event(std::string(payload_bytes, static_cast<char>('a' + i % 26)),
                                "deedkit.test.v1.Happened"));
  }
  auto unit = UnitOfWork::begin(pool);
  if (!unit) throw std::runtime_error(unit.error().to_string());
  if (auto written = write_outbox_rows(*unit, stream_id, first_version, events); !written) {
    throw std::runtime_error(written.error().to_string());
  }
  if (auto committed = unit->commit(); !committed) {
    throw std::runtime_error(committed.error().to_string());
  }

  std::vector<Uuid> ids;
  for (const NewEvent& event : events) ids.push_back(event.event_id);
  return ids;
}

std::uint64_t stream_message_count(const std::string& nats_url, const std::string& stream_name) {
  JetStreamClient client(nats_url);
  jsStreamInfo* info = nullptr;
  if (js_GetStreamInfo(&info, client.context, stream_name.c_str(), nullptr, nullptr) != NATS_OK) {
    return 0;
  }
  const std::uint64_t count = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  return count;
}

void limit_stream_messages(const std::string& nats_url, std::int64_t max_messages) {
  JetStreamClient client(nats_url);
  const char* subjects[] = {"deedkit.>"};
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = "DEEDKIT";
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Discard = js_DiscardNew;
  config.MaxMsgs = max_messages;
  config.Duplicates = std::chrono::nanoseconds(std::chrono::hours(2)).count();

  jsStreamInfo* info = nullptr;
  const bool exists =
      js_GetStreamInfo(&info, client.context, "DEEDKIT", nullptr, nullptr) == NATS_OK;
  jsStreamInfo_Destroy(info);
  info = nullptr;
  const natsStatus status = exists
                                ? js_UpdateStream(&info, client.context, &config, nullptr, nullptr)
                                : js_AddStream(&info, client.context, &config, nullptr, nullptr);
  jsStreamInfo_Destroy(info);
  if (status != NATS_OK) {
    throw std::runtime_error(std::string("cannot limit JetStream stream DEEDKIT: ") +
                             natsStatus_GetText(status));
  }
}

std::vector<StoredMessage> read_stream(const std::string& nats_url,
                                       const std::string& stream_name) {
  JetStreamClient client(nats_url);
  jsStreamInfo* info = nullptr;
  if (js_GetStreamInfo(&info, client.context, stream_name.c_str(), nullptr, nullptr) != NATS_OK) {
    ADD_FAILURE() << "JetStream stream " << stream_name << " cannot be read";
    return {};
  }
  const std::uint64_t count = info->State.Msgs;
  const std::string subject = info->Config->Subjects[0];
  jsStreamInfo_Destroy(info);

  // An ordered consumer delivers the stream in sequence order, without acknowledgements.
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = stream_name.c_str();
  options.Ordered = true;
  natsSubscription* subscription = nullptr;
  if (js_SubscribeSync(&subscription, client.context, subject.c_str(), nullptr, &options,
                       nullptr) != NATS_OK) {
    ADD_FAILURE() << "cannot subscribe to JetStream stream " << stream_name;
    return {};
  }

  std::vector<StoredMessage> messages;
  while (messages.size() < count) {
    natsMsg* message = nullptr;
    if (natsSubscription_NextMsg(&message, subscription, 10000) != NATS_OK) {
      ADD_FAILURE() << "read only " << messages.size() << " of " << count << " messages";
      break;
    }
    jsMsgMetaData* meta = nullptr;
    StoredMessage stored;
    if (natsMsg_GetMetaData(&meta, message) == NATS_OK) {
      stored.sequence = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    stored.subject = natsMsg_GetSubject(message);
    stored.message_id = header(message, "Nats-Msg-Id");
    stored.stream_id = header(message, "Deedkit-Stream");
    stored.version = std::stoll("0" + header(message, "Deedkit-Version"));
    stored.body.assign(natsMsg_GetData(message),
                       static_cast<std::size_t>(natsMsg_GetDataLength(message)));
    messages.push_back(std::move(stored));
    natsMsg_Destroy(message);
  }
  natsSubscription_Destroy(subscription);
  return messages;
}

std::string check_exactly_once_in_order(
    const std::vector<StoredMessage>& messages,
    const std::map<std::string, std::vector<Uuid>>& events_by_stream) {
  std::ostringstream problems;
  std::map<std::string, int> seen;
  std::map<std::string, std::int64_t> last_version;
  for (const StoredMessage& message : messages) {
    if (++seen[message.message_id] == 2) {
      problems << "message " << message.message_id << " (" << message.stream_id << " v"
               << message.version << ") is stored more than once\n";
    }
    std::int64_t& last = last_version[message.stream_id];
    if (message.version != last + 1) {
      problems << "stream " << message.stream_id << ": version " << message.version
               << " follows version " << last << " (sequence " << message.sequence << ")\n";
    }
    last = message.version;

    const auto stream = events_by_stream.find(message.stream_id);
    if (stream == events_by_stream.end() || message.version < 1 ||
        message.version > static_cast<std::int64_t>(stream->second.size()) ||
        to_string(stream->second[static_cast<std::size_t>(message.version - 1)]) !=
            message.message_id) {
      problems << "message " << message.message_id << " is not the event written as "
               << message.stream_id << " v" << message.version << "\n";
    }
  }

  for (const auto& [stream_id, ids] : events_by_stream) {
    for (const Uuid& id : ids) {
      if (!seen.contains(to_string(id))) {
        problems << "event " << to_string(id) << " of " << stream_id << " is missing\n";
      }
    }
  }
  std::string text = problems.str();
  if (text.size() > 4000) text = text.substr(0, 4000) + "...\n";
  return text;
}

void RelayFixture::SetUp() {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  scratch_ = std::make_unique<ScratchDirectory>(test->name());
  query_value(database_uri(),
              "TRUNCATE deedkit.outbox, deedkit.outbox_dead_letters; SELECT 1");
}

void RelayFixture::TearDown() {
  // Keep what the relays wrote when the test failed (or DEEDKIT_KEEP_RELAY_FILES is set): it
  // is the best evidence there is.
  if (HasFailure() || std::getenv("DEEDKIT_KEEP_RELAY_FILES") != nullptr) {
    std::cerr << "relay test files kept in " << scratch_->path() << "\n";
    std::filesystem::copy(scratch_->path(), scratch_->path().string() + "-failed",
                          std::filesystem::copy_options::recursive);
  }
  scratch_.reset();
}

std::vector<std::string> RelayFixture::relay_arguments(
    const std::string& nats_url, const std::vector<std::string>& extra) const {
  std::vector<std::string> arguments = {"--database", database_uri(), "--log-level", "info"};
  if (!nats_url.empty()) {
    arguments.push_back("--nats");
    arguments.push_back(nats_url);
  }
  arguments.insert(arguments.end(),
                   {"relay", "--lease-interval", "200ms", "--backoff-initial", "20ms",
                    "--backoff-max", "300ms", "--poll-interval", "2ms", "--ack-timeout", "2s"});
  if (nats_url.empty()) arguments.push_back("--stdout");
  arguments.insert(arguments.end(), extra.begin(), extra.end());
  return arguments;
}

std::int64_t RelayFixture::count_rows(const std::string& table, const std::string& condition) {
  return std::stoll(query_value(database_uri(), "SELECT count(*) FROM deedkit." + table +
                                                    " WHERE " + condition));
}

}  // namespace deedkit::testing
