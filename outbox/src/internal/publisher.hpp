#pragma once

// Where the relay's messages go: JetStream (nats_publisher.cpp) or JSON lines
// (stdout_publisher.cpp). A publisher hands messages over and reports each one's outcome
// later, through the OutcomeInbox the relay waits on.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "deedkit/core/error.hpp"
#include "deedkit/outbox/relay.hpp"
#include "internal/message_builder.hpp"

namespace deedkit::internal {

struct PublishOutcome {
  enum class Kind {
    kStored,     // acknowledged: stored now
    kDuplicate,  // acknowledged: JetStream had it already (a re-publish)
    kTooLarge,   // refused for its size: retrying the same bytes cannot help
    kRejected,   // refused for what it is: retried a bounded number of times
    kBrokerDown,  // refused for the broker's state (storage full, offline): may pass later
    kLost,       // no acknowledgement (timeout, connection gone): may or may not be stored
  };

  std::string message_id;
  Kind kind = Kind::kLost;
  std::string reason;  // for the failures
};

// What a JetStream error code in a negative PubAck says about the message. Codes that
// describe the broker (out of storage, stream offline or missing, a limit with "discard
// new") are kBrokerDown: every message would fail the same way, and parking each as a dead
// letter would turn one outage into thousands of letters. Any other code, including ones
// newer than this list, is held against the message itself.
PublishOutcome::Kind classify_refusal(int jetstream_error);

// A queue of outcomes that the relay's loop sleeps on. Publishers push from their own threads;
// wake() ends a wait early (stop(), a lost connection). Thread-safe.
class OutcomeInbox {
 public:
  void push(PublishOutcome outcome) {
    {
      std::lock_guard lock(mutex_);
      outcomes_.push_back(std::move(outcome));
    }
    changed_.notify_one();
  }

  void wake() {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    changed_.notify_one();
  }

  // Waits until there are outcomes, wake() was called, or `deadline`; returns the outcomes.
  std::vector<PublishOutcome> wait(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, deadline, [&] { return woken_ || !outcomes_.empty(); });
    woken_ = false;
    std::vector<PublishOutcome> taken(std::make_move_iterator(outcomes_.begin()),
                                      std::make_move_iterator(outcomes_.end()));
    outcomes_.clear();
    return taken;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<PublishOutcome> outcomes_;  // guarded by mutex_
  bool woken_ = false;                   // guarded by mutex_
};

class Publisher {
 public:
  virtual ~Publisher() = default;

  // Connects and prepares the destination (for JetStream: creates or checks the stream).
  // kUnavailable: try again later; any other error is a configuration problem.
  [[nodiscard]] virtual Result<void> connect() = 0;
  // False once the connection is gone: nothing in flight will be acknowledged any more.
  virtual bool connected() const = 0;
  // Drops the connection; outcomes still owed are never delivered.
  virtual void disconnect() = 0;

  // The largest message (OutboundMessage::wire_size) the destination accepts.
  virtual std::size_t max_message_size() const = 0;
  // The body format the destination gets.
  virtual EnvelopeFormat format() const = 0;

  // Hands a message over. On success exactly one outcome for it arrives in the inbox later
  // (possibly before publish() returns). A failure means it was not handed over: kUnavailable
  // when the connection is gone, kInvalidArgument when it is too large.
  [[nodiscard]] virtual Result<void> publish(const OutboundMessage& message) = 0;
};

struct NatsPublisherOptions {
  std::string url;
  std::string stream_name;
  std::vector<std::string> stream_subjects;
  std::chrono::seconds duplicate_window{3600};
  std::chrono::milliseconds ack_timeout{5000};
  int max_in_flight = 512;
  EnvelopeFormat format = EnvelopeFormat::kProtobuf;
};

std::unique_ptr<Publisher> make_nats_publisher(NatsPublisherOptions options,
                                               OutcomeInbox& inbox);
std::unique_ptr<Publisher> make_stdout_publisher(std::FILE* output, OutcomeInbox& inbox);

}  // namespace deedkit::internal
