#pragma once

// Writing JSON text by hand for the few small documents deedkit builds itself (event
// metadata, log lines). Protobuf's JSON mapping handles commands and events.

#include <string>
#include <string_view>

namespace deedkit {

// Appends `value` as a quoted JSON string, escaping quotes, backslashes and control
// characters. Bytes >= 0x80 pass through unchanged (the input is expected to be UTF-8).
void append_json_string(std::string& out, std::string_view value);

inline std::string json_string(std::string_view value) {
  std::string out;
  append_json_string(out, value);
  return out;
}

}  // namespace deedkit
