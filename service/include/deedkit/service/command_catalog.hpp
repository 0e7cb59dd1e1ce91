#pragma once

// The commands the HTTP API accepts, found by name ("RegisterAsset"), for any Decider.
//
// Each alternative of a decider's Command oneof becomes one command, named after its message
// type. A command is parsed from its Protobuf JSON mapping (proto field names in snake_case,
// or lowerCamelCase; unknown fields are refused), fingerprinted, and executed in the caller's
// unit of work: handler, then one outbox row per appended event, then the reply.
//
// Thread-safety: fill with add() before serving; lookups and executions are then safe from
// any thread. The handlers passed to add() must outlive the catalog.

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/core/json_text.hpp"
#include "deedkit/idempotency/idempotency.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "deedkit/service/problem.hpp"

namespace deedkit::service {

// A command parsed from a request, ready to run once.
struct ParsedCommand {
  RequestFingerprint fingerprint;
  std::function<Result<CommandReply>(UnitOfWork&, const CommandContext&)> execute;
};

struct CommandEntry {
  std::string name;
  std::string category;
  // Parses the JSON body. kInvalidArgument names the offending field or the JSON error.
  std::function<Result<ParsedCommand>(std::string_view json)> parse;
};

// The HTTP status a business rejection maps to: 404 for "<thing>_not_found", 400 for
// rejections of malformed input (the command's own fields), 409 for business rules.
int status_for_rejection(const std::string& code);

// Parses Protobuf JSON into `message`. kInvalidArgument with protobuf's reason otherwise.
Result<void> parse_json_message(std::string_view json, google::protobuf::Message& message);

// Protobuf JSON with proto field names, enums as names, and zero values omitted.
std::string to_json(const google::protobuf::Message& message);

class CommandCatalog {
 public:
  // Commands whose rejections are stored with the idempotency key, so a retry replays the
  // rejection instead of deciding again (see docs/http-api.md).
  void store_rejections_of(std::set<std::string> command_names) {
    store_rejections_ = std::move(command_names);
  }

  template <Decider D>
  void add(const CommandHandler<D>& handler);

  const CommandEntry* find(std::string_view name) const {
    const auto found = entries_.find(std::string(name));
    return found == entries_.end() ? nullptr : &found->second;
  }

 private:
  std::map<std::string, CommandEntry> entries_;
  std::set<std::string> store_rejections_;
};

template <Decider D>
void CommandCatalog::add(const CommandHandler<D>& handler) {
  const auto* oneof = D::Command::descriptor()->oneof_decl(0);
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    const std::string name = field->message_type()->name();
    const bool store_rejection = store_rejections_.contains(name);

    CommandEntry entry;
    entry.name = name;
    entry.category = std::string(D::category());
    entry.parse = [&handler, field, name, store_rejection](
                      std::string_view json) -> Result<ParsedCommand> {
      typename D::Command command;
      auto* inner = command.GetReflection()->MutableMessage(&command, field);
      if (auto parsed = parse_json_message(json, *inner); !parsed) {
        return std::unexpected(parsed.error());
      }

      ParsedCommand ready;
      ready.fingerprint = fingerprint_request(name, *inner);
      ready.execute = [&handler, command = std::move(command), store_rejection](
                          UnitOfWork& unit, const CommandContext& context) -> Result<CommandReply> {
        auto outcome = handler.handle(unit, command, context);
        if (!outcome) return std::unexpected(outcome.error());

        CommandReply reply;
        if (outcome->rejection) {
          const Rejection& rejection = *outcome->rejection;
          const int status = status_for_rejection(rejection.code);
          reply.response.status = status;
          reply.response.headers = {{"Content-Type", kProblemContentType}};
          reply.response.body =
              Problem{status, "rejected/" + rejection.code, "The command was rejected",
                      rejection.reason, rejection.code}
                  .to_json();
          reply.store = store_rejection;
          return reply;
        }

        const auto first_version =
            outcome->version - static_cast<std::int64_t>(outcome->appended.size()) + 1;
        if (auto written = write_outbox_rows(unit, outcome->stream_id, first_version,
                                             outcome->appended);
            !written) {
          return std::unexpected(written.error());
        }

        const std::string id_field = std::string(D::category()) + "_id";
        reply.response.status = outcome->created ? 201 : 200;
        reply.response.headers = {{"Content-Type", "application/json"}};
        if (outcome->created) {
          reply.response.headers.emplace_back(
              "Location", "/v1/" + std::string(D::category()) + "s/" + outcome->aggregate_id);
        }
        reply.response.body = "{" + json_string(id_field) + ":" +
                              json_string(outcome->aggregate_id) + ",\"stream_id\":" +
                              json_string(outcome->stream_id) +
                              ",\"version\":" + std::to_string(outcome->version) + "}";
        return reply;
      };
      return ready;
    };
    entries_.emplace(name, std::move(entry));
  }
}

}  // namespace deedkit::service
