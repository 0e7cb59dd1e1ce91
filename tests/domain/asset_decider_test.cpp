// AssetDecider as plain functions: the happy path of every command, every rejection code, and
// a randomised run of command sequences that checks the asset's invariants after each step.
#include "deedkit/domain/asset.hpp"

#include <algorithm>
#include <cctype>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "decider_test_support.hpp"

namespace deedkit::realestate {
namespace {

using test_support::accepted;
using test_support::money;
using test_support::rejected_with;
using Command = AssetDecider::Command;
using Event = AssetDecider::Event;
using State = AssetDecider::State;

constexpr const char* kAssetId = "3b241101-e2bb-4255-8caf-4136c566a962";
constexpr const char* kOwnerId = "9a5d7c2e-61f0-4b8a-b3c4-0e2f9d8a7b65";
constexpr const char* kBuyerId = "c0ffee00-1234-4abc-8def-0123456789ab";

v1::Address canal_address() {
  v1::Address address;
  address.set_line1("Herengracht 502");
  address.set_city("Amsterdam");
  address.set_postal_code("1017 CB");
  address.set_country("NL");
  return address;
}

Command registration() {
  Command command;
  auto& registered = *command.mutable_register_asset();
  registered.set_asset_id(kAssetId);
  registered.set_kind(v1::HOUSE);
  registered.set_name("Canal house");
  *registered.mutable_address() = canal_address();
  registered.set_owner_id(kOwnerId);
  *registered.mutable_valuation() = money(450'000'00);
  return command;
}

Command update_details(const std::string& name) {
  Command command;
  command.mutable_update_asset_details()->set_asset_id(kAssetId);
  command.mutable_update_asset_details()->set_name(name);
  *command.mutable_update_asset_details()->mutable_address() = canal_address();
  return command;
}

Command reappraise(const v1::Money& valuation) {
  Command command;
  command.mutable_reappraise_asset()->set_asset_id(kAssetId);
  *command.mutable_reappraise_asset()->mutable_valuation() = valuation;
  return command;
}

Command list_for_sale(const v1::Money& asking_price) {
  Command command;
  command.mutable_list_asset_for_sale()->set_asset_id(kAssetId);
  *command.mutable_list_asset_for_sale()->mutable_asking_price() = asking_price;
  return command;
}

Command withdraw() {
  Command command;
  command.mutable_withdraw_listing()->set_asset_id(kAssetId);
  return command;
}

Command accept_offer(const std::string& buyer_id, const v1::Money& price) {
  Command command;
  command.mutable_accept_offer()->set_asset_id(kAssetId);
  command.mutable_accept_offer()->set_buyer_id(buyer_id);
  *command.mutable_accept_offer()->mutable_price() = price;
  return command;
}

Command complete_sale() {
  Command command;
  command.mutable_complete_sale()->set_asset_id(kAssetId);
  return command;
}

Command archive(const std::string& reason) {
  Command command;
  command.mutable_archive_asset()->set_asset_id(kAssetId);
  command.mutable_archive_asset()->set_reason(reason);
  return command;
}

template <typename Edit>
Command edited(Command command, Edit edit) {
  edit(command);
  return command;
}

// The state after deciding and folding each command in turn; every one must be accepted.
State fold(const std::vector<Command>& history) {
  State state = AssetDecider::initial_state();
  for (const Command& command : history) {
    const auto decision = AssetDecider::decide(command, state);
    EXPECT_TRUE(accepted(decision)) << "while building history: " << command.ShortDebugString();
    if (!decision) break;
    for (const Event& event : *decision) state = AssetDecider::evolve(std::move(state), event);
  }
  return state;
}

std::vector<Command> registered() { return {registration()}; }

std::vector<Command> listed() { return {registration(), list_for_sale(money(500'000'00))}; }

std::vector<Command> under_contract() {
  auto history = listed();
  history.push_back(accept_offer(kBuyerId, money(480'000'00)));
  return history;
}

std::vector<Command> sold() {
  auto history = under_contract();
  history.push_back(complete_sale());
  return history;
}

std::vector<Command> archived() { return {registration(), archive("demolished")}; }

// ---- Happy paths -------------------------------------------------------------------------

TEST(AssetDecider, RegisterAssetRecordsEveryDetailOfTheAsset) {
  const auto decision = AssetDecider::decide(registration(), AssetDecider::initial_state());

  ASSERT_TRUE(accepted(decision));
  ASSERT_EQ(decision->size(), 1u);
  ASSERT_TRUE((*decision)[0].has_asset_registered());
  const auto& event = (*decision)[0].asset_registered();
  EXPECT_EQ(event.asset_id(), kAssetId);
  EXPECT_EQ(event.kind(), v1::HOUSE);
  EXPECT_EQ(event.name(), "Canal house");
  EXPECT_EQ(event.address().postal_code(), "1017 CB");
  EXPECT_EQ(event.owner_id(), kOwnerId);
  EXPECT_EQ(event.valuation().amount_minor(), 450'000'00);

  const State state = fold(registered());
  EXPECT_EQ(state.status(), v1::REGISTERED);
  EXPECT_EQ(state.owner_id(), kOwnerId);
  EXPECT_EQ(state.valuation().currency(), "EUR");
}

TEST(AssetDecider, RegisterAssetWritesUpperCaseIdsInLowerCase) {
  const Command shouted = edited(registration(), [](Command& c) {
    for (std::string* id : {c.mutable_register_asset()->mutable_asset_id(),
                            c.mutable_register_asset()->mutable_owner_id()}) {
      for (char& ch : *id) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
  });

  const auto decision = AssetDecider::decide(shouted, AssetDecider::initial_state());

  ASSERT_TRUE(accepted(decision));
  EXPECT_EQ((*decision)[0].asset_registered().asset_id(), kAssetId);
  EXPECT_EQ((*decision)[0].asset_registered().owner_id(), kOwnerId);
  EXPECT_EQ(AssetDecider::aggregate_id(shouted), kAssetId);
}

TEST(AssetDecider, JsonCommandsNameTheKindAndFieldsAsTheApiSpellsThem) {
  const std::string json = R"({"register_asset": {
      "kind": "LAND", "name": "Polder plot", "owner_id": "9a5d7c2e-61f0-4b8a-b3c4-0e2f9d8a7b65",
      "address": {"line1": "Dijkweg 1", "city": "Lelystad", "postal_code": "8211 AA",
                  "country": "NL"},
      "valuation": {"amount_minor": 12500000, "currency": "EUR"}}})";
  Command command;

