// Fuzz target: the HTTP API's JSON -> command decoding, and what a decoded command does next.
//
// The input is one request body. It is offered to every command the service accepts (all
// alternatives of AssetCommand and LeaseCommand, found through a CommandCatalog built the
// way HttpService builds it), and for each command name these must hold:
//
//  - parse either succeeds or fails with kInvalidArgument naming the command's message; it
//    agrees with service::parse_json_message on the same body. The 400 problem document
//    the client gets for a failure is valid JSON (UTF-8 included), whatever it sent.
//  - a parsed command fingerprints as fingerprint_request over its Protobuf form, as 64
//    lower-case hex digits; re-serialised with service::to_json and parsed again, it
//    fingerprints the same (so a client's retry of what it got back is the same request).
//  - decide, against the aggregate in each lifecycle status, never throws; input rejections
//    (HTTP 400) come out the same whatever the status, as the deciders document; rejection
//    codes are snake_case, reasons are UTF-8 text, and each rejection's problem document is
//    valid JSON. Every event decide produces encodes, decodes back to the same
//    bytes through the handler's codec (a command that is accepted must never leave a stream
//    that cannot be read back), and folds with evolve.
//
// No database is touched: the pool behind the handlers is never asked for a connection.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deedkit/core/ids.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"
#include "deedkit/service/command_catalog.hpp"
#include "fuzz_property.hpp"
#include "json_oracle.hpp"

