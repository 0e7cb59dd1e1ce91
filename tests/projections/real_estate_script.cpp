#include "real_estate_script.hpp"

#include <gtest/gtest.h>

namespace deedkit::testing {

namespace v1 = realestate::v1;

namespace {

v1::Money money(std::int64_t amount_minor, const std::string& currency) {
  v1::Money value;
  value.set_amount_minor(amount_minor);
  value.set_currency(currency);
  return value;
}

v1::Address address_in(const std::string& city) {
  v1::Address address;
  address.set_line1("Kade 7");
  address.set_city(city);
  address.set_postal_code("1011 AB");
  address.set_country("NL");
  return address;
}

template <typename Handler, typename Command>
std::string handle(const Handler& handler, Command command) {
  const std::string described = command.ShortDebugString();
  auto outcome = handler.handle(std::move(command), CommandContext{.principal = "script"});
  if (!outcome) {
    ADD_FAILURE() << "command " << described << " failed: " << outcome.error().to_string();
    return "";
  }
  if (outcome->rejection) {
    ADD_FAILURE() << "command " << described << " was rejected: " << outcome->rejection->code
                  << ": " << outcome->rejection->reason;
  }
  return outcome->aggregate_id;
}

}  // namespace

std::string fresh_id() { return to_string(new_uuid()); }

std::string RealEstateScript::run(v1::AssetCommand command) {
  return handle(assets_, std::move(command));
}

std::string RealEstateScript::run(v1::LeaseCommand command) {
  return handle(leases_, std::move(command));
}

std::string RealEstateScript::register_asset(const std::string& owner_id,
                                             const std::string& name, const std::string& city,
                                             std::int64_t valuation_minor,
                                             const std::string& currency) {
  v1::AssetCommand command;
  auto* registration = command.mutable_register_asset();
  registration->set_kind(v1::APARTMENT);
  registration->set_name(name);
  *registration->mutable_address() = address_in(city);
  registration->set_owner_id(owner_id);
  *registration->mutable_valuation() = money(valuation_minor, currency);
  return run(std::move(command));
}

void RealEstateScript::update_details(const std::string& asset_id, const std::string& name,
                                      const std::string& city) {
  v1::AssetCommand command;
  command.mutable_update_asset_details()->set_asset_id(asset_id);
  command.mutable_update_asset_details()->set_name(name);
  *command.mutable_update_asset_details()->mutable_address() = address_in(city);
  run(std::move(command));
}

void RealEstateScript::reappraise(const std::string& asset_id, std::int64_t valuation_minor,
                                  const std::string& currency) {
  v1::AssetCommand command;
  command.mutable_reappraise_asset()->set_asset_id(asset_id);
  *command.mutable_reappraise_asset()->mutable_valuation() = money(valuation_minor, currency);
  run(std::move(command));
}

void RealEstateScript::list(const std::string& asset_id, std::int64_t price_minor,
                            const std::string& currency) {
  v1::AssetCommand command;
  command.mutable_list_asset_for_sale()->set_asset_id(asset_id);
  *command.mutable_list_asset_for_sale()->mutable_asking_price() = money(price_minor, currency);
  run(std::move(command));
}

void RealEstateScript::withdraw(const std::string& asset_id) {
  v1::AssetCommand command;
  command.mutable_withdraw_listing()->set_asset_id(asset_id);
  run(std::move(command));
}

void RealEstateScript::accept_offer(const std::string& asset_id, const std::string& buyer_id,
                                    std::int64_t price_minor, const std::string& currency) {
  v1::AssetCommand command;
  command.mutable_accept_offer()->set_asset_id(asset_id);
  command.mutable_accept_offer()->set_buyer_id(buyer_id);
  *command.mutable_accept_offer()->mutable_price() = money(price_minor, currency);
  run(std::move(command));
}

void RealEstateScript::complete_sale(const std::string& asset_id) {
  v1::AssetCommand command;
  command.mutable_complete_sale()->set_asset_id(asset_id);
  run(std::move(command));
}

void RealEstateScript::archive(const std::string& asset_id) {
  v1::AssetCommand command;
  command.mutable_archive_asset()->set_asset_id(asset_id);
  command.mutable_archive_asset()->set_reason("demolished");
  run(std::move(command));
}

std::string RealEstateScript::draft_lease(const std::string& asset_id,
                                          const std::string& tenant_id,
                                          std::int64_t monthly_rent_minor,
                                          const std::string& start_date,
                                          const std::string& end_date,
                                          const std::string& currency) {
  v1::LeaseCommand command;
  auto* draft = command.mutable_draft_lease();
  draft->set_asset_id(asset_id);
  draft->set_tenant_id(tenant_id);
  *draft->mutable_monthly_rent() = money(monthly_rent_minor, currency);
  draft->set_start_date(start_date);
  draft->set_end_date(end_date);
  return run(std::move(command));
}

void RealEstateScript::sign(const std::string& lease_id) {
  v1::LeaseCommand command;
  command.mutable_sign_lease()->set_lease_id(lease_id);
  run(std::move(command));
}

void RealEstateScript::pay(const std::string& lease_id, const std::string& period,
                           std::int64_t amount_minor, const std::string& currency) {
  v1::LeaseCommand command;
  command.mutable_record_rent_payment()->set_lease_id(lease_id);
  command.mutable_record_rent_payment()->set_period(period);
  *command.mutable_record_rent_payment()->mutable_amount() = money(amount_minor, currency);
  run(std::move(command));
}

void RealEstateScript::terminate(const std::string& lease_id, const std::string& date) {
  v1::LeaseCommand command;
  command.mutable_terminate_lease()->set_lease_id(lease_id);
  command.mutable_terminate_lease()->set_date(date);
  command.mutable_terminate_lease()->set_reason("tenant moved out");
  run(std::move(command));
}

}  // namespace deedkit::testing
