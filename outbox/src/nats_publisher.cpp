// Publishing to NATS JetStream through nats.c's asynchronous JetStream publish.
//
// NOTE: the connection never reconnects by itself (AllowReconnect is off). With reconnects,
// nats.c keeps publishing into a buffer and flushes it to the new connection, while messages
// written to the old socket just before it broke may be lost: version v could vanish while
// v+1 arrives. Here a broken connection is simply closed; the relay then fails everything in
// flight, connects again and republishes from the first unacknowledged row of each stream.

#include <atomic>
#include <cstring>
#include <memory>

#include <nats/nats.h>
#include <spdlog/fmt/ranges.h>

#include "internal/publisher.hpp"
#include "internal/relay_log.hpp"

namespace deedkit::internal {

namespace {

struct OptionsDeleter {
  void operator()(natsOptions* options) const { natsOptions_Destroy(options); }
};
struct ConnectionDeleter {
  void operator()(natsConnection* connection) const { natsConnection_Destroy(connection); }
};
struct ContextDeleter {
  void operator()(jsCtx* context) const { jsCtx_Destroy(context); }
};
struct StreamInfoDeleter {
  void operator()(jsStreamInfo* info) const { jsStreamInfo_Destroy(info); }
};
struct MessageGuard {
  natsMsg*& message;
  ~MessageGuard() { natsMsg_Destroy(message); }
};

std::string describe(natsStatus status) {
  std::string text = natsStatus_GetText(status);
  if (const char* detail = nats_GetLastError(nullptr); detail && *detail && text != detail) {
    text += std::string(" (") + detail + ")";
  }
  return text;
}

std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> list;
  std::size_t start = 0;
  while (start <= urls.size()) {
    const std::size_t comma = urls.find(',', start);
    std::string url = urls.substr(start, comma == std::string::npos ? comma : comma - start);
    if (!url.empty()) list.push_back(std::move(url));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return list;
}

class NatsPublisher final : public Publisher {
 public:
  NatsPublisher(NatsPublisherOptions options, OutcomeInbox& inbox)
      : options_(std::move(options)), inbox_(inbox) {}
  ~NatsPublisher() override { disconnect(); }

  Result<void> connect() override;
  bool connected() const override;
  void disconnect() override;
  std::size_t max_message_size() const override { return max_message_size_; }
  EnvelopeFormat format() const override { return options_.format; }
  Result<void> publish(const OutboundMessage& message) override;

 private:
  static void on_ack(jsCtx*, natsMsg* message, jsPubAck* ack, jsPubAckErr* error,
                     void* closure);
  static void on_connection_lost(natsConnection*, void* closure);
  Result<void> open_connection();
  Result<void> ensure_stream();
  Result<void> check_stream(const jsStreamConfig& config);