  const auto status = google::protobuf::util::JsonStringToMessage(json, &command);

  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(command.register_asset().kind(), v1::LAND);
  EXPECT_EQ(AssetDecider::aggregate_id(command), "") << "the engine assigns the id";
  AssetDecider::assign_aggregate_id(command, kAssetId);
  EXPECT_TRUE(accepted(AssetDecider::decide(command, AssetDecider::initial_state())));
}

TEST(AssetDecider, UpdateAssetDetailsReplacesNameAndAddress) {
  const Command update = edited(update_details("Canal house, restored"), [](Command& c) {
    c.mutable_update_asset_details()->mutable_address()->set_line1("Herengracht 504");
  });

  const auto decision = AssetDecider::decide(update, fold(listed()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].asset_details_updated();
  EXPECT_EQ(event.asset_id(), kAssetId);
  EXPECT_EQ(event.name(), "Canal house, restored");
  EXPECT_EQ(event.address().line1(), "Herengracht 504");
  const State state = AssetDecider::evolve(fold(listed()), (*decision)[0]);
  EXPECT_EQ(state.name(), "Canal house, restored");
  EXPECT_EQ(state.status(), v1::LISTED) << "details do not change the sale status";
}

TEST(AssetDecider, ReappraisalRecordsThePreviousAndTheNewValuation) {
  const auto decision = AssetDecider::decide(reappraise(money(475'000'00)), fold(registered()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].asset_reappraised();
  EXPECT_EQ(event.previous_valuation().amount_minor(), 450'000'00);
  EXPECT_EQ(event.valuation().amount_minor(), 475'000'00);
  EXPECT_EQ(AssetDecider::evolve(fold(registered()), (*decision)[0]).valuation().amount_minor(),
            475'000'00);
}

TEST(AssetDecider, ListingForSaleSetsTheAskingPrice) {
  const auto decision = AssetDecider::decide(list_for_sale(money(500'000'00)), fold(registered()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].asset_listed_for_sale();
  EXPECT_EQ(event.owner_id(), kOwnerId);
  EXPECT_EQ(event.asking_price().amount_minor(), 500'000'00);
  const State state = fold(listed());
  EXPECT_EQ(state.status(), v1::LISTED);
  EXPECT_EQ(state.asking_price().amount_minor(), 500'000'00);
}

TEST(AssetDecider, WithdrawingTheListingReturnsTheAssetToRegistered) {
  const auto decision = AssetDecider::decide(withdraw(), fold(listed()));

  ASSERT_TRUE(accepted(decision));
  EXPECT_EQ((*decision)[0].listing_withdrawn().asking_price().amount_minor(), 500'000'00);
  const State state = AssetDecider::evolve(fold(listed()), (*decision)[0]);
  EXPECT_EQ(state.status(), v1::REGISTERED);
  EXPECT_FALSE(state.has_asking_price());
}

TEST(AssetDecider, AcceptingAnOfferPutsTheAssetUnderContract) {
  const auto decision =
      AssetDecider::decide(accept_offer(kBuyerId, money(480'000'00)), fold(listed()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].offer_accepted();
  EXPECT_EQ(event.seller_id(), kOwnerId);
  EXPECT_EQ(event.buyer_id(), kBuyerId);
  EXPECT_EQ(event.price().amount_minor(), 480'000'00);
  EXPECT_EQ(event.asking_price().amount_minor(), 500'000'00);
  const State state = fold(under_contract());
  EXPECT_EQ(state.status(), v1::UNDER_CONTRACT);
  EXPECT_EQ(state.accepted_offer().buyer_id(), kBuyerId);
}

TEST(AssetDecider, CompletingTheSalePassesOwnershipToTheBuyerAtTheAcceptedPrice) {
  const auto decision = AssetDecider::decide(complete_sale(), fold(under_contract()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].sale_completed();
  EXPECT_EQ(event.previous_owner_id(), kOwnerId);
  EXPECT_EQ(event.new_owner_id(), kBuyerId);
  EXPECT_EQ(event.price().amount_minor(), 480'000'00);
  const State state = fold(sold());
  EXPECT_EQ(state.status(), v1::SOLD);
  EXPECT_EQ(state.owner_id(), kBuyerId);
  EXPECT_FALSE(state.has_asking_price());
  EXPECT_FALSE(state.has_accepted_offer());
}

TEST(AssetDecider, ArchivingARegisteredAssetRecordsTheReason) {
  const auto decision = AssetDecider::decide(archive("demolished"), fold(registered()));

  ASSERT_TRUE(accepted(decision));
  const auto& event = (*decision)[0].asset_archived();
  EXPECT_EQ(event.reason(), "demolished");
  EXPECT_EQ(event.owner_id(), kOwnerId);
  EXPECT_EQ(event.previous_status(), v1::REGISTERED);
  EXPECT_EQ(fold(archived()).status(), v1::ARCHIVED);
}

TEST(AssetDecider, ArchivingASoldAssetIsAllowed) {
  const auto decision = AssetDecider::decide(archive("merged into parcel"), fold(sold()));

  ASSERT_TRUE(accepted(decision));
  EXPECT_EQ((*decision)[0].asset_archived().owner_id(), kBuyerId);
  EXPECT_EQ((*decision)[0].asset_archived().previous_status(), v1::SOLD);
}

TEST(AssetDecider, AggregateIdIsTheAssetIdOfWhicheverCommandIsSet) {
  const std::vector<Command> commands = {registration(), update_details("x"),
                                         reappraise(money(1)), list_for_sale(money(1)),
                                         withdraw(), accept_offer(kBuyerId, money(1)),
                                         complete_sale(), archive("x")};

  for (const Command& command : commands) {
    EXPECT_EQ(AssetDecider::aggregate_id(command), kAssetId) << command.ShortDebugString();
  }
  EXPECT_EQ(AssetDecider::aggregate_id(Command{}), "");
  EXPECT_EQ(AssetDecider::category(), "asset");
}

TEST(AssetDecider, AssignAggregateIdFillsTheIdOfWhicheverCommandIsSet) {
  std::vector<Command> commands = {registration(), update_details("x"), reappraise(money(1)),
                                   list_for_sale(money(1)), withdraw(),
                                   accept_offer(kBuyerId, money(1)), complete_sale(),
                                   archive("x")};
  const std::string assigned = "0a8b43c5-5d71-4f0e-9d2a-7c1b6e3f4a59";

  for (Command& command : commands) {
    AssetDecider::assign_aggregate_id(command, assigned);
    EXPECT_EQ(AssetDecider::aggregate_id(command), assigned) << command.ShortDebugString();
  }
  Command none;
  AssetDecider::assign_aggregate_id(none, assigned);
  EXPECT_EQ(none.command_case(), Command::COMMAND_NOT_SET);
}

TEST(AssetDecider, OnlyRegisterAssetCreatesTheAggregate) {
  EXPECT_TRUE(AssetDecider::creates_aggregate(registration()));
  EXPECT_FALSE(AssetDecider::creates_aggregate(update_details("x")));
  EXPECT_FALSE(AssetDecider::creates_aggregate(complete_sale()));
  EXPECT_FALSE(AssetDecider::creates_aggregate(Command{}));
}

TEST(AssetDecider, EvolveRefusesAnEventWithNoAlternativeSet) {
  EXPECT_THROW(AssetDecider::evolve(fold(registered()), Event{}), std::logic_error);
}

// ---- Every rejection code ----------------------------------------------------------------

struct RejectionCase {
  std::string name;                 // the situation, as a test name
  std::vector<Command> history;     // accepted before `command`
  Command command;
  std::string code;
  std::string mention;              // a value the reason must name
};

std::vector<RejectionCase> rejection_cases() {
  const std::string long_text(1001, 'x');
  return {
      {"CommandNamingNoOperation", {}, Command{}, "missing_command", "no operation"},
      {"RegisterWithoutAssetId", {},
       edited(registration(), [](Command& c) { c.mutable_register_asset()->clear_asset_id(); }),
       "missing_id", "asset_id"},
      {"RegisterWithMalformedOwnerId", {},
       edited(registration(),
              [](Command& c) { c.mutable_register_asset()->set_owner_id("owner-7"); }),
       "invalid_id", "owner-7"},
      {"AcceptOfferFromMalformedBuyerId", listed(), accept_offer("{buyer}", money(1)),
       "invalid_id", "{buyer}"},
      {"RegisterWithUnspecifiedKind", {},
       edited(registration(),
              [](Command& c) { c.mutable_register_asset()->set_kind(v1::KIND_UNSPECIFIED); }),
       "unknown_asset_kind", "LAND"},
      {"RegisterWithKindOutsideTheEnum", {},
       edited(registration(),
              [](Command& c) {
                c.mutable_register_asset()->set_kind(static_cast<v1::AssetKind>(42));
              }),
       "unknown_asset_kind", "42"},
      {"RegisterWithBlankName", {},
       edited(registration(), [](Command& c) { c.mutable_register_asset()->set_name(" \t"); }),
       "empty_name", "name"},
      {"UpdateToOverlongName", registered(), update_details(std::string(201, 'n')),
       "text_too_long", "201"},
      {"UpdateToNameWithAControlCharacter", registered(), update_details("Canal\x1b[2Jhouse"),
       "control_character", "byte 5"},
      {"RegisterWithoutCity", {},
       edited(registration(),
              [](Command& c) { c.mutable_register_asset()->mutable_address()->clear_city(); }),
       "incomplete_address", "address.city"},
      {"RegisterWithLowerCaseCountry", {},
       edited(registration(),
              [](Command& c) {
                c.mutable_register_asset()->mutable_address()->set_country("nl");
              }),
       "invalid_country_code", "\"nl\""},
      {"UpdateWithThreeLetterCountry", registered(),
       edited(update_details("x"),
              [](Command& c) {
                c.mutable_update_asset_details()->mutable_address()->set_country("NLD");
              }),
       "invalid_country_code", "NLD"},
      {"RegisterWithoutValuation", {},
       edited(registration(),
              [](Command& c) { c.mutable_register_asset()->clear_valuation(); }),
       "non_positive_amount", "valuation"},
      {"ListAtNegativePrice", registered(), list_for_sale(money(-1)), "non_positive_amount",
       "-1"},
      {"RegisterInLowerCaseCurrency", {},
       edited(registration(),
              [](Command& c) {
                c.mutable_register_asset()->mutable_valuation()->set_currency("eur");
              }),
       "invalid_currency", "\"eur\""},
      {"ArchiveWithBlankReason", registered(), archive(""), "missing_reason", "reason"},
      {"ArchiveWithOverlongReason", registered(), archive(long_text), "text_too_long",
       "reason"},
      {"RegisterTwice", registered(), registration(), "asset_already_registered", kAssetId},
      {"UpdateUnregisteredAsset", {}, update_details("x"), "asset_not_found", kAssetId},
      {"CompleteSaleOfUnregisteredAsset", {}, complete_sale(), "asset_not_found", kAssetId},
      {"UpdateArchivedAsset", archived(), update_details("x"), "asset_archived", kAssetId},
      {"ReappraiseArchivedAsset", archived(), reappraise(money(1)), "asset_archived",
       "archived"},
      {"ListArchivedAsset", archived(), list_for_sale(money(1)), "asset_archived", "archived"},
      {"ArchiveArchivedAsset", archived(), archive("again"), "asset_archived", "archived"},
      {"ListTwice", listed(), list_for_sale(money(510'000'00)), "asset_already_listed",
       "50000000 EUR"},
      {"ListUnderContract", under_contract(), list_for_sale(money(1)), "asset_under_contract",
       kBuyerId},
      {"ListSoldAsset", sold(), list_for_sale(money(1)), "asset_sold", kAssetId},
      {"WithdrawUnlistedAsset", registered(), withdraw(), "asset_not_listed", "REGISTERED"},
      {"WithdrawAfterAcceptingAnOffer", under_contract(), withdraw(), "asset_not_listed",
       "UNDER_CONTRACT"},
      {"AcceptOfferOnUnlistedAsset", registered(), accept_offer(kBuyerId, money(1)),
       "asset_not_listed", "REGISTERED"},
      {"AcceptSecondOffer", under_contract(), accept_offer(kBuyerId, money(490'000'00)),
       "offer_already_accepted", "48000000 EUR"},
      {"AcceptOfferFromTheOwner", listed(), accept_offer(kOwnerId, money(1)), "buyer_is_owner",
       kOwnerId},
      {"AcceptOfferFromTheOwnerSpelledInUpperCase", listed(),
       accept_offer("9A5D7C2E-61F0-4B8A-B3C4-0E2F9D8A7B65", money(1)), "buyer_is_owner",
       kOwnerId},
      {"AcceptOfferInAnotherCurrency", listed(), accept_offer(kBuyerId, money(1, "USD")),
       "currency_mismatch", "USD"},
      {"ListInAnotherCurrency", registered(), list_for_sale(money(1, "GBP")),
       "currency_mismatch", "GBP"},
      {"ReappraiseInAnotherCurrency", registered(), reappraise(money(1, "CHF")),
       "currency_mismatch", "EUR"},
      {"CompleteSaleWithoutAnyOffer", registered(), complete_sale(),
       "sale_without_accepted_offer", "REGISTERED"},
      {"CompleteSaleWhileOnlyListed", listed(), complete_sale(), "sale_without_accepted_offer",
       "LISTED"},
      {"CompleteSaleTwice", sold(), complete_sale(), "sale_without_accepted_offer", "SOLD"},
      {"ArchiveListedAsset", listed(), archive("x"), "asset_in_sale", "LISTED"},
      {"ArchiveAssetUnderContract", under_contract(), archive("x"), "asset_in_sale",
       "UNDER_CONTRACT"},
  };
}

class AssetRejection : public ::testing::TestWithParam<RejectionCase> {};

TEST_P(AssetRejection, NamesTheBrokenRuleByItsCode) {
  const RejectionCase& rule = GetParam();
  const State state = fold(rule.history);

  const auto decision = AssetDecider::decide(rule.command, state);

  EXPECT_TRUE(rejected_with(decision, rule.code, rule.mention))
      << rule.command.ShortDebugString();
}

INSTANTIATE_TEST_SUITE_P(AssetRules, AssetRejection, ::testing::ValuesIn(rejection_cases()),
                         [](const auto& info) { return info.param.name; });

// ---- Randomised sequences ----------------------------------------------------------------

const std::vector<std::string> kPeople = {kOwnerId, kBuyerId,
                                          "5e0d1c9b-8a7f-4e6d-b5c4-a3b2c1d0e9f8"};

const std::vector<std::string> kValidationCodes = {
    "missing_command", "missing_id", "invalid_id", "unknown_asset_kind", "empty_name",
    "text_too_long", "incomplete_address", "invalid_country_code", "non_positive_amount",
    "invalid_currency", "missing_reason", "control_character"};

bool is_validation_code(const std::string& code) {
  return std::find(kValidationCodes.begin(), kValidationCodes.end(), code) !=
         kValidationCodes.end();
}

// Random commands against one asset; about one in five has a malformed field.
class CommandSource {
 public:
  explicit CommandSource(std::uint64_t seed) : random_(seed) {}

  struct Draw {
    Command command;
    bool well_formed;
  };

  Draw next() {
    Draw draw{command_of_kind(pick(8)), true};
    if (pick(5) == 0) draw.well_formed = !malform(draw.command);
    return draw;
  }

 private:
  std::size_t pick(std::size_t n) { return random_() % n; }

  v1::Money price() { return money(1 + pick(900'000'00), pick(6) == 0 ? "USD" : "EUR"); }

  const std::string& person() { return kPeople[pick(kPeople.size())]; }

  Command command_of_kind(std::size_t kind) {
    switch (kind) {
      case 0: {
        Command command = registration();
        *command.mutable_register_asset()->mutable_valuation() = money(1 + pick(1000));
        command.mutable_register_asset()->set_owner_id(person());
        return command;
      }
      case 1: return update_details("name " + std::to_string(pick(100)));
      case 2: return reappraise(price());
      case 3: return list_for_sale(price());
      case 4: return withdraw();
      case 5: return accept_offer(person(), price());
      case 6: return complete_sale();
      default: return archive("reason " + std::to_string(pick(100)));
    }
  }

  // Breaks one field of `command`; false when it cannot (never, for asset commands).
  bool malform(Command& command) {
    if (pick(2) == 0) {
      AssetDecider::assign_aggregate_id(command, pick(2) == 0 ? "" : "asset-1");
      return true;
    }
    switch (command.command_case()) {
      case Command::kRegisterAsset:
        command.mutable_register_asset()->mutable_address()->set_country("Netherlands");
        return true;
      case Command::kUpdateAssetDetails:
        command.mutable_update_asset_details()->set_name("");
        return true;
      case Command::kReappraiseAsset:
        command.mutable_reappraise_asset()->mutable_valuation()->set_amount_minor(0);
        return true;
      case Command::kListAssetForSale:
        command.mutable_list_asset_for_sale()->mutable_asking_price()->set_currency("€");
        return true;
      case Command::kAcceptOffer: command.mutable_accept_offer()->set_buyer_id("me"); return true;
      case Command::kArchiveAsset: command.mutable_archive_asset()->set_reason(" "); return true;
      default: command.Clear(); return true;
    }
  }

  std::mt19937_64 random_;
};

// An independent statement of when a well-formed command must be accepted.
bool model_accepts(const Command& command, const State& state) {
  const auto status = state.status();
  if (command.has_register_asset()) return status == v1::STATUS_UNSPECIFIED;
  if (status == v1::STATUS_UNSPECIFIED || status == v1::ARCHIVED) return false;

  const std::string& currency = state.valuation().currency();
  switch (command.command_case()) {
    case Command::kUpdateAssetDetails: return true;
    case Command::kReappraiseAsset:
      return command.reappraise_asset().valuation().currency() == currency;
    case Command::kListAssetForSale:
      return status == v1::REGISTERED &&
             command.list_asset_for_sale().asking_price().currency() == currency;
    case Command::kWithdrawListing: return status == v1::LISTED;
    case Command::kAcceptOffer:
      return status == v1::LISTED && command.accept_offer().buyer_id() != state.owner_id() &&
             command.accept_offer().price().currency() == currency;
    case Command::kCompleteSale: return status == v1::UNDER_CONTRACT;
    case Command::kArchiveAsset: return status == v1::REGISTERED || status == v1::SOLD;
    default: return false;
  }
}

void expect_invariants(const State& before, const Event& event, const State& after) {
  const auto status = after.status();
  const bool in_sale = status == v1::LISTED || status == v1::UNDER_CONTRACT;
  EXPECT_EQ(after.asset_id(), kAssetId);
  EXPECT_EQ(after.has_asking_price(), in_sale) << "asking price outside a sale";
  EXPECT_EQ(after.has_accepted_offer(), status == v1::UNDER_CONTRACT);
  if (in_sale) {
    EXPECT_EQ(after.asking_price().currency(), after.valuation().currency());
  }
  if (after.has_accepted_offer()) {
    EXPECT_EQ(after.accepted_offer().price().currency(), after.valuation().currency());
    EXPECT_NE(after.accepted_offer().buyer_id(), after.owner_id());
  }

  // Ownership only ever moves by a completed sale, to the buyer whose offer was accepted.
  if (before.status() != v1::STATUS_UNSPECIFIED && after.owner_id() != before.owner_id()) {
    EXPECT_TRUE(event.has_sale_completed()) << "owner changed by " << event.ShortDebugString();
    EXPECT_EQ(after.owner_id(), before.accepted_offer().buyer_id());
  }
}

TEST(AssetDeciderProperty, RandomCommandSequencesKeepEveryInvariant) {
  const std::uint64_t seed = test_support::test_seed("AssetDeciderProperty");
  SCOPED_TRACE("seed " + std::to_string(seed));
  CommandSource source(seed);

  for (int run = 0; run < 300 && !HasFailure(); ++run) {
    State state = AssetDecider::initial_state();
    std::vector<Event> log;

    for (int step = 0; step < 40 && !HasFailure(); ++step) {
      const auto [command, well_formed] = source.next();
      SCOPED_TRACE("run " + std::to_string(run) + " step " + std::to_string(step) + ": " +
                   command.ShortDebugString() + " on " + state.ShortDebugString());

      const auto decision = AssetDecider::decide(command, state);
      const auto again = AssetDecider::decide(command, state);
      ASSERT_EQ(decision.has_value(), again.has_value()) << "decide is not deterministic";

      if (!well_formed) {
        ASSERT_FALSE(decision.has_value()) << "a malformed command was accepted";
        ASSERT_TRUE(is_validation_code(decision.error().code)) << decision.error().code;
        continue;
      }
      ASSERT_EQ(decision.has_value(), model_accepts(command, state))
          << (decision ? std::string("accepted") : decision.error().code);
      if (!decision) {
        ASSERT_FALSE(is_validation_code(decision.error().code)) << decision.error().reason;
        continue;
      }

      ASSERT_EQ(decision->size(), 1u);
      const Event& event = decision->front();
      State next = AssetDecider::evolve(state, event);
      expect_invariants(state, event, next);
      state = std::move(next);
      log.push_back(event);
    }

    // The log alone, through its wire form, must rebuild the same state.
    State replayed = AssetDecider::initial_state();
    for (const Event& event : log) {
      Event decoded;
      ASSERT_TRUE(decoded.ParseFromString(event.SerializeAsString()));
      replayed = AssetDecider::evolve(std::move(replayed), decoded);
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(replayed, state))
        << "replayed " << replayed.ShortDebugString() << " vs " << state.ShortDebugString();
  }
}

}  // namespace
}  // namespace deedkit::realestate
