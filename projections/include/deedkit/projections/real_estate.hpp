#pragma once

// The reference projections of the real-estate domain (docs/projections.md lists every
// column of their views):
//
//   assets     deedkit_read.asset_summary    one row per asset
//              deedkit_read.active_listings  assets listed for sale, indexed by price and city
//              deedkit_read.portfolio        per owner and currency: live assets and their value
//   rent_roll  deedkit_read.rent_roll        per signed lease and month: rent due and paid
//
// The three asset views come from one projection because the portfolio needs each asset's
// previous owner and valuation, which only the asset table holds; one checkpoint keeps the
// three consistent with each other at every moment.
//
// Thread-safety: stateless after construction; apply may run on several threads.

#include <memory>
#include <vector>

#include "deedkit/engine/event_codec.hpp"
#include "deedkit/projections/projection.hpp"
#include "deedkit/realestate/v1/asset.pb.h"
#include "deedkit/realestate/v1/lease.pb.h"

namespace deedkit::realestate {

class AssetsProjection final : public Projection {
 public:
  std::string_view name() const override { return "assets"; }
  int version() const override { return 1; }
  std::vector<std::string> event_types() const override;
  std::vector<ProjectionTable> tables() const override;
  std::vector<ProjectionView> views() const override;

  // Fails with kDataLoss for an event that does not decode, kFailedPrecondition for an event
  // about an asset the tables do not hold (its registration was never applied).
  Result<void> apply(ApplyContext& context, EventBatch events) const override;
  // Decodes the batch in the client; apply_prepared loads, folds and writes.
  Result<std::unique_ptr<PreparedBatch>> prepare(EventBatch events) const override;
  Result<void> apply_prepared(ApplyContext& context, EventBatch events,
                              PreparedBatch& prepared) const override;

 private:
  EventCodec<v1::AssetEvent> codec_;
};

class RentRollProjection final : public Projection {
 public:
  std::string_view name() const override { return "rent_roll"; }
  // 2: periods compare as bytes (COLLATE "C") and are checked in apply, not by a CHECK.
  int version() const override { return 2; }
  std::vector<std::string> event_types() const override;
  std::vector<ProjectionTable> tables() const override;
  std::vector<ProjectionView> views() const override;

  // Fails with kDataLoss for an event that does not decode, kInvalidArgument for a lease
  // term or period that is not a real calendar date or month.
  Result<void> apply(ApplyContext& context, EventBatch events) const override;
  // Decodes, groups and encodes every row in the client; apply_prepared only sends them.
  Result<std::unique_ptr<PreparedBatch>> prepare(EventBatch events) const override;
  Result<void> apply_prepared(ApplyContext& context, EventBatch events,
                              PreparedBatch& prepared) const override;

 private:
  EventCodec<v1::LeaseEvent> codec_;
};

// Both reference projections, ready for a ProjectionRunner.
std::vector<std::unique_ptr<Projection>> make_real_estate_projections();

}  // namespace deedkit::realestate