  NatsPublisherOptions options_;
  OutcomeInbox& inbox_;
  std::unique_ptr<natsConnection, ConnectionDeleter> connection_;
  std::unique_ptr<jsCtx, ContextDeleter> jetstream_;
  std::size_t max_message_size_ = 0;
  bool warned_duplicate_window_ = false;
};

// Runs on a nats.c thread. The inbox outlives every connection (the relay owns it and
// destroys the publisher first).
// NOTE: after a reconnect an acknowledgement from the previous connection can still arrive
// for a message that is in flight again. Applying it is harmless: both attempts carry the
// same message id and bytes, so "stored" is true of either, and a failure only causes one
// more re-publish.
void NatsPublisher::on_ack(jsCtx*, natsMsg* message, jsPubAck* ack, jsPubAckErr* error,
                           void* closure) {
  auto* inbox = static_cast<OutcomeInbox*>(closure);
  try {
    PublishOutcome outcome;
    const char* id = nullptr;
    if (natsMsgHeader_Get(message, "Nats-Msg-Id", &id) == NATS_OK && id) outcome.message_id = id;

    if (ack) {
      outcome.kind = ack->Duplicate ? PublishOutcome::Kind::kDuplicate
                                    : PublishOutcome::Kind::kStored;
    } else if (error) {
      outcome.reason = error->ErrText ? error->ErrText : natsStatus_GetText(error->Err);
      if (error->ErrCode != 0) {
        outcome.kind = classify_refusal(error->ErrCode);
        outcome.reason += " (JetStream error " + std::to_string(error->ErrCode) + ")";
      } else {
        outcome.kind = PublishOutcome::Kind::kLost;
      }
    }
    natsMsg_Destroy(message);
    inbox->push(std::move(outcome));
  } catch (...) {
    // Out of memory in a C callback: the relay times the message out and publishes it again.
    natsMsg_Destroy(message);
  }
}

void NatsPublisher::on_connection_lost(natsConnection*, void* closure) {
  static_cast<OutcomeInbox*>(closure)->wake();
}

Result<void> NatsPublisher::connect() {
  disconnect();
  if (auto opened = open_connection(); !opened) return opened;
  if (auto stream = ensure_stream(); !stream) {
    disconnect();
    return stream;
  }
  return {};
}

Result<void> NatsPublisher::open_connection() {
  natsOptions* raw_options = nullptr;
  if (natsOptions_Create(&raw_options) != NATS_OK) {
    return fail(ErrorCode::kInternal, "cannot create NATS options: out of memory");
  }
  std::unique_ptr<natsOptions, OptionsDeleter> nats_options(raw_options);

  const std::vector<std::string> urls = split_urls(options_.url);
  std::vector<const char*> servers;
  for (const std::string& url : urls) servers.push_back(url.c_str());
  natsStatus status = natsOptions_SetServers(nats_options.get(), servers.data(),
                                             static_cast<int>(servers.size()));
  if (status != NATS_OK) {
    return fail(ErrorCode::kInvalidArgument, "bad NATS URL: " + describe(status));
  }
  natsOptions_SetName(nats_options.get(), "deedkit-relay");
  natsOptions_SetAllowReconnect(nats_options.get(), false);
  natsOptions_SetTimeout(nats_options.get(), 2000);
  // A server that hangs without closing the socket is noticed after about three pings.
  natsOptions_SetPingInterval(nats_options.get(), 2000);
  natsOptions_SetMaxPingsOut(nats_options.get(), 2);
  natsOptions_SetClosedCB(nats_options.get(), on_connection_lost, &inbox_);
  natsOptions_SetDisconnectedCB(nats_options.get(), on_connection_lost, &inbox_);

  natsConnection* raw_connection = nullptr;
  status = natsConnection_Connect(&raw_connection, nats_options.get());
  if (status != NATS_OK) {
    return fail(ErrorCode::kUnavailable, "cannot connect to NATS: " + describe(status));
  }
  connection_.reset(raw_connection);

  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = 5000;
  js_options.PublishAsync.MaxPending = options_.max_in_flight;
  js_options.PublishAsync.AckHandler = &NatsPublisher::on_ack;
  js_options.PublishAsync.AckHandlerClosure = &inbox_;
  jsCtx* raw_context = nullptr;
  status = natsConnection_JetStream(&raw_context, connection_.get(), &js_options);
  if (status != NATS_OK) {
    connection_.reset();
    return fail(ErrorCode::kUnavailable, "cannot open a JetStream context: " + describe(status));
  }
  jetstream_.reset(raw_context);
  max_message_size_ = static_cast<std::size_t>(natsConnection_GetMaxPayload(connection_.get()));
  return {};
}

Result<void> NatsPublisher::ensure_stream() {
  jsStreamInfo* raw_info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&raw_info, jetstream_.get(),
                                       options_.stream_name.c_str(), nullptr, &js_error);
  std::unique_ptr<jsStreamInfo, StreamInfoDeleter> info(raw_info);
  if (status == NATS_OK) return check_stream(*info->Config);
  if (status != NATS_NOT_FOUND && js_error != JSStreamNotFoundErr) {
    return fail(ErrorCode::kUnavailable, "cannot look up JetStream stream " +
                                             options_.stream_name + ": " + describe(status));
  }

  std::vector<const char*> subjects;
  for (const std::string& subject : options_.stream_subjects) subjects.push_back(subject.c_str());
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = options_.stream_name.c_str();
  config.Subjects = subjects.data();
  config.SubjectsLen = static_cast<int>(subjects.size());
  config.Storage = js_FileStorage;
  config.Retention = js_LimitsPolicy;
  config.Discard = js_DiscardOld;
  config.Duplicates = std::chrono::nanoseconds(options_.duplicate_window).count();

