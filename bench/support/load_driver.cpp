#include "load_driver.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <map>
#include <thread>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

namespace deedkit::bench {

namespace {

std::string g_wait_sampling_uri;  // empty: off

// Samples until `stop`, then returns the top three states with their shares.
std::string sample_waits(const std::atomic<bool>& stop) {
  std::map<std::string, long long> counts;
  long long total = 0;
  try {
    pqxx::connection connection(g_wait_sampling_uri);
    while (!stop.load()) {
      pqxx::nontransaction tx(connection);
      const pqxx::result rows = tx.exec(
          "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity "
          "WHERE datname = current_database() AND state = 'active' "
          "AND pid <> pg_backend_pid()");
      for (const auto& row : rows) {
        ++counts[row[0].c_str()];
        ++total;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (const std::exception& error) {
    return std::string("wait sampling failed: ") + error.what();
  }

  std::vector<std::pair<long long, std::string>> ranked;
  for (const auto& [state, count] : counts) ranked.emplace_back(count, state);
  std::sort(ranked.rbegin(), ranked.rend());
  std::string text;
  for (std::size_t i = 0; i < ranked.size() && i < 3; ++i) {
    if (!text.empty()) text += ", ";
    text += ranked[i].second + " " +
            std::to_string(total > 0 ? ranked[i].first * 100 / total : 0) + "%";
  }
  return text;
}

double percentile(std::vector<double>& sorted_ms, double fraction) {
  if (sorted_ms.empty()) return 0;
  const auto index = static_cast<std::size_t>(fraction * (sorted_ms.size() - 1));
  return sorted_ms[index];
}

}  // namespace

LoadResult run_load(const std::string& name, int clients, std::chrono::milliseconds duration,
                    const std::function<bool(int)>& operation) {
  std::atomic<bool> stop{false};
  std::atomic<long long> failures{0};
  std::mutex latencies_mutex;
  std::vector<double> latencies_ms;

  std::string waits;
  std::thread sampler;
  if (!g_wait_sampling_uri.empty()) sampler = std::thread([&] { waits = sample_waits(stop); });

  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      std::vector<double> own;
      own.reserve(100000);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto begin = std::chrono::steady_clock::now();
        const bool ok = operation(client);
        const auto end = std::chrono::steady_clock::now();
        if (ok) {
          own.push_back(std::chrono::duration<double, std::milli>(end - begin).count());
        } else {
          ++failures;
        }
      }
      std::lock_guard lock(latencies_mutex);
      latencies_ms.insert(latencies_ms.end(), own.begin(), own.end());
    });
  }
  std::this_thread::sleep_for(duration);
  stop = true;
  for (auto& thread : threads) thread.join();
  if (sampler.joinable()) sampler.join();
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::sort(latencies_ms.begin(), latencies_ms.end());
  LoadResult result;
  result.name = name;
  result.clients = clients;
  result.operations = static_cast<long long>(latencies_ms.size());
  result.failures = failures;
  result.per_second = static_cast<double>(result.operations) / elapsed_s;
  result.p50_ms = percentile(latencies_ms, 0.50);
  result.p99_ms = percentile(latencies_ms, 0.99);
  result.max_ms = latencies_ms.empty() ? 0 : latencies_ms.back();
  result.waits = std::move(waits);
  return result;
}

void sample_waits_in(const std::string& database_uri) { g_wait_sampling_uri = database_uri; }

void print_row(const LoadResult& result, const LoadResult* floor) {
  std::printf("%-22s %3d clients %10.1f/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms",
              result.name.c_str(), result.clients, result.per_second, result.p50_ms,
              result.p99_ms, result.max_ms);
  if (floor && floor->per_second > 0) {
    std::printf("  ratio %.2f of %s", result.per_second / floor->per_second,
                floor->name.c_str());
  }
  if (result.failures > 0) std::printf("  (%lld failed)", result.failures);
  if (!result.waits.empty()) std::printf("\n    server: %s", result.waits.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

void append_json(const std::string& path, const LoadResult& result, const LoadResult* floor) {
  std::ofstream out(path, std::ios::app);
  out << "{\"workload\":\"" << result.name << "\",\"clients\":" << result.clients
      << ",\"per_second\":" << result.per_second << ",\"p50_ms\":" << result.p50_ms
      << ",\"p99_ms\":" << result.p99_ms << ",\"max_ms\":" << result.max_ms
      << ",\"failures\":" << result.failures << ",\"server_waits\":\"" << result.waits << "\"";
  if (floor && floor->per_second > 0) {
    out << ",\"floor\":\"" << floor->name << "\",\"ratio\":"
        << result.per_second / floor->per_second;
  }
  out << "}\n";

  // The same result as a row of the Markdown table scripts/bench assembles.
  std::ofstream rows(path + ".rows.md", std::ios::app);
  char line[512];
  std::snprintf(line, sizeof line, "| %s | %d | %.1f | %.2f | %.2f | %.2f | ", result.name.c_str(),
                result.clients, result.per_second, result.p50_ms, result.p99_ms, result.max_ms);
  rows << line;
  if (floor && floor->per_second > 0) {
    std::snprintf(line, sizeof line, "%.2f of %s |", result.per_second / floor->per_second,
                  floor->name.c_str());
    rows << line;
  } else {
    rows << " |";
  }
  rows << " " << result.waits << " |\n";
}

}  // namespace deedkit::bench
