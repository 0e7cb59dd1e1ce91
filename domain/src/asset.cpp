#include "deedkit/domain/asset.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

#include "validation.hpp"

namespace deedkit::realestate {

namespace {

using internal::canonical_id;
using internal::Check;
using internal::check_id;
using internal::check_money;
using internal::check_same_currency;
using internal::describe;
using internal::first_failure;
using State = AssetDecider::State;
using Event = AssetDecider::Event;
using Decided = Decision<Event>;

Decided rejected(Rejection rejection) { return std::unexpected(std::move(rejection)); }

Decided just(Event event) {
  std::vector<Event> events;
  events.push_back(std::move(event));
  return events;
}

std::string subject(const State& state) { return "asset " + state.asset_id(); }

const std::string& status_name(v1::AssetStatus status) { return v1::AssetStatus_Name(status); }

// Every command but RegisterAsset needs an asset that exists and is not archived.
Check check_live(const State& state, const std::string& asset_id) {
  if (state.status() == v1::STATUS_UNSPECIFIED) {
    return Rejection{"asset_not_found", "asset " + asset_id + " is not registered"};
  }
  if (state.status() == v1::ARCHIVED) {
    return Rejection{"asset_archived", subject(state) + " is archived and accepts no changes"};
  }
  return std::nullopt;
}

Decided decide_register(const v1::RegisterAsset& command, const State& state) {
  const bool kind_known =
      v1::AssetKind_IsValid(command.kind()) && command.kind() != v1::KIND_UNSPECIFIED;
  const Check unknown_kind =
      kind_known ? Check{}
                 : Rejection{"unknown_asset_kind",
                             "kind " + std::to_string(command.kind()) +
                                 " is not one of LAND, HOUSE, APARTMENT, COMMERCIAL, INDUSTRIAL"};
  if (auto rejection = first_failure(
          {check_id("asset_id", command.asset_id()), unknown_kind,
           internal::check_name(command.name()), internal::check_address(command.address()),
           check_id("owner_id", command.owner_id()),
           check_money("valuation", command.valuation())})) {
    return rejected(std::move(*rejection));
  }

  if (state.status() != v1::STATUS_UNSPECIFIED) {
    return rejected({"asset_already_registered",
                     subject(state) + " is already registered (" +
                         status_name(state.status()) + ")"});
  }

  Event event;
  auto& registered = *event.mutable_asset_registered();
  registered.set_asset_id(canonical_id(command.asset_id()));
  registered.set_kind(command.kind());
  registered.set_name(command.name());
  *registered.mutable_address() = command.address();
  registered.set_owner_id(canonical_id(command.owner_id()));
  *registered.mutable_valuation() = command.valuation();
  return just(std::move(event));
}

Decided decide_update_details(const v1::UpdateAssetDetails& command, const State& state) {
  if (auto rejection = first_failure(
          {check_id("asset_id", command.asset_id()), internal::check_name(command.name()),
           internal::check_address(command.address()),
           check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  Event event;
  auto& updated = *event.mutable_asset_details_updated();
  updated.set_asset_id(state.asset_id());
  updated.set_name(command.name());
  *updated.mutable_address() = command.address();
  return just(std::move(event));
}

Decided decide_reappraise(const v1::ReappraiseAsset& command, const State& state) {
  if (auto rejection = first_failure(
          {check_id("asset_id", command.asset_id()),
           check_money("valuation", command.valuation()),
           check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  // The first valuation fixed the asset's currency; a reappraisal converting it would leave
  // the asking price and offers of a live sale in another currency than the valuation.
  if (auto rejection = check_same_currency("valuation", command.valuation(),
                                           state.valuation().currency())) {
    return rejected(std::move(*rejection));
  }

  Event event;
  auto& reappraised = *event.mutable_asset_reappraised();
  reappraised.set_asset_id(state.asset_id());
  *reappraised.mutable_previous_valuation() = state.valuation();
  *reappraised.mutable_valuation() = command.valuation();
  return just(std::move(event));
}

Decided decide_list(const v1::ListAssetForSale& command, const State& state) {
  if (auto rejection = first_failure(
          {check_id("asset_id", command.asset_id()),
           check_money("asking_price", command.asking_price()),
           check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  switch (state.status()) {
    case v1::LISTED:
      return rejected({"asset_already_listed",
                       subject(state) + " is already listed at " +
                           describe(state.asking_price())});
    case v1::UNDER_CONTRACT:
      return rejected({"asset_under_contract",
                       subject(state) + " is under contract with buyer " +
                           state.accepted_offer().buyer_id()});
    case v1::SOLD:
      return rejected({"asset_sold", subject(state) + " is sold and cannot be listed again"});
    default:
      break;
  }

  if (auto rejection = check_same_currency("asking_price", command.asking_price(),
                                           state.valuation().currency())) {
    return rejected(std::move(*rejection));
  }

  Event event;
  auto& listed = *event.mutable_asset_listed_for_sale();
  listed.set_asset_id(state.asset_id());
  listed.set_owner_id(state.owner_id());
  *listed.mutable_asking_price() = command.asking_price();
  return just(std::move(event));
}

Decided decide_withdraw(const v1::WithdrawListing& command, const State& state) {
  if (auto rejection = first_failure({check_id("asset_id", command.asset_id()),
                                      check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  // An accepted offer binds both parties: withdrawing is for listings nobody has taken up.
  if (state.status() != v1::LISTED) {
    return rejected({"asset_not_listed", subject(state) + " is " +
                                             status_name(state.status()) +
                                             ", not LISTED: there is no listing to withdraw"});
  }

  Event event;
  auto& withdrawn = *event.mutable_listing_withdrawn();
  withdrawn.set_asset_id(state.asset_id());
  *withdrawn.mutable_asking_price() = state.asking_price();
  return just(std::move(event));
}

Decided decide_accept_offer(const v1::AcceptOffer& command, const State& state) {
  if (auto rejection = first_failure(
          {check_id("asset_id", command.asset_id()), check_id("buyer_id", command.buyer_id()),
           check_money("price", command.price()),
           check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  if (state.status() == v1::UNDER_CONTRACT) {
    return rejected({"offer_already_accepted",
                     subject(state) + " already accepted an offer of " +
                         describe(state.accepted_offer().price()) + " from buyer " +
                         state.accepted_offer().buyer_id()});
  }
  if (state.status() != v1::LISTED) {
    return rejected({"asset_not_listed", subject(state) + " is " +
                                             status_name(state.status()) +
                                             ", not LISTED: it takes no offers"});
  }

  const std::string buyer_id = canonical_id(command.buyer_id());
  if (buyer_id == state.owner_id()) {
    return rejected({"buyer_is_owner",
                     "buyer " + buyer_id + " already owns " + subject(state)});
  }
  if (auto rejection =
          check_same_currency("price", command.price(), state.valuation().currency())) {
    return rejected(std::move(*rejection));
  }

  Event event;
  auto& accepted = *event.mutable_offer_accepted();
  accepted.set_asset_id(state.asset_id());
  accepted.set_seller_id(state.owner_id());
  accepted.set_buyer_id(buyer_id);
  *accepted.mutable_price() = command.price();
  *accepted.mutable_asking_price() = state.asking_price();
  return just(std::move(event));
}

Decided decide_complete_sale(const v1::CompleteSale& command, const State& state) {
  if (auto rejection = first_failure({check_id("asset_id", command.asset_id()),
                                      check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  if (state.status() != v1::UNDER_CONTRACT) {
    return rejected({"sale_without_accepted_offer",
                     subject(state) + " is " + status_name(state.status()) +
                         ", not UNDER_CONTRACT: a sale completes an accepted offer"});
  }

  Event event;
  auto& sold = *event.mutable_sale_completed();
  sold.set_asset_id(state.asset_id());
  sold.set_previous_owner_id(state.owner_id());
  sold.set_new_owner_id(state.accepted_offer().buyer_id());
  *sold.mutable_price() = state.accepted_offer().price();
  return just(std::move(event));
}

Decided decide_archive(const v1::ArchiveAsset& command, const State& state) {
  if (auto rejection = first_failure({check_id("asset_id", command.asset_id()),
                                      internal::check_reason(command.reason()),
                                      check_live(state, canonical_id(command.asset_id()))})) {
    return rejected(std::move(*rejection));
  }

  // Archiving in the middle of a sale would strand the buyer or the listing's audience;
  // the listing must be withdrawn first, and a contract can only run to completion.
  if (state.status() == v1::LISTED || state.status() == v1::UNDER_CONTRACT) {
    return rejected({"asset_in_sale", subject(state) + " is " + status_name(state.status()) +
                                          "; only a REGISTERED or SOLD asset can be archived"});
  }

  Event event;
  auto& archived = *event.mutable_asset_archived();
  archived.set_asset_id(state.asset_id());
  archived.set_owner_id(state.owner_id());
  archived.set_reason(command.reason());
  archived.set_previous_status(state.status());
  return just(std::move(event));
}

}  // namespace

State AssetDecider::initial_state() { return State{}; }

Decision<Event> AssetDecider::decide(const Command& command, const State& state) {
  switch (command.command_case()) {
    case Command::kRegisterAsset: return decide_register(command.register_asset(), state);
    case Command::kUpdateAssetDetails:
      return decide_update_details(command.update_asset_details(), state);
    case Command::kReappraiseAsset: return decide_reappraise(command.reappraise_asset(), state);
    case Command::kListAssetForSale: return decide_list(command.list_asset_for_sale(), state);
    case Command::kWithdrawListing: return decide_withdraw(command.withdraw_listing(), state);
    case Command::kAcceptOffer: return decide_accept_offer(command.accept_offer(), state);
    case Command::kCompleteSale: return decide_complete_sale(command.complete_sale(), state);
    case Command::kArchiveAsset: return decide_archive(command.archive_asset(), state);
    case Command::COMMAND_NOT_SET: break;
  }
  return rejected({"missing_command", "the asset command names no operation"});
}

State AssetDecider::evolve(State state, const Event& event) {
  switch (event.event_case()) {
    case Event::kAssetRegistered: {
      const auto& registered = event.asset_registered();
      state.set_asset_id(registered.asset_id());
      state.set_kind(registered.kind());
      state.set_name(registered.name());
      *state.mutable_address() = registered.address();
      state.set_owner_id(registered.owner_id());
      *state.mutable_valuation() = registered.valuation();
      state.set_status(v1::REGISTERED);
      return state;
    }
    case Event::kAssetDetailsUpdated:
      state.set_name(event.asset_details_updated().name());
      *state.mutable_address() = event.asset_details_updated().address();
      return state;
    case Event::kAssetReappraised:
      *state.mutable_valuation() = event.asset_reappraised().valuation();
      return state;
    case Event::kAssetListedForSale:
      state.set_status(v1::LISTED);
      *state.mutable_asking_price() = event.asset_listed_for_sale().asking_price();
      return state;
    case Event::kListingWithdrawn:
      state.set_status(v1::REGISTERED);
      state.clear_asking_price();
      return state;
    case Event::kOfferAccepted:
      state.set_status(v1::UNDER_CONTRACT);
      state.mutable_accepted_offer()->set_buyer_id(event.offer_accepted().buyer_id());
      *state.mutable_accepted_offer()->mutable_price() = event.offer_accepted().price();
      return state;
    case Event::kSaleCompleted:
      state.set_status(v1::SOLD);
      state.set_owner_id(event.sale_completed().new_owner_id());
      state.clear_asking_price();
      state.clear_accepted_offer();
      return state;
    case Event::kAssetArchived:
      state.set_status(v1::ARCHIVED);
      return state;
    case Event::EVENT_NOT_SET: break;
  }
  throw std::logic_error("AssetDecider::evolve: event for " + state.asset_id() +
                         " has no alternative set");
}

std::string AssetDecider::aggregate_id(const Command& command) {
  switch (command.command_case()) {
    case Command::kRegisterAsset: return canonical_id(command.register_asset().asset_id());
    case Command::kUpdateAssetDetails:
      return canonical_id(command.update_asset_details().asset_id());
    case Command::kReappraiseAsset: return canonical_id(command.reappraise_asset().asset_id());
    case Command::kListAssetForSale:
      return canonical_id(command.list_asset_for_sale().asset_id());
    case Command::kWithdrawListing: return canonical_id(command.withdraw_listing().asset_id());
    case Command::kAcceptOffer: return canonical_id(command.accept_offer().asset_id());
    case Command::kCompleteSale: return canonical_id(command.complete_sale().asset_id());
    case Command::kArchiveAsset: return canonical_id(command.archive_asset().asset_id());
    case Command::COMMAND_NOT_SET: break;
  }
  return "";
}

void AssetDecider::assign_aggregate_id(Command& command, const std::string& id) {
  switch (command.command_case()) {
    case Command::kRegisterAsset: command.mutable_register_asset()->set_asset_id(id); return;
    case Command::kUpdateAssetDetails:
      command.mutable_update_asset_details()->set_asset_id(id);
      return;
    case Command::kReappraiseAsset: command.mutable_reappraise_asset()->set_asset_id(id); return;
    case Command::kListAssetForSale:
      command.mutable_list_asset_for_sale()->set_asset_id(id);
      return;
    case Command::kWithdrawListing: command.mutable_withdraw_listing()->set_asset_id(id); return;
    case Command::kAcceptOffer: command.mutable_accept_offer()->set_asset_id(id); return;
    case Command::kCompleteSale: command.mutable_complete_sale()->set_asset_id(id); return;
    case Command::kArchiveAsset: command.mutable_archive_asset()->set_asset_id(id); return;
    case Command::COMMAND_NOT_SET: return;
  }
}

bool AssetDecider::creates_aggregate(const Command& command) {
  return command.command_case() == Command::kRegisterAsset;
}

}  // namespace deedkit::realestate
