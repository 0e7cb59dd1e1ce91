#pragma once

// Waiting for SIGINT or SIGTERM without a signal handler: the signals are blocked in every
// thread (call block_termination_signals() before starting any) and one thread collects
// them with sigwait, so shutdown runs as ordinary code, not in a handler.

namespace deedkit::cli {

void block_termination_signals();

// Blocks until SIGINT or SIGTERM arrives; returns the signal number.
int wait_for_termination_signal();

}  // namespace deedkit::cli
