#pragma once

// Writes real-estate history through the real deciders (CommandHandler: load, decide,
// append), so the projections see exactly the events the engine produces.
//
// Every helper expects its command to be accepted; a rejection or an error fails the test
// with the reason. Thread-safe: each call runs its own transactions.

#include <cstdint>
#include <string>

#include "deedkit/commands/command_handler.hpp"
#include "deedkit/domain/asset.hpp"
#include "deedkit/domain/lease.hpp"

namespace deedkit::testing {

class RealEstateScript {
 public:
  explicit RealEstateScript(const EventStore& store)
      : assets_(store, HandlerOptions{.snapshot_every = 0}),
        leases_(store, HandlerOptions{.snapshot_every = 0}) {}

  // Returns the new asset's id.
  std::string register_asset(const std::string& owner_id, const std::string& name,
                             const std::string& city, std::int64_t valuation_minor,
                             const std::string& currency = "EUR");
  void update_details(const std::string& asset_id, const std::string& name,
                      const std::string& city);
  void reappraise(const std::string& asset_id, std::int64_t valuation_minor,
                  const std::string& currency = "EUR");
  void list(const std::string& asset_id, std::int64_t price_minor,
            const std::string& currency = "EUR");
  void withdraw(const std::string& asset_id);
  void accept_offer(const std::string& asset_id, const std::string& buyer_id,
                    std::int64_t price_minor, const std::string& currency = "EUR");
  void complete_sale(const std::string& asset_id);
  void archive(const std::string& asset_id);

  // Returns the new lease's id. Dates are YYYY-MM-DD.
  std::string draft_lease(const std::string& asset_id, const std::string& tenant_id,
                          std::int64_t monthly_rent_minor, const std::string& start_date,
                          const std::string& end_date, const std::string& currency = "EUR");
  void sign(const std::string& lease_id);
  void pay(const std::string& lease_id, const std::string& period, std::int64_t amount_minor,
           const std::string& currency = "EUR");
  void terminate(const std::string& lease_id, const std::string& date);

 private:
  std::string run(realestate::v1::AssetCommand command);
  std::string run(realestate::v1::LeaseCommand command);

  CommandHandler<realestate::AssetDecider> assets_;
  CommandHandler<realestate::LeaseDecider> leases_;
};

// A fresh random id in canonical form.
std::string fresh_id();

}  // namespace deedkit::testing
