// The deedkit command as a user runs it: a real process, its exit status and its output.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "test_database.hpp"

namespace deedkit::testing {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs `arguments` through the shell in `folder`, with no database or NATS configured
// unless the arguments say so.
CliRun run_deedkit(const std::string& folder, const std::string& arguments) {
  const std::string command = "cd '" + folder +
                              "' && env -u DEEDKIT_DATABASE_URL -u DEEDKIT_NATS_URL -u PGHOST "
                              "-u PGDATABASE -u PGSERVICE -u PGPORT -u PGUSER " DEEDKIT_CLI " " +
                              arguments + " 2>&1";
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer;
  while (const std::size_t read = std::fread(buffer.data(), 1, buffer.size(), pipe)) {
    run.output.append(buffer.data(), read);
  }
  const int status = pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A folder the postgres user can enter, removed with the test.
class ScratchFolder {
 public:
  ScratchFolder() {
    std::string pattern = "/tmp/deedkit-cli-XXXXXX";
    path_ = mkdtemp(pattern.data());
    fs::permissions(path_, fs::perms::owner_all | fs::perms::group_read |
                               fs::perms::group_exec | fs::perms::others_read |
                               fs::perms::others_exec);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CliTest, EverySubcommandHasHelpWithExamples) {
  ScratchFolder folder;
  for (const char* subcommand : {"migrate", "serve", "relay", "outbox", "projections", "streams",
                                 "up", "demo", "db"}) {
    const CliRun run = run_deedkit(folder.path(), std::string(subcommand) + " --help");
    EXPECT_EQ(run.status, 0) << subcommand << ": " << run.output;
    EXPECT_NE(run.output.find("Examples"), std::string::npos) << subcommand << ": " << run.output;
  }
}

TEST(CliTest, AnUnknownSubcommandFailsWithAMessage) {
  ScratchFolder folder;
  const CliRun run = run_deedkit(folder.path(), "frobnicate");
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.output.find("frobnicate"), std::string::npos) << run.output;
}

TEST(CliTest, DemoTellsTheWholeStoryAndExitsZero) {
  const std::string database = create_database("cli_demo_" + std::to_string(getpid()));
  const char* nats = std::getenv("DEEDKIT_TEST_NATS_URL");
  ASSERT_NE(nats, nullptr) << "scripts/test sets DEEDKIT_TEST_NATS_URL";
  ScratchFolder folder;

  const CliRun run = run_deedkit(folder.path(), "--database '" + database + "' --nats '" +
                                                 std::string(nats) + "' demo");

  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("Idempotent-Replayed: true"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("422"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("read back 7 messages from JetStream"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("Summary:"), std::string::npos) << run.output;
  EXPECT_EQ(query_value(database, "SELECT count(*) FROM deedkit.events"), "7");
  EXPECT_EQ(query_value(database, "SELECT count(*) FROM deedkit.idempotency_keys"), "7");
}

TEST(CliTest, PrivateDatabaseStartsIsSharedByTwoProcessesAndStops) {
  ScratchFolder folder;
  EXPECT_NE(run_deedkit(folder.path(), "db status").output.find("not created"),
            std::string::npos);

  // Two processes at once on a folder with no cluster yet: one creates and starts it while
  // the other waits on ./.deedkit/lock; both migrate (only one applies anything).
  auto first = std::async(std::launch::async,
                          [&] { return run_deedkit(folder.path(), "migrate"); });
  auto second = std::async(std::launch::async,
                           [&] { return run_deedkit(folder.path(), "migrate"); });
  const CliRun migrated = first.get();
  const CliRun also_migrated = second.get();
  ASSERT_EQ(migrated.status, 0) << migrated.output;
  ASSERT_EQ(also_migrated.status, 0) << also_migrated.output;

  const CliRun started = run_deedkit(folder.path(), "db start");
  ASSERT_EQ(started.status, 0) << started.output;
  EXPECT_NE(started.output.find("running"), std::string::npos) << started.output;
  const CliRun listed = run_deedkit(folder.path(), "streams list");
  EXPECT_EQ(listed.status, 0) << listed.output;

  const CliRun again = run_deedkit(folder.path(), "db start");
  EXPECT_EQ(again.status, 0) << again.output;
  // The same server: the status line (pid and socket) is the last line of both.
  const auto last_line = [](const std::string& text) {
    const auto end = text.find_last_not_of('\n');
    return text.substr(text.rfind('\n', end) + 1);
  };
  EXPECT_EQ(last_line(again.output), last_line(started.output));

  const CliRun stopped = run_deedkit(folder.path(), "db stop");
  EXPECT_EQ(stopped.status, 0) << stopped.output;
  EXPECT_NE(stopped.output.find("stopped"), std::string::npos) << stopped.output;
}

// The README's first command: nothing configured, so the demo starts its own PostgreSQL
// under ./.deedkit and its own nats-server.
TEST(CliTest, DemoRunsOnThePrivateStackWithNothingConfigured) {
  ScratchFolder folder;

  const CliRun run = run_deedkit(folder.path(), "demo");
  const CliRun stopped = run_deedkit(folder.path(), "db stop");

  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("Summary:"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("read back 7 messages from JetStream"), std::string::npos)
      << run.output;
  EXPECT_EQ(stopped.status, 0) << stopped.output;
}

// Global options are accepted after the subcommand too, as in "deedkit relay --nats URL".
TEST(CliTest, GlobalOptionsMayFollowTheSubcommand) {
  const std::string database = create_database("cli_order_" + std::to_string(getpid()));
  ScratchFolder folder;

  const CliRun run = run_deedkit(folder.path(), "migrate --database '" + database + "'");

  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(query_value(database, "SELECT count(*) > 0 FROM deedkit.schema_migrations"), "t");
}

// The rebuild watches its own projection, whichever others the database knows.
TEST(CliTest, RebuildOfEachProjectionFinishesWhenOthersAreKnown) {
  const std::string database = create_database("cli_rebuild_" + std::to_string(getpid()));
  ScratchFolder folder;
  ASSERT_EQ(run_deedkit(folder.path(), "migrate --database '" + database + "'").status, 0);

  for (const char* name : {"assets", "rent_roll", "assets"}) {
    const CliRun run = run_deedkit(
        folder.path(), "projections rebuild " + std::string(name) + " --database '" +
                           database + "'");
    ASSERT_EQ(run.status, 0) << name << ": " << run.output;
    EXPECT_NE(run.output.find("rebuild " + std::string(name) + ": generation"),
              std::string::npos)
        << run.output;
  }
}

}  // namespace
}  // namespace deedkit::testing
