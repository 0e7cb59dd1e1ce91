#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include <pqxx/result>

#include "deedkit/projections/real_estate.hpp"
#include "deedkit/projections/sql_array.hpp"

namespace deedkit::realestate {

namespace {

// One asset as its table row holds it; the batch folds events onto these in memory and
// writes each touched asset once.
struct AssetRow {
  std::string asset_id;
  std::string name;
  std::string kind;
  std::string owner_id;
  std::string status;
  std::int64_t valuation_minor = 0;
  std::string currency;
  std::optional<std::int64_t> asking_price_minor;
  std::string city;
  std::int64_t version = 0;
  std::optional<std::int64_t> listed_at_us;
  std::int64_t updated_at_us = 0;
};

struct TouchedAsset {
  std::optional<AssetRow> before;  // as the table held it when the batch began
  std::optional<AssetRow> after;
};

// The portfolio counts every asset that is not archived, under its current owner.
bool in_portfolio(const std::optional<AssetRow>& row) {
  return row && row->status != "ARCHIVED";
}

const std::string& asset_id_of(const v1::AssetEvent& event) {
  switch (event.event_case()) {
    case v1::AssetEvent::kAssetRegistered: return event.asset_registered().asset_id();
    case v1::AssetEvent::kAssetDetailsUpdated: return event.asset_details_updated().asset_id();
    case v1::AssetEvent::kAssetReappraised: return event.asset_reappraised().asset_id();
    case v1::AssetEvent::kAssetListedForSale: return event.asset_listed_for_sale().asset_id();
    case v1::AssetEvent::kListingWithdrawn: return event.listing_withdrawn().asset_id();
    case v1::AssetEvent::kOfferAccepted: return event.offer_accepted().asset_id();
    case v1::AssetEvent::kSaleCompleted: return event.sale_completed().asset_id();
    case v1::AssetEvent::kAssetArchived: return event.asset_archived().asset_id();
    case v1::AssetEvent::EVENT_NOT_SET: break;
  }
  static const std::string kNone;
  return kNone;
}

std::int64_t micros(Timestamp time) { return time.time_since_epoch().count(); }

AssetRow registered_row(const v1::AssetRegistered& registered) {
  AssetRow row;
  row.asset_id = registered.asset_id();
  row.name = registered.name();
  row.kind = v1::AssetKind_Name(registered.kind());
  row.owner_id = registered.owner_id();
  row.status = "REGISTERED";
  row.valuation_minor = registered.valuation().amount_minor();
  row.currency = registered.valuation().currency();
  row.city = registered.address().city();
  return row;
}

// Applies one event to an asset that exists. The asking price and listing time exist only
// while the asset is LISTED.
void evolve(AssetRow& row, const v1::AssetEvent& event) {
  switch (event.event_case()) {
    case v1::AssetEvent::kAssetDetailsUpdated:
      row.name = event.asset_details_updated().name();
      row.city = event.asset_details_updated().address().city();
      break;
    case v1::AssetEvent::kAssetReappraised:
      row.valuation_minor = event.asset_reappraised().valuation().amount_minor();
      row.currency = event.asset_reappraised().valuation().currency();
      break;
    case v1::AssetEvent::kAssetListedForSale:
      row.status = "LISTED";
      row.owner_id = event.asset_listed_for_sale().owner_id();
      row.asking_price_minor = event.asset_listed_for_sale().asking_price().amount_minor();
      break;
    case v1::AssetEvent::kListingWithdrawn:
      row.status = "REGISTERED";
      row.asking_price_minor.reset();
      break;
    case v1::AssetEvent::kOfferAccepted:
      row.status = "UNDER_CONTRACT";
      row.asking_price_minor.reset();
      break;
    case v1::AssetEvent::kSaleCompleted:
      row.status = "SOLD";
      row.owner_id = event.sale_completed().new_owner_id();
      break;
    case v1::AssetEvent::kAssetArchived:
      row.status = "ARCHIVED";
      break;
    case v1::AssetEvent::kAssetRegistered:
    case v1::AssetEvent::EVENT_NOT_SET:
      break;
  }
}

std::optional<std::int64_t> optional_int8(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return field.as<std::int64_t>();
}

AssetRow parse_row(const pqxx::row& row) {
  AssetRow parsed;
  parsed.asset_id = row[0].c_str();
  parsed.name = row[1].c_str();
  parsed.kind = row[2].c_str();
  parsed.owner_id = row[3].c_str();
  parsed.status = row[4].c_str();
  parsed.valuation_minor = row[5].as<std::int64_t>();
  parsed.currency = row[6].c_str();
  parsed.asking_price_minor = optional_int8(row[7]);
  parsed.city = row[8].c_str();
  parsed.version = row[9].as<std::int64_t>();
  parsed.listed_at_us = optional_int8(row[10]);
  parsed.updated_at_us = row[11].as<std::int64_t>();
  return parsed;
}

const char* const kLoadSql =
    "SELECT asset_id::text, name, kind, owner_id::text, status, valuation_minor, currency, "
    "asking_price_minor, city, version, (extract(epoch FROM listed_at) * 1000000)::int8, "
    "(extract(epoch FROM updated_at) * 1000000)::int8 "
    "FROM {asset_summary} WHERE asset_id = ANY($1::uuid[])";

// Times travel as microseconds since the epoch: exact, and no time zone in the way.
const char* const kUpsertSql =
    "INSERT INTO {asset_summary} AS t (asset_id, name, kind, owner_id, status, "
    "valuation_minor, currency, asking_price_minor, city, version, listed_at, updated_at) "
    "SELECT r.asset_id, r.name, r.kind, r.owner_id, r.status, r.valuation_minor, r.currency, "
    "r.asking_price_minor, r.city, r.version, "
    "timestamptz 'epoch' + r.listed_at * interval '1 microsecond', "
    "timestamptz 'epoch' + r.updated_at * interval '1 microsecond' "
    "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::int8[], "
    "$7::text[], $8::int8[], $9::text[], $10::int8[], $11::int8[], $12::int8[]) "
    "AS r(asset_id, name, kind, owner_id, status, valuation_minor, currency, "
    "asking_price_minor, city, version, listed_at, updated_at) "
    "ON CONFLICT (asset_id) DO UPDATE SET name = excluded.name, kind = excluded.kind, "
    "owner_id = excluded.owner_id, status = excluded.status, "
    "valuation_minor = excluded.valuation_minor, currency = excluded.currency, "
    "asking_price_minor = excluded.asking_price_minor, city = excluded.city, "
    "version = excluded.version, listed_at = excluded.listed_at, "
    "updated_at = excluded.updated_at";

// Deltas, not totals: the rows of owners this batch did not touch stay as they are. Rows
// that exist are updated and the others inserted, rather than INSERT ... ON CONFLICT,
// because PostgreSQL checks constraints on the row proposed for insertion, and a negative
// delta would fail asset_count's check even though it only ever updates.
const char* const kPortfolioSql =
    "WITH delta AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[]) "
    "AS d(owner_id, currency, asset_count, total_valuation_minor)), "
    "updated AS (UPDATE {portfolio} t SET asset_count = t.asset_count + d.asset_count, "
    "total_valuation_minor = t.total_valuation_minor + d.total_valuation_minor FROM delta d "
    "WHERE t.owner_id = d.owner_id AND t.currency = d.currency "
    "RETURNING t.owner_id, t.currency) "
    "INSERT INTO {portfolio} (owner_id, currency, asset_count, total_valuation_minor) "
    "SELECT d.* FROM delta d WHERE NOT EXISTS (SELECT 1 FROM updated u "
    "WHERE u.owner_id = d.owner_id AND u.currency = d.currency)";

const char* const kPortfolioPruneSql =
    "DELETE FROM {portfolio} WHERE asset_count = 0 AND owner_id = ANY($1::uuid[])";

struct PortfolioDelta {
  std::int64_t asset_count = 0;
  std::int64_t total_valuation_minor = 0;
};

void write_assets(ApplyContext& context, const std::map<std::string, TouchedAsset>& touched) {
  SqlArray ids, names, kinds, owners, statuses, valuations, currencies, asking_prices, cities,
      versions, listed_at, updated_at;
  for (const auto& [id, asset] : touched) {
    const AssetRow& row = *asset.after;
    ids.add(row.asset_id);
    names.add(row.name);
    kinds.add(row.kind);
    owners.add(row.owner_id);
    statuses.add(row.status);
    valuations.add(row.valuation_minor);
    currencies.add(row.currency);
    asking_prices.add(row.asking_price_minor);
    cities.add(row.city);
    versions.add(row.version);
    listed_at.add(row.listed_at_us);
    updated_at.add(row.updated_at_us);
  }
  context.tx().exec_prepared(context.prepare("upsert_assets", kUpsertSql), ids.str(),
                             names.str(), kinds.str(), owners.str(), statuses.str(),
                             valuations.str(), currencies.str(), asking_prices.str(),
                             cities.str(), versions.str(), listed_at.str(), updated_at.str());
}

void write_portfolio(ApplyContext& context, const std::map<std::string, TouchedAsset>& touched) {
  std::map<std::pair<std::string, std::string>, PortfolioDelta> deltas;
  for (const auto& [id, asset] : touched) {
    if (in_portfolio(asset.before)) {
      PortfolioDelta& delta = deltas[{asset.before->owner_id, asset.before->currency}];
      delta.asset_count -= 1;
      delta.total_valuation_minor -= asset.before->valuation_minor;
    }
    if (in_portfolio(asset.after)) {
      PortfolioDelta& delta = deltas[{asset.after->owner_id, asset.after->currency}];
      delta.asset_count += 1;
      delta.total_valuation_minor += asset.after->valuation_minor;
    }
  }

  SqlArray owners, currencies, counts, totals, shrunk_owners;
  for (const auto& [key, delta] : deltas) {
    if (delta.asset_count == 0 && delta.total_valuation_minor == 0) continue;
    owners.add(key.first);
    currencies.add(key.second);
    counts.add(delta.asset_count);
    totals.add(delta.total_valuation_minor);
    if (delta.asset_count < 0) shrunk_owners.add(key.first);
  }
  if (owners.size() == 0) return;
  context.tx().exec_prepared(context.prepare("upsert_portfolio", kPortfolioSql), owners.str(),
                             currencies.str(), counts.str(), totals.str());
  if (shrunk_owners.size() > 0) {
    context.tx().exec_prepared(context.prepare("prune_portfolio", kPortfolioPruneSql),
                               shrunk_owners.str());
  }
}

// The batch decoded, and the assets it touches as a parameter for the load.
struct AssetBatch final : PreparedBatch {
  std::vector<v1::AssetEvent> decoded;  // one per event, in order
  std::map<std::string, TouchedAsset> touched;  // by asset id, nothing loaded yet
  SqlArray asset_ids;
};

}  // namespace

std::vector<std::string> AssetsProjection::event_types() const {
  std::vector<std::string> types;
  const auto* oneof = v1::AssetEvent::descriptor()->oneof_decl(0);
  for (int i = 0; i < oneof->field_count(); ++i) {
    types.push_back(std::string(oneof->field(i)->message_type()->full_name()));
  }
  return types;
}

std::vector<ProjectionTable> AssetsProjection::tables() const {
  return {
      {"asset_summary",
       "asset_id uuid PRIMARY KEY, name text NOT NULL, kind text NOT NULL, "
       "owner_id uuid NOT NULL, status text NOT NULL, valuation_minor bigint NOT NULL, "
       "currency text NOT NULL, asking_price_minor bigint, city text NOT NULL, "
       "version bigint NOT NULL, listed_at timestamptz, updated_at timestamptz NOT NULL",
       // Listings are searched by price range, within a city or across all of them.
       {"(owner_id)", "(asking_price_minor) WHERE status = 'LISTED'",
        "(city, asking_price_minor) WHERE status = 'LISTED'"}},
      {"portfolio",
       "owner_id uuid NOT NULL, currency text NOT NULL, "
       "asset_count bigint NOT NULL CHECK (asset_count >= 0), "
       "total_valuation_minor bigint NOT NULL, PRIMARY KEY (owner_id, currency)",
       {}},
  };
}

std::vector<ProjectionView> AssetsProjection::views() const {
  return {
      {"asset_summary",
       "SELECT asset_id, name, kind, owner_id, status, valuation_minor, currency, "
       "asking_price_minor, city, version, updated_at FROM {asset_summary}"},
      // A view over the asset table rather than a table of its own: always consistent with
      // asset_summary, and the partial indexes above serve it.
      {"active_listings",
       "SELECT asset_id, name, city, asking_price_minor, currency, listed_at "
       "FROM {asset_summary} WHERE status = 'LISTED'"},
      {"portfolio",
       "SELECT owner_id, currency, asset_count, total_valuation_minor FROM {portfolio}"},
  };
}

Result<void> AssetsProjection::apply(ApplyContext& context, EventBatch events) const {
  auto prepared = prepare(events);
  if (!prepared) return std::unexpected(prepared.error());
  return apply_prepared(context, events, **prepared);
}

Result<std::unique_ptr<PreparedBatch>> AssetsProjection::prepare(EventBatch events) const {
  auto batch = std::make_unique<AssetBatch>();
  batch->decoded.reserve(events.size());
  for (const RecordedEvent* event : events) {
    auto asset_event = codec_.decode({event->stream_id, event->stream_version},
                                     event->event_type, event->schema_version, event->payload);
    if (!asset_event) return std::unexpected(asset_event.error());
    const std::string& asset_id = asset_id_of(*asset_event);
    if (batch->touched.try_emplace(asset_id).second) batch->asset_ids.add(asset_id);
    batch->decoded.push_back(std::move(*asset_event));
  }
  return batch;
}

Result<void> AssetsProjection::apply_prepared(ApplyContext& context, EventBatch events,
                                              PreparedBatch& prepared) const {
  auto& [decoded, touched, asset_ids] = static_cast<AssetBatch&>(prepared);

  const pqxx::result stored =
      context.tx().exec_prepared(context.prepare("load_assets", kLoadSql), asset_ids.str());
  for (const auto& row : stored) {
    TouchedAsset& asset = touched[row[0].c_str()];
    asset.before = parse_row(row);
    asset.after = asset.before;
  }

  for (std::size_t i = 0; i < decoded.size(); ++i) {
    const RecordedEvent& recorded = *events[i];
    TouchedAsset& asset = touched[asset_id_of(decoded[i])];
    if (decoded[i].has_asset_registered()) {
      asset.after = registered_row(decoded[i].asset_registered());
    } else if (!asset.after) {
      return fail(ErrorCode::kFailedPrecondition,
                  "event " + recorded.event_type + " for " + recorded.stream_id + " version " +
                      std::to_string(recorded.stream_version) +
                      " names an asset whose registration was never applied");
    } else {
      evolve(*asset.after, decoded[i]);
    }
    AssetRow& row = *asset.after;
    if (decoded[i].has_asset_listed_for_sale()) row.listed_at_us = micros(recorded.recorded_at);
    if (row.status != "LISTED") row.listed_at_us.reset();
    row.version = recorded.stream_version;
    row.updated_at_us = micros(recorded.recorded_at);
  }

  write_assets(context, touched);
  write_portfolio(context, touched);
  return {};
}

}  // namespace deedkit::realestate
