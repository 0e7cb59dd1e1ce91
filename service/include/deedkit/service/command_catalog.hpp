#pragma once

// The commands the HTTP API accepts, found by name ("RegisterAsset"), for any Decider.
//
// Each alternative of a decider's Command oneof becomes one command, named after its message
// type. A command is parsed from its Protobuf JSON mapping (proto field names in snake_case,
// or lowerCamelCase; unknown fields are refused), fingerprinted, and then either planned (for
// with_idempotency_in_one_statement, which writes events, outbox rows and the reply in one
// statement) or executed in the caller's unit of work (for with_idempotency).
//
// Thread-safety: fill with add() before serving; lookups and executions are then safe from
// any thread. The handlers passed to add() must outlive the catalog.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <google/protobuf/util/json_util.h>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/core/json_text.hpp"
#include "deedkit/idempotency/idempotency.hpp"
#include "deedkit/idempotency/one_statement.hpp"
#include "deedkit/outbox/outbox_writer.hpp"
#include "deedkit/service/problem.hpp"

namespace deedkit::service {

// A command parsed from a request, ready to run once.
struct ParsedCommand {
  RequestFingerprint fingerprint;
  // For with_idempotency_in_one_statement: loads and decides through an autocommit unit;
  // the plan appends the events with their outbox rows.
  std::function<Result<CommandPlan>(UnitOfWork&, const CommandContext&)> plan;
  // For with_idempotency: the whole command (events and outbox rows) in the caller's unit.
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

// The reply to a command's outcome: its rejection as a problem document, or where the
// aggregate now stands.
template <Decider D>
CommandReply reply_for(const CommandOutcome<D>& outcome, bool store_rejection) {
  CommandReply reply;
  if (outcome.rejection) {
    const Rejection& rejection = *outcome.rejection;
    const int status = status_for_rejection(rejection.code);
    reply.response.status = status;
    reply.response.headers = {{"Content-Type", kProblemContentType}};
    reply.response.body = Problem{status, "rejected/" + rejection.code,
                                  "The command was rejected", rejection.reason, rejection.code}
                              .to_json();
    reply.store = store_rejection;
    return reply;
  }

  const std::string category(D::category());
  reply.response.status = outcome.created ? 201 : 200;
  reply.response.headers = {{"Content-Type", "application/json"}};
  if (outcome.created) {
    reply.response.headers.emplace_back("Location",
                                        "/v1/" + category + "s/" + outcome.aggregate_id);
  }
  reply.response.body = "{" + json_string(category + "_id") + ":" +
                        json_string(outcome.aggregate_id) +
                        ",\"stream_id\":" + json_string(outcome.stream_id) +
                        ",\"version\":" + std::to_string(outcome.version) + "}";
  return reply;
}

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
      ready.plan = [&handler, command, store_rejection](
                       UnitOfWork& reads, const CommandContext& context) -> Result<CommandPlan> {
        auto outcome = handler.plan(reads, command, context);
        if (!outcome) return std::unexpected(outcome.error());

        CommandPlan plan;
        plan.reply = reply_for<D>(*outcome, store_rejection);
        if (outcome->rejection || outcome->appended.empty()) return plan;

        plan.append = PlannedAppend{outcome->stream_id, outcome->version_read, {}};
        plan.writes_from_appended = {outbox_insert_from_appended_sql()};
        const auto done = std::make_shared<CommandOutcome<D>>(std::move(*outcome));
        plan.append->events = done->appended;
        plan.after_commit = [&handler, done](UnitOfWork& unit) {
          return handler.save_snapshot_if_due(unit, *done);
        };
        return plan;
      };
      ready.execute = [&handler, command = std::move(command), store_rejection](
                          UnitOfWork& unit, const CommandContext& context) -> Result<CommandReply> {
        auto outcome = handler.handle(unit, command, context);
        if (!outcome) return std::unexpected(outcome.error());
        if (outcome->rejection) return reply_for<D>(*outcome, store_rejection);

        const auto first_version =
            outcome->version - static_cast<std::int64_t>(outcome->appended.size()) + 1;
        if (auto written = write_outbox_rows(unit, outcome->stream_id, first_version,
                                             outcome->appended);
            !written) {
          return std::unexpected(written.error());
        }
        return reply_for<D>(*outcome, store_rejection);
      };
      return ready;
    };
    entries_.emplace(name, std::move(entry));
  }
}

}  // namespace deedkit::service
