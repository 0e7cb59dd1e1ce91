#include "projection_fixture.hpp"

#include <algorithm>
#include <cstring>
#include <thread>

#include <spawn.h>
#include <sys/wait.h>

#include "deedkit/eventstore/migrations.hpp"
#include "test_database.hpp"

namespace deedkit::testing {

void ProjectionTest::SetUp() {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  label_ = std::string("pj_") + test->name();
  database_uri_ = create_database(label_);
  const auto migrated = migrate(database_uri_);
  ASSERT_TRUE(migrated.has_value()) << migrated.error().to_string();

  pool_ = std::make_unique<ConnectionPool>(
      PoolOptions{.database_uri = database_uri_, .max_connections = 40});
  store_ = std::make_unique<EventStore>(*pool_);
}

void ProjectionTest::TearDown() {
  store_.reset();
  pool_.reset();
  drop_database(label_);
}

RunnerOptions ProjectionTest::fast_options(int batch_size) {
  return RunnerOptions{.batch_size = batch_size,
                       .min_poll = std::chrono::milliseconds(1),
                       .max_poll = std::chrono::milliseconds(10),
                       .leadership_interval = std::chrono::milliseconds(50),
                       .max_retry_backoff = std::chrono::milliseconds(200)};
}

bool ProjectionTest::wait_for(const std::function<bool()>& condition, const std::string& what,
                              std::chrono::seconds deadline) {
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < give_up) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "gave up after " << deadline.count() << " s waiting for " << what;
  return false;
}

bool ProjectionTest::wait_until_caught_up(std::span<const Projection* const> projections,
                                          std::chrono::seconds deadline) {
  std::string last_state;
  const bool caught_up = wait_for(
      [&] {
        auto statuses = projection_status(pool(), projections);
        if (!statuses) {
          last_state = statuses.error().to_string();
          return false;
        }
        last_state.clear();
        bool all = true;
        for (const ProjectionStatus& status : *statuses) {
          // The status covers every projection the database knows; judge only those asked.
          const bool asked = std::ranges::any_of(
              projections, [&](const Projection* p) { return p->name() == status.name; });
          if (!asked) continue;
          const bool done = status.live && !status.building && !status.live->failure &&
                            status.live->lag_events == 0;
          last_state += status.name + ": " + status.state() + " lag " +
                        (status.live ? std::to_string(status.live->lag_events) : "-") +
                        (status.live && status.live->failure
                             ? " failed: " + status.live->failure->error
                             : "") +
                        "; ";
          all = all && done;
        }
        return all;
      },
      "the projections to catch up", deadline);
  if (!caught_up) ADD_FAILURE() << "last status: " << last_state;
  return caught_up;
}

std::optional<ProjectionStatus> ProjectionTest::status_of(const std::string& name) {
  // Without lag counts: they scan the log, and callers poll this often.
  auto statuses = projection_status(pool(), {}, false);
  if (!statuses) return std::nullopt;
  for (ProjectionStatus& status : *statuses) {
    if (status.name == name) return std::move(status);
  }
  return std::nullopt;
}

std::int64_t ProjectionTest::query_int(const std::string& sql) {
  const std::string value = query_value(database_uri_, sql);
  return value.empty() ? 0 : std::stoll(value);
}

pid_t spawn_process(const std::vector<std::string>& argv) {
  std::vector<char*> arguments;
  for (const std::string& argument : argv) arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);
  pid_t pid = 0;
  // posix_spawn, not fork: this process has threads, and only exec is safe after fork here.
  const int failed = posix_spawn(&pid, arguments[0], nullptr, nullptr, arguments.data(), environ);
  if (failed != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(failed);
    return -1;
  }
  return pid;
}

int wait_process(pid_t pid) {
  int status = 0;
  if (pid <= 0 || waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace deedkit::testing