namespace {

using deedkit::fuzz::is_utf8;
using deedkit::fuzz::read_json;
using deedkit::fuzz::require;
using deedkit::realestate::AssetDecider;
using deedkit::realestate::LeaseDecider;
namespace v1 = deedkit::realestate::v1;

constexpr std::string_view kAssetId = "5f0c6c1e-27a4-4b8e-9d1a-0c3f4e2b7a10";
constexpr std::string_view kOwnerId = "0e9b3c55-8d1f-4a62-b7e0-6f2d9a4c1b33";
constexpr std::string_view kBuyerId = "a47d2e90-13c6-4f58-8e2b-9b0c5d7f6e21";
constexpr std::string_view kLeaseId = "c2e8f4a1-6b3d-4e97-a05c-1d8f2b6e9c47";
constexpr std::string_view kTenantId = "7b1a9e3c-4d5f-4c28-b6e1-2a9d0f8c3e54";

v1::Money money(std::int64_t amount_minor) {
  v1::Money value;
  value.set_amount_minor(amount_minor);
  value.set_currency("EUR");
  return value;
}

bool is_snake_case(std::string_view code) {
  return !code.empty() && std::all_of(code.begin(), code.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_lower_hex(std::string_view text, std::size_t length) {
  return text.size() == length && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Applies a command that must be accepted: used to walk an aggregate through its lifecycle.
template <typename D>
typename D::State accept(const typename D::State& state, const typename D::Command& command) {
  auto decision = D::decide(command, state);
  require(decision.has_value(), "the lifecycle fixture's commands are accepted",
          decision ? "" : decision.error().code + ": " + decision.error().reason);
  typename D::State next = state;
  for (const auto& event : *decision) next = D::evolve(std::move(next), event);
  return next;
}

// The asset in every status its lifecycle reaches, starting with "not registered".
std::vector<v1::AssetState> asset_states() {
  std::vector<v1::AssetState> states{AssetDecider::initial_state()};
  const auto step = [&](const v1::AssetCommand& command) {
    states.push_back(accept<AssetDecider>(states.back(), command));
  };

  v1::AssetCommand command;
  auto& registered = *command.mutable_register_asset();
  registered.set_asset_id(std::string(kAssetId));
  registered.set_kind(v1::HOUSE);
  registered.set_name("Canal house");
  registered.mutable_address()->set_line1("Herengracht 1");
  registered.mutable_address()->set_city("Amsterdam");
  registered.mutable_address()->set_postal_code("1015 BA");
  registered.mutable_address()->set_country("NL");
  registered.set_owner_id(std::string(kOwnerId));
  *registered.mutable_valuation() = money(90'000'000);
  step(command);

  command.Clear();
  command.mutable_list_asset_for_sale()->set_asset_id(std::string(kAssetId));
  *command.mutable_list_asset_for_sale()->mutable_asking_price() = money(95'000'000);
  step(command);

  command.Clear();
  command.mutable_accept_offer()->set_asset_id(std::string(kAssetId));
  command.mutable_accept_offer()->set_buyer_id(std::string(kBuyerId));
  *command.mutable_accept_offer()->mutable_price() = money(93'000'000);
  step(command);

  command.Clear();
  command.mutable_complete_sale()->set_asset_id(std::string(kAssetId));
  step(command);

  command.Clear();
  command.mutable_archive_asset()->set_asset_id(std::string(kAssetId));
  command.mutable_archive_asset()->set_reason("demolished");
  step(command);
  return states;
}

// The lease in every status its lifecycle reaches, with one rent payment on record.
std::vector<v1::LeaseState> lease_states() {
  std::vector<v1::LeaseState> states{LeaseDecider::initial_state()};
  const auto step = [&](const v1::LeaseCommand& command) {
    states.push_back(accept<LeaseDecider>(states.back(), command));
  };

  v1::LeaseCommand command;
  auto& drafted = *command.mutable_draft_lease();
  drafted.set_lease_id(std::string(kLeaseId));
  drafted.set_asset_id(std::string(kAssetId));
  drafted.set_tenant_id(std::string(kTenantId));
  *drafted.mutable_monthly_rent() = money(150'000);
  drafted.set_start_date("2025-01-15");
  drafted.set_end_date("2026-01-14");
  step(command);

  command.Clear();
  command.mutable_sign_lease()->set_lease_id(std::string(kLeaseId));
  step(command);

  command.Clear();
  command.mutable_record_rent_payment()->set_lease_id(std::string(kLeaseId));
  command.mutable_record_rent_payment()->set_period("2025-02");
  *command.mutable_record_rent_payment()->mutable_amount() = money(150'000);
  step(command);

  command.Clear();
  command.mutable_terminate_lease()->set_lease_id(std::string(kLeaseId));
  command.mutable_terminate_lease()->set_date("2025-06-30");
  command.mutable_terminate_lease()->set_reason("tenant moved abroad");
  step(command);
  return states;
}

// Everything the catalog needs, built once: a handler needs an EventStore, which needs a
// pool; the pool connects lazily and parse never asks it to.
struct Service {
  deedkit::ConnectionPool pool{deedkit::PoolOptions{.database_uri = "host=/nonexistent"}};
  deedkit::EventStore store{pool};
  deedkit::CommandHandler<AssetDecider> assets{store};
  deedkit::CommandHandler<LeaseDecider> leases{store};
  deedkit::service::CommandCatalog catalog;
  std::vector<v1::AssetState> asset_lifecycle = asset_states();
  std::vector<v1::LeaseState> lease_lifecycle = lease_states();

  Service() {
    deedkit::fuzz::silence_protobuf_log();
    catalog.add(assets);
    catalog.add(leases);
  }
};

const Service& service() {
  static const Service built;
  return built;
}

template <typename D>
void check_events_round_trip(const deedkit::CommandHandler<D>& handler,
                             const typename D::State& state,
                             const std::vector<typename D::Event>& events) {
  typename D::State folded = state;
  for (const auto& event : events) {
    const auto encoded = handler.codec().encode(event);
    require(encoded.has_value(), "every event decide produces encodes");

    const deedkit::StoredEventRef where{"fuzz-stream", 1};
    const auto decoded = handler.codec().decode(where, encoded->event_type,
                                                encoded->schema_version, encoded->payload);

    require(decoded.has_value(), "every event decide produces decodes back",
            decoded ? "" : decoded.error().message);
    require(deedkit::deterministic_bytes(*decoded) == deedkit::deterministic_bytes(event),
            "an event decodes to what was encoded", encoded->event_type);
    folded = D::evolve(std::move(folded), *decoded);
  }
}

// What the client sees of a rejection: a stable code, a readable reason, and the problem
// document the service would send for it.
void check_rejection(const deedkit::Rejection& rejection) {
  const std::string& code = rejection.code;
  require(is_snake_case(code), "rejection codes are snake_case", code);
  require(!rejection.reason.empty(), "every rejection gives a reason", code);
  require(is_utf8(rejection.reason), "a rejection's reason is UTF-8 text", code);

  const int status = deedkit::service::status_for_rejection(code);
  const std::string problem = deedkit::service::Problem{status, "rejected/" + code,
                                                        "The command was rejected",
                                                        rejection.reason, code}
                                  .to_json();
  require(read_json(problem).has_value(), "a rejection's problem document is valid JSON",
          problem);
}

template <typename D>
void check_decide(const deedkit::CommandHandler<D>& handler,
                  const std::vector<typename D::State>& lifecycle,
                  const typename D::Command& command) {
  const std::string id = D::aggregate_id(command);
  if (const auto uuid = deedkit::parse_uuid(id)) {
    require(id == deedkit::to_string(*uuid), "aggregate_id gives a UUID in canonical form", id);
  }

  std::string input_rejection;
  for (const auto& state : lifecycle) {
    const auto decision = D::decide(command, state);
    if (!decision) {
      const std::string& code = decision.error().code;
      check_rejection(decision.error());
      if (!input_rejection.empty()) {
        require(code == input_rejection,
                "a malformed command is rejected the same way in every status",
                input_rejection + " then " + code);
      } else if (&state == &lifecycle.front() &&
                 deedkit::service::status_for_rejection(code) == 400) {
        input_rejection = code;
      }
      continue;
    }
    require(input_rejection.empty(), "a command rejected for its input is never accepted",
            input_rejection);
    check_events_round_trip(handler, state, *decision);
  }
}

template <typename D>
void check_command(const deedkit::CommandHandler<D>& handler,
                   const std::vector<typename D::State>& lifecycle, std::string_view json) {
  const auto* oneof = D::Command::descriptor()->oneof_decl(0);
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    const std::string name = field->message_type()->name();
    const auto* entry = service().catalog.find(name);
    require(entry != nullptr, "the catalog offers every command of the deciders", name);

    const auto parsed = entry->parse(json);
    typename D::Command command;
    auto* inner = command.GetReflection()->MutableMessage(&command, field);
    const auto direct = deedkit::service::parse_json_message(json, *inner);

    require(parsed.has_value() == direct.has_value(),
            "the catalog parses a body exactly when parse_json_message does", name);
    if (!parsed) {
      require(parsed.error().code == deedkit::ErrorCode::kInvalidArgument,
              "a body that does not parse is kInvalidArgument", parsed.error().message);
      require(parsed.error().message.find(name) != std::string::npos,
              "the parse error names the command's message", parsed.error().message);
      const std::string problem = deedkit::service::problem_for(parsed.error()).to_json();
      require(read_json(problem).has_value(), "a parse error's problem document is valid JSON",
              problem);
      continue;
    }
    require(is_lower_hex(parsed->fingerprint.hex, 64),
            "a fingerprint is 64 lower-case hex digits", parsed->fingerprint.hex);
    require(parsed->fingerprint.hex == deedkit::fingerprint_request(name, *inner).hex,
            "the catalog fingerprints the command's Protobuf form", name);

    const std::string rendered = deedkit::service::to_json(*inner);
    const auto reparsed = entry->parse(rendered);
    require(reparsed.has_value(), "a parsed command re-serialises to JSON that parses",
            reparsed ? rendered : reparsed.error().message);
    require(reparsed->fingerprint.hex == parsed->fingerprint.hex,
            "a parsed command re-serialised and parsed again fingerprints the same", rendered);

    check_decide<D>(handler, lifecycle, command);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  const Service& built = service();

  check_command<AssetDecider>(built.assets, built.asset_lifecycle, json);
  check_command<LeaseDecider>(built.leases, built.lease_lifecycle, json);
  return 0;
}
