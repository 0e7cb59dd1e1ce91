#include "private_nats.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>

namespace deedkit::cli {

namespace fs = std::filesystem;

namespace {

// Debian installs nats-server in /usr/sbin; other builds put it in /usr/bin.
std::optional<std::string> nats_server_binary() {
  for (const char* candidate : {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                "/usr/local/bin/nats-server"}) {
    if (fs::exists(candidate)) return std::string(candidate);
  }
  return std::nullopt;
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

bool accepts_connections(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected =
      ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

std::optional<PrivateNats> PrivateNats::start(const std::string& folder) {
  const std::optional<std::string> binary = nats_server_binary();
  if (!binary) {
    spdlog::info("nats: nats-server is not installed; relayed messages are printed instead");
    return std::nullopt;
  }
  const fs::path store = fs::absolute(folder).lexically_normal() / ".deedkit" / "nats";
  fs::create_directories(store);
  const int port = free_loopback_port();
  const std::string log = (store / "nats-server.log").string();

  const pid_t child = ::fork();
  if (child == 0) {
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    const std::string port_text = std::to_string(port);
    ::execl(binary->c_str(), binary->c_str(), "-a", "127.0.0.1", "-p", port_text.c_str(),
            "-js", "-sd", store.c_str(), nullptr);
    ::_exit(127);
  }

  // The server is ready when it accepts a connection; it normally takes a few milliseconds.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!accepts_connections(port)) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child ||
        std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      spdlog::warn("nats: the private nats-server did not start (see {}); printing instead",
                   log);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  spdlog::info("nats: started a private nats-server with JetStream at {}", url);
  return PrivateNats(child, url);
}

PrivateNats::PrivateNats(PrivateNats&& other) noexcept
    : pid_(other.pid_), url_(std::move(other.url_)) {
  other.pid_ = -1;
}

PrivateNats::~PrivateNats() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

}  // namespace deedkit::cli
