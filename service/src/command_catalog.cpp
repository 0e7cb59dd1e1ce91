#include "deedkit/service/command_catalog.hpp"

#include <array>

namespace deedkit::service {

int status_for_rejection(const std::string& code) {
  if (code.ends_with("_not_found")) return 404;

  // NOTE: deciders check a command's own fields before the state, and these are the codes
  // of those checks: the request was malformed rather than refused by a business rule.
  static constexpr std::array kInputCodes = {
      "missing_command",   "missing_id",          "invalid_id",         "non_positive_amount",
      "invalid_currency",  "missing_reason",      "text_too_long",      "unknown_asset_kind",
      "empty_name",        "incomplete_address",  "invalid_country_code", "invalid_date",
      "invalid_period",    "control_character",
  };
  for (const char* input_code : kInputCodes) {
    if (code == input_code) return 400;
  }
  return 409;
}

Result<void> parse_json_message(std::string_view json, google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &message, options);
  if (!status.ok()) {
    return fail(ErrorCode::kInvalidArgument,
                "invalid " + message.GetDescriptor()->name() + " JSON: " +
                    std::string(status.message()));
  }
  return {};
}

std::string to_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace deedkit::service
