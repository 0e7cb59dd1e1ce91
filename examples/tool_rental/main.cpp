// tool_rental: an application with its own aggregate on deedkit.
//
//   tool_rental                 decide and evolve in memory only
//   tool_rental DATABASE_URI    the same story on PostgreSQL: migrations, idempotent
//                               registration, a rejected double rental, a reload of the state
//
// It prints what happened and exits 0 only when every step behaved as the rules say, so the
// test suite can run it against the installed package.

#include <cstdio>
#include <cstdlib>
#include <string>

#include <deedkit/commands/command_handler.hpp>
#include <deedkit/core/ids.hpp>
#include <deedkit/eventstore/connection_pool.hpp>
#include <deedkit/eventstore/migrations.hpp>
#include <deedkit/eventstore/unit_of_work.hpp>
#include <deedkit/idempotency/idempotency.hpp>

#include "tool_decider.hpp"

namespace {

using toolrental::ToolDecider;
using Handler = deedkit::CommandHandler<ToolDecider>;

int failed(const std::string& what) {
  std::fprintf(stderr, "tool_rental: %s\n", what.c_str());
  return 1;
}

ToolDecider::Command register_drill(const std::string& tool_id) {
  ToolDecider::Command command;
  auto& body = *command.mutable_register_tool();
  body.set_tool_id(tool_id);
  body.set_name("Hammer drill");
  body.set_daily_rate_minor(1250);
  body.set_currency("EUR");
  return command;
}

ToolDecider::Command rent(const std::string& tool_id, const std::string& renter_id, int days) {
  ToolDecider::Command command;
  auto& body = *command.mutable_rent_tool();
  body.set_tool_id(tool_id);
  body.set_renter_id(renter_id);
  body.set_days(days);
  return command;
}

ToolDecider::Command give_back(const std::string& tool_id) {
  ToolDecider::Command command;
  command.mutable_return_tool()->set_tool_id(tool_id);
  return command;
}

// Pure use of the decider: no storage at all.
int run_in_memory() {
  const std::string tool_id = deedkit::to_string(deedkit::new_uuid());
  const std::string renter = deedkit::to_string(deedkit::new_uuid());
  auto state = ToolDecider::initial_state();

  for (const auto& command : {register_drill(tool_id), rent(tool_id, renter, 3)}) {
    auto decided = ToolDecider::decide(command, state);
    if (!decided) return failed("unexpected rejection: " + decided.error().reason);
    for (const auto& event : *decided) state = ToolDecider::evolve(std::move(state), event);
  }

  const auto again = ToolDecider::decide(rent(tool_id, renter, 1), state);
  if (again || again.error().code != "tool_already_rented") {
    return failed("a rented tool was rented again");
  }
  std::printf("in memory: %s charged %lld minor units, second rental refused (%s)\n",
              state.name().c_str(), static_cast<long long>(state.charged_minor()),
              again.error().code.c_str());
  return 0;
}

// Registers through with_idempotency, the transactional path: the body runs in the unit of
// work that also holds the claim. (deedkit serve plans and writes in one statement instead,
// with_idempotency_in_one_statement; both keep the same promises.)
deedkit::Result<deedkit::IdempotentResult> register_once(deedkit::ConnectionPool& pool,
                                                         const Handler& handler,
                                                         const std::string& key,
                                                         const ToolDecider::Command& command) {
  const auto fingerprint = deedkit::fingerprint_request("RegisterTool", command);
  return deedkit::with_idempotency(
      pool, {"example-client", key}, "RegisterTool", fingerprint,
      [&](deedkit::UnitOfWork& unit) -> deedkit::Result<deedkit::CommandReply> {
        auto outcome = handler.handle(unit, command, {.principal = "example-client"});
        if (!outcome) return std::unexpected(outcome.error());
        if (outcome->rejection) {
          return deedkit::CommandReply{{409, {}, outcome->rejection->code}, false};
        }
        return deedkit::CommandReply{{201, {}, outcome->aggregate_id}, true};
      });
}

int run_on_database(const std::string& database_uri) {
  if (auto migrated = deedkit::migrate(database_uri); !migrated) {
    return failed("migrate: " + migrated.error().to_string());
  }
  deedkit::ConnectionPool pool({.database_uri = database_uri, .max_connections = 2});
  deedkit::EventStore store(pool);
  const Handler handler(store, {.snapshot_every = 2});

  const std::string tool_id = deedkit::to_string(deedkit::new_uuid());
  const std::string renter = deedkit::to_string(deedkit::new_uuid());
  const std::string key = "register-" + tool_id;

  const auto first = register_once(pool, handler, key, register_drill(tool_id));
  const auto retry = register_once(pool, handler, key, register_drill(tool_id));
  if (!first || !retry) {
    return failed("register: " + (first ? retry : first).error().to_string());
  }
  if (first->replayed || !retry->replayed || retry->response != first->response) {
    return failed("the retried registration was not a replay of the first");
  }

  const auto rented = handler.handle(rent(tool_id, renter, 4), {.principal = "example-client"});
  const auto rented_again = handler.handle(rent(tool_id, renter, 1), {});
  const auto returned = handler.handle(give_back(tool_id), {});
  if (!rented || rented->rejection || !returned || returned->rejection) {
    return failed("renting or returning the tool failed");
  }
  if (!rented_again || !rented_again->rejection ||
      rented_again->rejection->code != "tool_already_rented") {
    return failed("a rented tool was rented again");
  }

  auto unit = deedkit::UnitOfWork::begin(pool);
  if (!unit) return failed("begin: " + unit.error().to_string());
  const auto loaded = handler.load(*unit, Handler::stream_for(tool_id));
  if (!loaded) return failed("load: " + loaded.error().to_string());
  if (loaded->version != 3 || loaded->state.rentals() != 1 ||
      loaded->state.charged_minor() != 4 * 1250 || !loaded->state.renter_id().empty()) {
    return failed("the reloaded state does not match the three events appended");
  }

  std::printf("on PostgreSQL: stream %s at version %lld (snapshot at %lld), charged %lld "
              "minor units; retry replayed, double rental refused\n",
              Handler::stream_for(tool_id).c_str(), static_cast<long long>(loaded->version),
              static_cast<long long>(loaded->snapshot_version),
              static_cast<long long>(loaded->state.charged_minor()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string database_uri;
  if (argc > 1) {
    database_uri = argv[1];
  } else if (const char* from_env = std::getenv("DEEDKIT_DATABASE_URL")) {
    database_uri = from_env;
  }

  if (const int status = run_in_memory(); status != 0) return status;
  if (database_uri.empty()) return 0;
  return run_on_database(database_uri);
}
