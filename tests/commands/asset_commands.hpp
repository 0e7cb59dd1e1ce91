#pragma once

// Builders for asset commands used by the command-handling tests.

#include <cstdint>
#include <string>

#include "deedkit/core/ids.hpp"
#include "deedkit/domain/asset.hpp"

namespace deedkit::testing {

using realestate::AssetDecider;
namespace v1 = realestate::v1;

inline v1::Money eur(std::int64_t amount_minor) {
  v1::Money money;
  money.set_amount_minor(amount_minor);
  money.set_currency("EUR");
  return money;
}

inline v1::AssetCommand register_asset(const std::string& asset_id = "",
                                       std::int64_t valuation = 250000'00) {
  v1::AssetCommand command;
  auto* registration = command.mutable_register_asset();
  registration->set_asset_id(asset_id);
  registration->set_kind(v1::HOUSE);
  registration->set_name("Canal house");
  registration->mutable_address()->set_line1("Herengracht 1");
  registration->mutable_address()->set_city("Amsterdam");
  registration->mutable_address()->set_postal_code("1015 BA");
  registration->mutable_address()->set_country("NL");
  registration->set_owner_id(to_string(new_uuid()));
  *registration->mutable_valuation() = eur(valuation);
  return command;
}

inline v1::AssetCommand reappraise(const std::string& asset_id, std::int64_t valuation) {
  v1::AssetCommand command;
  command.mutable_reappraise_asset()->set_asset_id(asset_id);
  *command.mutable_reappraise_asset()->mutable_valuation() = eur(valuation);
  return command;
}

inline v1::AssetCommand list_for_sale(const std::string& asset_id, std::int64_t price) {
  v1::AssetCommand command;
  command.mutable_list_asset_for_sale()->set_asset_id(asset_id);
  *command.mutable_list_asset_for_sale()->mutable_asking_price() = eur(price);
  return command;
}

inline v1::AssetCommand withdraw(const std::string& asset_id) {
  v1::AssetCommand command;
  command.mutable_withdraw_listing()->set_asset_id(asset_id);
  return command;
}

}  // namespace deedkit::testing
