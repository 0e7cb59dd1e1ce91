// The relay without a broker: each message becomes one JSON line on an output stream
// (stdout by default), written and flushed before it counts as published.

#include <cerrno>
#include <cstring>
#include <limits>

#include "internal/publisher.hpp"

namespace deedkit::internal {

namespace {

class StdoutPublisher final : public Publisher {
 public:
  StdoutPublisher(std::FILE* output, OutcomeInbox& inbox) : output_(output), inbox_(inbox) {}

  Result<void> connect() override {
    if (broken_) {
      return fail(ErrorCode::kFailedPrecondition,
                  "the JSON lines output is closed: " + broken_reason_);
    }
    return {};
  }
  bool connected() const override { return !broken_; }
  void disconnect() override {}
  std::size_t max_message_size() const override {
    return std::numeric_limits<std::size_t>::max();
  }
  EnvelopeFormat format() const override { return EnvelopeFormat::kJson; }

  Result<void> publish(const OutboundMessage& message) override {
    if (broken_) return fail(ErrorCode::kUnavailable, "the JSON lines output is closed");
    const std::string line = json_line(message) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), output_) != line.size() ||
        std::fflush(output_) != 0) {
      broken_ = true;
      broken_reason_ = std::strerror(errno);
      return fail(ErrorCode::kUnavailable, "cannot write JSON line: " + broken_reason_);
    }
    inbox_.push({message.message_id, PublishOutcome::Kind::kStored, {}});
    return {};
  }

 private:
  std::FILE* output_;
  OutcomeInbox& inbox_;
  bool broken_ = false;
  std::string broken_reason_;
};

}  // namespace

std::unique_ptr<Publisher> make_stdout_publisher(std::FILE* output, OutcomeInbox& inbox) {
  return std::make_unique<StdoutPublisher>(output, inbox);
}

}  // namespace deedkit::internal
