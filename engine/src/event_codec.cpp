#include "deedkit/engine/event_codec.hpp"

#include <stdexcept>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace deedkit {

namespace {

std::string describe(const StoredEventRef& where, std::string_view event_type) {
  return "event " + std::string(where.stream_id) + "@" + std::to_string(where.stream_version) +
         " of type '" + std::string(event_type) + "'";
}

}  // namespace

EventTypeRegistry::EventTypeRegistry(const google::protobuf::Descriptor* wrapper)
    : wrapper_(wrapper), oneof_(nullptr) {
  // A malformed wrapper is a programming error in the application's .proto: crash loudly.
  if (wrapper_->oneof_decl_count() != 1) {
    throw std::logic_error(wrapper_->full_name() + " must hold exactly one oneof of events");
  }
  oneof_ = wrapper_->oneof_decl(0);
  for (int i = 0; i < oneof_->field_count(); ++i) {
    const auto* field = oneof_->field(i);
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      throw std::logic_error(wrapper_->full_name() + "." + field->name() +
                             " must be a message type");
    }
    fields_by_type_.emplace(field->message_type()->full_name(), field);
  }
}

void EventTypeRegistry::set_schema_version(const std::string& event_type, int version) {
  schema_versions_[event_type] = version;
}

void EventTypeRegistry::add_upcaster(const std::string& event_type, int from_version,
                                     Upcaster upcaster) {
  upcasters_[{event_type, from_version}] = std::move(upcaster);
}

bool EventTypeRegistry::knows(std::string_view event_type) const {
  return fields_by_type_.contains(std::string(event_type));
}

Result<EncodedEvent> EventTypeRegistry::encode(const google::protobuf::Message& wrapper) const {
  const auto* reflection = wrapper.GetReflection();
  const auto* field = reflection->GetOneofFieldDescriptor(wrapper, oneof_);
  if (!field) {
    return fail(ErrorCode::kInvalidArgument,
                "no event set in " + wrapper_->full_name() + "." + oneof_->name());
  }

  EncodedEvent encoded;
  encoded.event_type = field->message_type()->full_name();
  const auto version = schema_versions_.find(encoded.event_type);
  encoded.schema_version = version == schema_versions_.end() ? 1 : version->second;
  encoded.payload = deterministic_bytes(reflection->GetMessage(wrapper, field));
  return encoded;
}

Result<void> EventTypeRegistry::decode(const StoredEventRef& where, std::string_view event_type,
                                       int schema_version, std::string_view payload,
                                       google::protobuf::Message& wrapper) const {
  const auto field = fields_by_type_.find(std::string(event_type));
  if (field == fields_by_type_.end()) {
    return fail(ErrorCode::kDataLoss, describe(where, event_type) + ": unknown event type for " +
                                          wrapper_->full_name());
  }
  const auto known = schema_versions_.find(field->first);
  const int current = known == schema_versions_.end() ? 1 : known->second;
  if (schema_version > current || schema_version < 1) {
    return fail(ErrorCode::kDataLoss, describe(where, event_type) + ": stored schema version " +
                                          std::to_string(schema_version) +
                                          " is not one this build reads (current " +
                                          std::to_string(current) + ")");
  }

  // Upcast one step at a time: each upcaster only knows its neighbour versions.
  std::string upcast;
  std::string_view bytes = payload;
  for (int version = schema_version; version < current; ++version) {
    const auto step = upcasters_.find({field->first, version});
    if (step == upcasters_.end()) {
      return fail(ErrorCode::kDataLoss, describe(where, event_type) + ": no upcaster from " +
                                            "schema version " + std::to_string(version));
    }
    auto next = step->second(bytes);
    if (!next) {
      return fail(ErrorCode::kDataLoss, describe(where, event_type) + ": upcasting from " +
                                            std::to_string(version) +
                                            " failed: " + next.error().message);
    }
    upcast = std::move(*next);
    bytes = upcast;
  }

  wrapper.Clear();
  auto* event = wrapper.GetReflection()->MutableMessage(&wrapper, field->second);
  if (!event->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    wrapper.Clear();
    return fail(ErrorCode::kDataLoss, describe(where, event_type) +
                                          ": payload of " + std::to_string(bytes.size()) +
                                          " bytes does not parse");
  }
  return {};
}

std::string deterministic_bytes(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

}  // namespace deedkit
