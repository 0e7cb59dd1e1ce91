#include "deedkit/projections/projection.hpp"

#include <stdexcept>

namespace deedkit {

GenerationTables::GenerationTables(int generation, std::span<const ProjectionTable> tables)
    : generation_(generation) {
  names_.reserve(tables.size());
  for (const ProjectionTable& table : tables) {
    names_.emplace_back(table.name, "deedkit_read_data." + table.name + "_g" +
                                        std::to_string(generation));
  }
}

const std::string& GenerationTables::qualified(std::string_view name) const {
  for (const auto& [logical, physical] : names_) {
    if (logical == name) return physical;
  }
  throw std::logic_error("projection table '" + std::string(name) +
                         "' is not one of the tables of generation " +
                         std::to_string(generation_));
}

std::string GenerationTables::expand(std::string_view sql) const {
  std::string expanded;
  expanded.reserve(sql.size() + 64);
  std::size_t cursor = 0;
  while (cursor < sql.size()) {
    const std::size_t open = sql.find('{', cursor);
    if (open == std::string_view::npos) break;
    const std::size_t close = sql.find('}', open);
    if (close == std::string_view::npos) break;

    expanded.append(sql.substr(cursor, open - cursor));
    const std::string_view name = sql.substr(open + 1, close - open - 1);
    bool replaced = false;
    for (const auto& [logical, physical] : names_) {
      if (logical == name) {
        expanded += physical;
        replaced = true;
        break;
      }
    }
    if (!replaced) expanded.append(sql.substr(open, close - open + 1));
    cursor = close + 1;
  }
  expanded.append(sql.substr(std::min(cursor, sql.size())));
  return expanded;
}

std::vector<std::string> GenerationTables::all() const {
  std::vector<std::string> qualified_names;
  for (const auto& entry : names_) qualified_names.push_back(entry.second);
  return qualified_names;
}

std::string ApplyContext::prepare(std::string_view key, std::string_view sql) {
  // Statements are per generation: the same key names different tables in each one.
  std::string statement = statement_prefix_ + std::string(key);
  lease_.ensure_prepared(statement, tables_.expand(sql));
  return statement;
}

Result<std::unique_ptr<PreparedBatch>> Projection::prepare(EventBatch) const {
  return std::unique_ptr<PreparedBatch>();
}

Result<void> Projection::apply_prepared(ApplyContext&, EventBatch, PreparedBatch&) const {
  return fail(ErrorCode::kInternal, "projection " + std::string(name()) +
                                        " prepared a batch but cannot apply one: it overrides "
                                        "prepare without apply_prepared");
}

}  // namespace deedkit