  raw_info = nullptr;
  status = js_AddStream(&raw_info, jetstream_.get(), &config, nullptr, &js_error);
  info.reset(raw_info);
  if (status == NATS_OK) {
    relay_log().info("created JetStream stream {} (subjects {}, duplicate window {} s)",
                     options_.stream_name, fmt::join(options_.stream_subjects, ", "),
                     options_.duplicate_window.count());
    return check_stream(*info->Config);
  }
  if (js_error == JSStreamNameExistErr) {
    return fail(ErrorCode::kUnavailable, "JetStream stream " + options_.stream_name +
                                             " was created concurrently; checking it again");
  }
  return fail(ErrorCode::kUnavailable,
              "cannot create JetStream stream " + options_.stream_name + ": " + describe(status));
}

Result<void> NatsPublisher::check_stream(const jsStreamConfig& config) {
  for (const std::string& wanted : options_.stream_subjects) {
    bool covered = false;
    for (int i = 0; i < config.SubjectsLen && !covered; ++i) {
      covered = subject_covers(config.Subjects[i], wanted);
    }
    if (!covered) {
      return fail(ErrorCode::kFailedPrecondition,
                  "JetStream stream " + options_.stream_name + " does not take subject " +
                      wanted + "; add it to the stream or configure another stream name");
    }
  }

  const auto window = std::chrono::nanoseconds(config.Duplicates);
  if (window < options_.duplicate_window && !warned_duplicate_window_) {
    warned_duplicate_window_ = true;
    relay_log().warn(
        "JetStream stream {} has a duplicate window of {} s, shorter than the {} s the relay "
        "wants: a row re-published after that window (after a crash or outage) is stored "
        "twice; raise the stream's duplicate_window",
        options_.stream_name, std::chrono::duration_cast<std::chrono::seconds>(window).count(),
        options_.duplicate_window.count());
  }

  // The stream's own limit applies on top of the server's max_payload.
  if (config.MaxMsgSize > 0) {
    max_message_size_ =
        std::min(max_message_size_, static_cast<std::size_t>(config.MaxMsgSize));
  }
  return {};
}

bool NatsPublisher::connected() const {
  return connection_ && natsConnection_Status(connection_.get()) == NATS_CONN_STATUS_CONNECTED;
}

void NatsPublisher::disconnect() {
  jetstream_.reset();
  if (connection_) natsConnection_Close(connection_.get());
  connection_.reset();
}

Result<void> NatsPublisher::publish(const OutboundMessage& message) {
  if (!jetstream_) return fail(ErrorCode::kUnavailable, "not connected to NATS");
  if (message.wire_size() > max_message_size_) {
    return fail(ErrorCode::kInvalidArgument,
                "message of " + std::to_string(message.wire_size()) +
                    " bytes exceeds the broker's limit of " + std::to_string(max_message_size_));
  }

  // nats.c takes the message on a successful publish and clears the pointer; until then it
  // is ours to destroy (natsMsg_Destroy ignores a null pointer).
  natsMsg* raw_message = nullptr;
  const MessageGuard guard{raw_message};
  natsStatus status = natsMsg_Create(&raw_message, message.subject.c_str(), nullptr,
                                     message.body.data(), static_cast<int>(message.body.size()));
  for (const auto& [key, value] : message.headers) {
    if (status == NATS_OK) status = natsMsgHeader_Set(raw_message, key.c_str(), value.c_str());
  }
  if (status != NATS_OK) {
    return fail(ErrorCode::kInternal, "cannot build NATS message: " + describe(status));
  }

  jsPubOptions publish_options;
  jsPubOptions_Init(&publish_options);
  publish_options.MaxWait = options_.ack_timeout.count();
  status = js_PublishMsgAsync(jetstream_.get(), &raw_message, &publish_options);
  if (status == NATS_OK) return {};
  if (status == NATS_MAX_PAYLOAD) {
    return fail(ErrorCode::kInvalidArgument, "refused by the client: " + describe(status));
  }
  return fail(ErrorCode::kUnavailable, "cannot publish to NATS: " + describe(status));
}

}  // namespace

PublishOutcome::Kind classify_refusal(int jetstream_error) {
  switch (jetstream_error) {
    case JSStreamMessageExceedsMaximumErr:
      return PublishOutcome::Kind::kTooLarge;
    case JSAccountResourcesExceededErr:
    case JSClusterNoPeersErr:
    case JSClusterNotAvailErr:
    case JSClusterNotLeaderErr:
    case JSInsufficientResourcesErr:
    case JSMemoryResourcesExceededErr:
    case JSStorageResourcesExceededErr:
    case JSNotEnabledForAccountErr:
    case JSStreamNotFoundErr:
    case JSNotEnabledErr:
    case JSStreamStoreFailedErr:  // also "maximum messages exceeded" under discard new
    case JSStreamSealedErr:
    case JSStreamOfflineErr:
      return PublishOutcome::Kind::kBrokerDown;
    default:
      return PublishOutcome::Kind::kRejected;
  }
}

std::unique_ptr<Publisher> make_nats_publisher(NatsPublisherOptions options,
                                               OutcomeInbox& inbox) {
  return std::make_unique<NatsPublisher>(std::move(options), inbox);
}

}  // namespace deedkit::internal
