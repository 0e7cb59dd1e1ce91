#include "termination.hpp"

#include <csignal>

#include <pthread.h>

namespace deedkit::cli {

namespace {

sigset_t termination_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

}  // namespace

void block_termination_signals() {
  const sigset_t signals = termination_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int wait_for_termination_signal() {
  const sigset_t signals = termination_signals();
  int received = 0;
  sigwait(&signals, &received);
  return received;
}

}  // namespace deedkit::cli
