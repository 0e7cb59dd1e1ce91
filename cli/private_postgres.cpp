#include "private_postgres.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <spdlog/spdlog.h>

namespace deedkit::cli {

namespace fs = std::filesystem;

namespace {

const std::string kPostgresBin = "/usr/lib/postgresql/15/bin/";

bool running_as_root() { return ::geteuid() == 0; }

// Runs a program (as the postgres user when we are root), waits, and returns its status.
// Output goes to `log_path` so failures can be shown to the operator.
int run_program(std::vector<std::string> arguments, const std::string& log_path) {
  if (running_as_root()) {
    arguments.insert(arguments.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
  }
  const pid_t child = ::fork();
  if (child == 0) {
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    std::vector<char*> argv;
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

bool postgres_user_can_enter(const fs::path& folder) {
  if (!running_as_root()) return true;
  return run_program({"/usr/bin/test", "-x", folder.string(), "-a", "-w", folder.string()},
                     "/dev/null") == 0;
}

void give_to_postgres_user(const fs::path& path) {
  if (!running_as_root()) return;
  if (const passwd* user = ::getpwnam("postgres")) {
    if (::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
      spdlog::warn("private database: cannot hand {} to the postgres user", path.string());
    }
  }
}

std::string last_lines(const std::string& path, int count) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (std::size_t i = lines.size() > static_cast<std::size_t>(count) ? lines.size() - count : 0;
       i < lines.size(); ++i) {
    tail += "\n  " + lines[i];
  }
  return tail;
}

// Holds an exclusive flock on ./.deedkit/lock for its lifetime.
class FolderLock {
 public:
  explicit FolderLock(const fs::path& state_folder)
      : fd_(::open((state_folder / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FolderLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_;
};

}  // namespace

PrivateCluster locate_private_cluster(const std::string& folder) {
  const fs::path state = fs::absolute(folder).lexically_normal() / ".deedkit";
  fs::path home = state / "postgres";

  std::ifstream pointer(state / "cluster");
  if (std::string redirected; pointer && std::getline(pointer, redirected) && !redirected.empty()) {
    home = redirected;
  }

  PrivateCluster cluster;
  cluster.data_directory = (home / "data").string();
  cluster.socket_directory = home.string();
  cluster.database_uri = "host=" + cluster.socket_directory + " user=postgres dbname=deedkit";
  return cluster;
}

Result<PrivateCluster> ensure_private_cluster(const std::string& folder) {
  if (!fs::exists(kPostgresBin + "pg_ctl")) {
    return fail(ErrorCode::kFailedPrecondition,
                "PostgreSQL 15 is not installed (" + kPostgresBin +
                    "pg_ctl missing); install postgresql-15 or configure --database");
  }
  const fs::path state = fs::absolute(folder).lexically_normal() / ".deedkit";
  fs::create_directories(state);
  FolderLock lock(state);

  PrivateCluster cluster = locate_private_cluster(folder);
  if (!fs::exists(fs::path(cluster.data_directory) / "PG_VERSION")) {
    fs::path home = state / "postgres";
    fs::create_directories(home);
    give_to_postgres_user(state);
    give_to_postgres_user(home);
    if (!postgres_user_can_enter(home)) {
      // NOTE: the socket path must also stay under 107 bytes, which /tmp keeps it.
      const auto hash = std::hash<std::string>{}(state.string());
      home = fs::path("/tmp") / ("deedkit-" + std::to_string(hash % 1000000007));
      fs::create_directories(home);
      give_to_postgres_user(home);
      std::ofstream(state / "cluster") << home.string() << "\n";
      spdlog::info("private database: {} is not reachable by the postgres user; using {}",
                   state.string(), home.string());
      cluster = locate_private_cluster(folder);
    }
    const std::string log = cluster.socket_directory + "/initdb.log";
    spdlog::info("private database: creating a PostgreSQL 15 cluster in {}",
                 cluster.data_directory);
    if (run_program({kPostgresBin + "initdb", "-D", cluster.data_directory, "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"},
                    log) != 0) {
      return fail(ErrorCode::kUnavailable, "initdb failed; see " + log + last_lines(log, 5));
    }
  }

  const std::string server_log = cluster.socket_directory + "/postgres.log";
  if (run_program({kPostgresBin + "pg_ctl", "-D", cluster.data_directory, "status"},
                  "/dev/null") != 0) {
    const std::string options = "-c listen_addresses='' -c unix_socket_directories='" +
                                cluster.socket_directory + "' -c max_connections=200";
    if (run_program({kPostgresBin + "pg_ctl", "-D", cluster.data_directory, "-l", server_log,
                     "-w", "-t", "60", "-o", options, "start"},
                    cluster.socket_directory + "/pg_ctl.log") != 0) {
      return fail(ErrorCode::kUnavailable,
                  "the private PostgreSQL did not start; see " + server_log +
                      last_lines(server_log, 5));
    }
    spdlog::info("private database: started PostgreSQL at {}", cluster.socket_directory);
  }

  try {
    pqxx::connection admin("host=" + cluster.socket_directory + " user=postgres dbname=postgres");
    pqxx::nontransaction tx(admin);
    if (tx.exec("SELECT 1 FROM pg_database WHERE datname = 'deedkit'").empty()) {
      tx.exec("CREATE DATABASE deedkit");
    }
  } catch (const std::exception& error) {
    return fail(ErrorCode::kUnavailable,
                std::string("cannot prepare the private database: ") + error.what());
  }
  return cluster;
}

std::string private_cluster_status(const std::string& folder) {
  const PrivateCluster cluster = locate_private_cluster(folder);
  if (!fs::exists(fs::path(cluster.data_directory) / "PG_VERSION")) return "not created";
  std::ifstream pid_file(fs::path(cluster.data_directory) / "postmaster.pid");
  std::string pid;
  if (pid_file && std::getline(pid_file, pid) && ::kill(std::stoi(pid), 0) == 0) {
    return "running (pid " + pid + ") at " + cluster.socket_directory + ", data in " +
           cluster.data_directory;
  }
  return "stopped (data in " + cluster.data_directory + ")";
}

Result<void> stop_private_cluster(const std::string& folder) {
  const PrivateCluster cluster = locate_private_cluster(folder);
  if (!fs::exists(fs::path(cluster.data_directory) / "postmaster.pid")) return {};
  const std::string log = cluster.socket_directory + "/pg_ctl.log";
  if (run_program({kPostgresBin + "pg_ctl", "-D", cluster.data_directory, "-m", "fast", "-w",
                   "stop"},
                  log) != 0) {
    return fail(ErrorCode::kInternal, "pg_ctl stop failed; see " + log);
  }
  return {};
}

}  // namespace deedkit::cli
