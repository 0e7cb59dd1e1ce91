#pragma once

// Independent judges of text for the fuzz targets' properties: Protobuf's strict JSON parser
// and its proto3 UTF-8 check, rather than anything in deedkit's own code.

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace deedkit::fuzz {

// Protobuf logs an ERROR line each time is_utf8 serialises invalid UTF-8, which is the point
// of asking; call once before fuzzing so the log does not drown the findings.
inline void silence_protobuf_log() { google::protobuf::SetLogHandler(nullptr); }

// True when `text` is well-formed UTF-8: a proto3 string field refuses anything else on parse.
inline bool is_utf8(std::string_view text) {
  google::protobuf::Value carrier;
  carrier.set_string_value(std::string(text));
  google::protobuf::Value parsed;
  return parsed.ParseFromString(carrier.SerializeAsString());
}

// The JSON value `json` holds, or nullopt when it is not a JSON document any strict client
// could read: Protobuf's parser checks syntax and UTF-8, and raw control characters, which
// it lets through inside strings, are refused here.
inline std::optional<google::protobuf::Value> read_json(const std::string& json) {
  const bool raw_control = std::any_of(json.begin(), json.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 && c != ' ' && c != '\t' && c != '\n' &&
           c != '\r';
  });
  if (raw_control) return std::nullopt;
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(json, &value).ok()) return std::nullopt;
  return value;
}

}  // namespace deedkit::fuzz
