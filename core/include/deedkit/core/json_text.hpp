#pragma once

// Writing JSON text by hand for the few small documents deedkit builds itself (event
// metadata, log lines). Protobuf's JSON mapping handles commands and events.

#include <string>
#include <string_view>

namespace deedkit {

// Appends `value` as a quoted JSON string, escaping quotes, backslashes and control
// characters. Well-formed UTF-8 passes through unchanged; each byte that is not part of a
// well-formed sequence becomes \ufffd (the replacement character), so the result is valid
// JSON whatever `value` holds: error messages quote client input, principals come from
// files, and neither is guaranteed to be UTF-8.
void append_json_string(std::string& out, std::string_view value);

inline std::string json_string(std::string_view value) {
  std::string out;
  append_json_string(out, value);
  return out;
}

}  // namespace deedkit
