#pragma once

// A private nats-server with JetStream for `deedkit up` and `deedkit demo`, when no NATS is
// configured and the nats-server binary is installed. It listens on a free loopback port,
// keeps its JetStream store in ./.deedkit/nats, and stops with the process that started it.

#include <sys/types.h>

#include <optional>
#include <string>

namespace deedkit::cli {

class PrivateNats {
 public:
  // Starts nats-server; nullopt when it is not installed or does not come up (the reason is
  // logged), so callers can fall back to printing messages.
  static std::optional<PrivateNats> start(const std::string& folder);

  PrivateNats(PrivateNats&& other) noexcept;
  PrivateNats& operator=(PrivateNats&&) = delete;
  PrivateNats(const PrivateNats&) = delete;
  ~PrivateNats();

  const std::string& url() const { return url_; }

 private:
  PrivateNats(pid_t pid, std::string url) : pid_(pid), url_(std::move(url)) {}
  pid_t pid_;
  std::string url_;
};

}  // namespace deedkit::cli
