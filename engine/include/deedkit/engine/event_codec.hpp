#pragma once

// Turns a decider's event wrapper into stored bytes and back.
//
// The wrapper is a Protobuf message with a single oneof whose alternatives are the concrete
// event messages. An event is stored under the concrete message's full name, with a schema
// version and its Protobuf encoding. On the way back, an event stored at an older schema
// version is passed through the registered upcasters, one version step at a time, before it
// is parsed, so an event's schema can change without rewriting history.
//
// Thread-safety: configure (set_schema_version, add_upcaster) before sharing; after that,
// encode and decode are safe from any number of threads.

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "deedkit/core/error.hpp"

namespace deedkit {

struct EncodedEvent {
  std::string event_type;  // full Protobuf name of the concrete event message
  int schema_version = 1;
  std::string payload;     // deterministic Protobuf encoding
};

// Where a stored event comes from, for error messages.
struct StoredEventRef {
  std::string_view stream_id;
  std::int64_t stream_version = 0;
};

// Rewrites the payload of one event type from schema version N to N + 1.
using Upcaster = std::function<Result<std::string>(std::string_view payload)>;

class EventTypeRegistry {
 public:
  // `wrapper` must have exactly one oneof, and every alternative must be a message type.
  explicit EventTypeRegistry(const google::protobuf::Descriptor* wrapper);

  // Declares the current schema version of `event_type` (default 1).
  void set_schema_version(const std::string& event_type, int version);
  // Registers the step from `from_version` to `from_version + 1` for `event_type`.
  void add_upcaster(const std::string& event_type, int from_version, Upcaster upcaster);

  // Encodes the event set in `wrapper`. Fails with kInvalidArgument when no event is set.
  [[nodiscard]] Result<EncodedEvent> encode(const google::protobuf::Message& wrapper) const;

  // Decodes a stored event into `wrapper` (cleared first). Fails with kDataLoss naming the
  // stream, version and type when the type is unknown, the payload does not parse, the stored
  // schema version is newer than this build knows, or an upcaster step is missing or fails.
  [[nodiscard]] Result<void> decode(const StoredEventRef& where, std::string_view event_type,
                                    int schema_version, std::string_view payload,
                                    google::protobuf::Message& wrapper) const;

  bool knows(std::string_view event_type) const;

 private:
  const google::protobuf::Descriptor* wrapper_;
  const google::protobuf::OneofDescriptor* oneof_;
  std::unordered_map<std::string, const google::protobuf::FieldDescriptor*> fields_by_type_;
  std::unordered_map<std::string, int> schema_versions_;
  std::map<std::pair<std::string, int>, Upcaster> upcasters_;
};

// Typed convenience over EventTypeRegistry for a decider's Event wrapper.
template <typename EventWrapper>
class EventCodec : public EventTypeRegistry {
 public:
  EventCodec() : EventTypeRegistry(EventWrapper::descriptor()) {}

  [[nodiscard]] Result<EventWrapper> decode(const StoredEventRef& where,
                                            std::string_view event_type, int schema_version,
                                            std::string_view payload) const {
    EventWrapper event;
    auto decoded = EventTypeRegistry::decode(where, event_type, schema_version, payload, event);
    if (!decoded) return std::unexpected(decoded.error());
    return event;
  }
};

// Deterministic Protobuf encoding (map entries sorted), so equal messages give equal bytes.
std::string deterministic_bytes(const google::protobuf::Message& message);

}  // namespace deedkit
