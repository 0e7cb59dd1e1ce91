#pragma once

// Runs one operation from N client threads for a fixed time and reports throughput and
// latency percentiles. Each workload is printed next to its floor, measured the same way in
// the same run, because ratios hold on a shared machine where absolute numbers drift.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace deedkit::bench {

struct LoadResult {
  std::string name;
  int clients = 0;
  long long operations = 0;
  long long failures = 0;
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  // Where the server's backends spent the run, when wait sampling is on: the three most
  // frequent states of the active backends, e.g. "LWLock:WALWrite 48%, CPU 21%, ...".
  // "CPU" is an active backend with no wait event (running, or waiting for a core);
  // "Client:ClientRead" is a backend waiting for its client.
  std::string waits;
};

// From now on, run_load samples pg_stat_activity of the database at `database_uri` every
// 10 ms during each run and fills LoadResult::waits. The samples are one small query each,
// on a connection of their own.
void sample_waits_in(const std::string& database_uri);

// Calls `operation(client_index)` in a loop on `clients` threads for `duration`; an
// operation returns false when it failed (counted, not timed).
LoadResult run_load(const std::string& name, int clients, std::chrono::milliseconds duration,
                    const std::function<bool(int)>& operation);

// "W1 register      16   12345.6/s  p50 1.23 ms  p99 4.56 ms  max 9.87 ms  ratio 0.93"
void print_row(const LoadResult& result, const LoadResult* floor);

// Appends one JSON object per result to `path` (creating it), and the same result as a
// Markdown table row to `path`.rows.md, for scripts/bench to collect.
void append_json(const std::string& path, const LoadResult& result, const LoadResult* floor);

}  // namespace deedkit::bench
