#include "deedkit/eventstore/global_log_reader.hpp"

#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "deedkit/eventstore/unit_of_work.hpp"

namespace deedkit {

GlobalLogReader::GlobalLogReader(const EventStore& store, LogPosition checkpoint,
                                 GlobalLogReaderOptions options)
    : store_(store), position_(checkpoint), options_(std::move(options)) {}

Result<GlobalLogBatch> GlobalLogReader::next_batch() {
  auto batch = store_.read_all(position_, options_.batch_size, options_.category);
  if (!batch) return batch;

  position_ = batch->next;
  track_stall(batch->held_back);
  return batch;
}

std::chrono::milliseconds GlobalLogReader::stalled_for() const {
  if (!held_back_) return std::chrono::milliseconds::zero();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - held_back_since_);
}

namespace {

// Names the transaction that holds the horizon back, for the operator.
std::string describe_oldest_transaction(ConnectionPool& pool) {
  auto unit = UnitOfWork::begin(pool);
  if (!unit) return "(unknown: " + unit.error().message + ")";
  try {
    const pqxx::result rows = unit->tx().exec(
        "SELECT pid, datname, coalesce(application_name, ''), "
        "extract(epoch FROM now() - xact_start)::int8 FROM pg_stat_activity "
        "WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1");
    if (rows.empty()) return "(no open transaction found; it has just ended)";
    return "pid " + std::string(rows[0][0].c_str()) + " on database " + rows[0][1].c_str() +
           " (application '" + rows[0][2].c_str() + "'), open for " + rows[0][3].c_str() +
           " s";
  } catch (const std::exception& error) {
    return std::string("(unknown: ") + error.what() + ")";
  }
}

}  // namespace

void GlobalLogReader::track_stall(bool held_back) {
  if (!held_back) {
    if (stall_reported_) {
      spdlog::info("log reader: resumed at {} after being held back for {} ms",
                   position_.to_string(), stalled_for().count());
    }
    held_back_ = false;
    stall_reported_ = false;
    return;
  }

  if (!held_back_) {
    held_back_ = true;
    held_back_since_ = std::chrono::steady_clock::now();
  }
  if (!stall_reported_ && stalled_for() >= options_.stall_warning_after) {
    stall_reported_ = true;
    ++stalls_reported_;
    spdlog::warn(
        "log reader: held at {} for {} ms: committed events wait behind an open transaction "
        "that may still write earlier ones; oldest open transaction: {}",
        position_.to_string(), stalled_for().count(),
        describe_oldest_transaction(store_.pool()));
  }
}

}  // namespace deedkit
