// The relay's lifecycle, its broker connection and its partition leases.
//
// Why a stream's messages reach JetStream in version order, always:
//
// 1. A relay hands a stream's row v+1 to NATS only after it received a positive PubAck for
//    row v (StreamBook keeps at most one row per stream in flight). Pipelining happens across
//    streams, up to max_in_flight messages at once, never within a stream. So a failure of
//    v, whatever its kind, can never be overtaken by v+1: v+1 has not been sent.
// 2. A positive PubAck for v means JetStream holds v. Every copy of v carries the event id as
//    Nats-Msg-Id, so while the duplicate window lasts, any later copy (a retry after a
//    timeout, a re-publish after a crash, a copy sent by a second relay) is dropped, and v
//    is stored exactly once, before anything that waited for its PubAck.
// 3. Rows are published lowest pending version first, and a row counts as published only
//    after its PubAck (marks are written afterwards). A crashed relay therefore restarts, or
//    is replaced, at or before the first unacknowledged row of each stream, never after it.
//    A fetch starts above a partition's bound only up to the commit horizon, below which
//    every row that will ever commit is visible (docs/relay.md), so it never passes over a
//    row committed late.
// 4. Points 1 to 3 hold for any number of relays publishing the same stream at once, so the
//    partition leases are about sharing work, not about safety: a lease lost while a message
//    is in flight (a broken lease connection) cannot reorder a stream either.
// 5. A refused message blocks its stream: it is retried, and after max_attempts permanent
//    refusals parked as a dead letter, together with every later row of its stream (the
//    fetch skips streams with a dead letter) until an operator retries or discards it.
// 6. A message larger than the broker accepts is caught before it is sent (the server would
//    otherwise close the connection, failing every message in flight): the server's
//    max_payload and the stream's max_msg_size are read at connect time.
// 7. The broker connection never reconnects by itself (nats_publisher.cpp says why); after a
//    loss, everything in flight is failed and republished in order on a new connection.
//
// The limit: after the duplicate window (RelayOptions::duplicate_window) JetStream forgets
// ids, so a row acknowledged but not marked for longer than that (a database outage of an
// hour) is stored a second time when it is re-published; consumers then see that event
// twice, the second time after later versions. docs/relay.md discusses the window.

#include "internal/relay_impl.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

#include "deedkit/eventstore/connection_pool.hpp"

namespace deedkit {

namespace {

using Clock = std::chrono::steady_clock;

bool retryable(const Error& error) {
  switch (error.code) {
    case ErrorCode::kUnavailable:
    case ErrorCode::kDeadlineExceeded:
    case ErrorCode::kAborted:
    case ErrorCode::kOutcomeUnknown:
      return true;
    default:
      return false;
  }
}

std::string join_partitions(std::vector<int> partitions) {
  std::sort(partitions.begin(), partitions.end());
  std::string text;
  for (const int partition : partitions) {
    if (!text.empty()) text += ',';
    text += std::to_string(partition);
  }
  return text;
}

std::string join_subjects(const std::vector<std::string>& subjects) {
  std::string joined;
  for (const std::string& subject : subjects) joined += (joined.empty() ? "" : ", ") + subject;
  return joined;
}

}  // namespace

std::string redact_nats_url(const std::string& url) {
  static const std::regex kUserinfo(R"(://[^/@,]*@)");
  return std::regex_replace(url, kUserinfo, "://***@");
}

Result<void> validate_relay_options(const RelayOptions& options) {
  const auto invalid = [](const std::string& message) {
    return fail(ErrorCode::kInvalidArgument, message);
  };
  auto builder = internal::MessageBuilder::create(options.subject_template, options.format);
  if (!builder) return std::unexpected(builder.error());
  if (options.nats_url && options.nats_url->empty()) return invalid("the NATS URL is empty");
  if (!options.nats_url && options.json_lines == nullptr) {
    return invalid("no NATS URL and no JSON lines output");
  }
  if (options.stream_name.empty() ||
      options.stream_name.find_first_of(" .*>\t") != std::string::npos) {
    return invalid("stream name '" + options.stream_name +
                   "' must be non-empty without spaces, '.', '*' or '>'");
  }
  if (options.stream_subjects.empty()) return invalid("the stream needs at least one subject");
  // A subject outside the stream has no responders: every message would wait forever.
  const std::string pattern = builder->subject_pattern();
  const bool covered = std::any_of(
      options.stream_subjects.begin(), options.stream_subjects.end(),
      [&](const std::string& subject) { return internal::subject_covers(subject, pattern); });
  if (!covered) {
    return invalid("subject template '" + options.subject_template + "' makes subjects (" +
                   pattern + ") that stream subjects " + join_subjects(options.stream_subjects) +
                   " do not take; change --subject or --stream-subject");
  }
  if (options.max_in_flight < 1) return invalid("max in flight must be at least 1");
  if (options.max_attempts < 1) return invalid("max attempts must be at least 1");
  if (options.rows_per_partition < 1) return invalid("rows per partition must be at least 1");
  if (options.retention_batch < 1) return invalid("retention batch must be at least 1");
  if (options.poll_interval.count() < 1 || options.lease_interval.count() < 1 ||
      options.fetch_interval.count() < 1 || options.ack_timeout.count() < 1 ||
      options.backoff_initial.count() < 1 || options.backoff_max < options.backoff_initial) {
    return invalid("intervals and timeouts must be positive, backoff max >= backoff initial");
  }
  return {};
}

void RateWindow::add(Clock::time_point now, std::uint64_t count) {
  const std::int64_t second = second_of(now);
  const auto slot = static_cast<std::size_t>(second % kSeconds);
  if (seconds_[slot] != second) {
    seconds_[slot] = second;
    counts_[slot] = 0;
  }
  counts_[slot] += count;
}

double RateWindow::per_second(Clock::time_point now) const {
  const std::int64_t second = second_of(now);
  std::uint64_t total = 0;
  for (int i = 0; i < kSeconds; ++i) {
    if (second - seconds_[static_cast<std::size_t>(i)] < kSeconds) {
      total += counts_[static_cast<std::size_t>(i)];
    }
  }
  return static_cast<double>(total) / kSeconds;
}

std::int64_t RateWindow::second_of(Clock::time_point now) const {
  return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
}

namespace {
constexpr double kBucketGrowth = 1.2;
constexpr double kFirstBucketMicros = 100.0;
}  // namespace

std::int64_t LatencyHistogram::upper_bound_micros(int bucket) {
  return static_cast<std::int64_t>(kFirstBucketMicros * std::pow(kBucketGrowth, bucket));
}

void LatencyHistogram::add(std::chrono::microseconds latency) {
  const double micros = static_cast<double>(latency.count());
  int bucket = 0;
  if (micros > kFirstBucketMicros) {
    bucket = static_cast<int>(
        std::ceil(std::log(micros / kFirstBucketMicros) / std::log(kBucketGrowth)));
  }
  ++counts_[static_cast<std::size_t>(std::clamp(bucket, 0, kBuckets - 1))];
  ++count_;
}

std::chrono::microseconds LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return std::chrono::microseconds::zero();
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (int bucket = 0; bucket < kBuckets; ++bucket) {
    seen += counts_[static_cast<std::size_t>(bucket)];
    if (seen >= std::max<std::uint64_t>(rank, 1)) {
      return std::chrono::microseconds(upper_bound_micros(bucket));
    }
  }
  return std::chrono::microseconds(upper_bound_micros(kBuckets - 1));
}

Relay::Relay(RelayOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Relay::~Relay() = default;
Result<void> Relay::run() { return impl_->run(); }
void Relay::stop() { impl_->stop(); }
RelayMetrics Relay::metrics() const { return impl_->metrics(); }

Relay::Impl::Impl(RelayOptions options)
    : options_(std::move(options)),
      database_(options_.database_uri),
      leases_(options_.database_uri),
      broker_backoff_(options_.backoff_initial, options_.backoff_max),
      database_backoff_(options_.backoff_initial, options_.backoff_max) {}

Relay::Impl::~Impl() {
  // The publisher goes first: after its connection is closed, nats.c calls into inbox_ no
  // more (see nats_publisher.cpp).
  publisher_.reset();
}

void Relay::Impl::stop() {
  stopping_ = true;
  inbox_.wake();
}

RelayMetrics Relay::Impl::metrics() const {
  std::lock_guard lock(metrics_mutex_);
  return metrics_;
}

Result<void> Relay::Impl::start() {
  if (started_) return fail(ErrorCode::kFailedPrecondition, "a Relay runs only once");
  started_ = true;
  if (auto valid = validate_relay_options(options_); !valid) return valid;

  const auto record = options_.retain_published.count() > 0
                          ? internal::MarkRecorder::Record::kMark
                          : internal::MarkRecorder::Record::kDelete;
  recorder_ = std::make_unique<internal::MarkRecorder>(
      options_.database_uri, record, options_.backoff_initial, options_.backoff_max,
      [this] { inbox_.wake(); });
  fetcher_ = std::make_unique<internal::AsyncFetcher>(options_.database_uri,
                                                      [this] { inbox_.wake(); });

  if (options_.nats_url) {
    publisher_ = internal::make_nats_publisher(
        {.url = *options_.nats_url,
         .stream_name = options_.stream_name,
         .stream_subjects = options_.stream_subjects,
         .duplicate_window = options_.duplicate_window,
         .ack_timeout = options_.ack_timeout,
         .max_in_flight = options_.max_in_flight,
         .format = options_.format},
        inbox_);
  } else {
    publisher_ = internal::make_stdout_publisher(options_.json_lines, inbox_);
  }
  auto builder =
      internal::MessageBuilder::create(options_.subject_template, publisher_->format());
  builder_.emplace(std::move(*builder));

  internal::relay_log().info(
      "starting: database {}, broker {}, stream {}, subject template '{}', format {}, up to {} "
      "messages in flight",
      redact_database_uri(options_.database_uri),
      options_.nats_url ? redact_nats_url(*options_.nats_url) : std::string("none (JSON lines)"),
      options_.stream_name, options_.subject_template,
      publisher_->format() == EnvelopeFormat::kJson ? "json" : "protobuf",
      options_.max_in_flight);
  return {};
}

Result<void> Relay::Impl::run() {
  if (auto started = start(); !started) {
    fail_fatally(started.error());
    update_metrics(Clock::now());
    return started;
  }

  while (!stopping_ && !fatal_) {
    const auto now = Clock::now();
    step_leases(now);
    step_broker(now);
    step_database_writes(now, false);
    step_fetch(now);
    step_publish(now);
    step_retention(now);
    step_backlog(now);
    update_metrics(now);

    if (stopping_ || fatal_) break;
    settle(inbox_.wait(next_wake(Clock::now())), Clock::now());
  }

  shut_down();
  if (fatal_) return std::unexpected(*fatal_);
  return {};
}

void Relay::Impl::step_leases(Clock::time_point now) {
  if (now < next_lease_) return;

  const internal::LeaseStep step =
      leases_.rebalance([&](int partition) { return !book_.busy(partition); });
  for (const int partition : step.gained) book_.set_owned(partition, true);
  for (const int partition : step.lost) book_.set_owned(partition, false);

  if (!step.gained.empty()) fetch_requested_ = true;
  // Another relay may have left rows of these partitions unpublished below our bounds.
  if (!step.gained.empty() || !step.lost.empty()) forget_fetched_through();
  if (!step.gained.empty() || !step.lost.empty()) {
    internal::relay_log().info(
        "partitions: holding {} of 64, {} relay(s) running (took [{}], gave up [{}])",
        leases_.owned().size(), step.relays, join_partitions(step.gained),
        join_partitions(step.lost));
  }

  if (!step.error) {
    lease_failures_ = 0;
    next_lease_ = now + options_.lease_interval;
    return;
  }
  if (!retryable(*step.error)) {
    fail_fatally(*step.error);
    return;
  }
  ++lease_failures_;
  const auto delay = internal::backoff_delay(lease_failures_, options_.backoff_initial,
                                             std::max(options_.backoff_max,
                                                      options_.lease_interval));
  next_lease_ = now + delay;
  // The first failure of a run is always logged: it means this relay gave up its partitions,
  // which an operator should see even while other database warnings are being held back.
  if (lease_failures_ == 1 || database_warnings_.allow(now)) {
    internal::relay_log().warn("partition leases unavailable, retrying in {} ms: {}",
                               delay.count(), step.error->to_string());
  }
}

void Relay::Impl::step_broker(Clock::time_point now) {
  if (broker_ready_ && !publisher_->connected()) {
    broker_ready_ = false;
    publisher_->disconnect();
    const std::size_t abandoned = book_.abandon_in_flight();
    const auto delay = broker_backoff_.failed(now);
    internal::relay_log().warn(
        "lost the connection to NATS; {} messages in flight will be published again in order "
        "after reconnecting (first attempt in {} ms)",
        abandoned, delay.count());
  }
  if (broker_ready_ || !broker_backoff_.due(now)) return;

  auto connected = publisher_->connect();
  if (connected) {
    if (broker_backoff_.failures() > 0) {
      internal::relay_log().info("connected to NATS again after {} failed attempts",
                                 broker_backoff_.failures());
    } else if (options_.nats_url) {
      internal::relay_log().info("connected to NATS; largest message accepted: {} bytes",
                                 publisher_->max_message_size());
    }
    broker_ready_ = true;
    broker_backoff_.succeeded();
    broker_warnings_.reset();
    return;
  }
  if (!retryable(connected.error())) {
    fail_fatally(connected.error());
    return;
  }
  const auto delay = broker_backoff_.failed(now);
  if (broker_warnings_.allow(now)) {
    internal::relay_log().warn(
        "broker unavailable ({} attempts so far, {} warnings held back), rows wait in the "
        "outbox; next attempt in {} ms: {}",
        broker_backoff_.failures(), broker_warnings_.suppressed(), delay.count(),
        connected.error().message);
  }
}

Relay::Impl::Clock::time_point Relay::Impl::next_wake(Clock::time_point now) const {
  auto next = now + std::chrono::seconds(1);
  const auto consider = [&](Clock::time_point at) { next = std::min(next, at); };

  consider(next_lease_);
  if (!broker_ready_) consider(broker_backoff_.retry_at());

  const bool database_due = database_backoff_.due(now);
  const bool has_room = !room().empty();
  // A fetch under way wakes the loop when it finishes.
  if (!leases_.owned().empty() && has_room && !(fetcher_ && fetcher_->busy())) {
    consider(database_due ? std::max(next_poll_, now) : database_backoff_.retry_at());
  }
  if (!to_mark_.empty() || !failure_writes_.empty()) {
    consider(database_due ? (failure_writes_.empty() ? mark_due_ : now)
                          : database_backoff_.retry_at());
  }
  // A retry that is due but cannot start (the pipeline is full) must not wake the loop in
  // a spin; the next acknowledgement will.
  if (broker_ready_ && book_.in_flight_count() < static_cast<std::size_t>(options_.max_in_flight)) {
    if (const auto retry = book_.next_retry()) consider(*retry);
  }
  if (options_.retention_interval.count() > 0) {
    consider(database_due ? next_retention_ : database_backoff_.retry_at());
  }
  consider(next_backlog_);
  return next;
}

bool Relay::Impl::database_ok(Clock::time_point now, const Result<void>& result) {
  if (result) {
    if (database_backoff_.failures() > 0) {
      internal::relay_log().info("database reachable again after {} failed attempts",
                                 database_backoff_.failures());
      database_warnings_.reset();
    }
    database_backoff_.succeeded();
    return true;
  }
  const auto delay = database_backoff_.failed(now);
  // A server that restarted may have lost recent marks (they do not wait for the disk), so
  // their rows are pending again, below the bounds fetches start from.
  forget_fetched_through();
  if (!retryable(result.error())) {
    database_refused_ = true;
    fail_fatally(result.error());
    return false;
  }
  if (database_warnings_.allow(now)) {
    internal::relay_log().warn(
        "database unavailable ({} attempts so far, {} warnings held back); acknowledged rows "
        "are kept in memory and recorded later; next attempt in {} ms: {}",
        database_backoff_.failures(), database_warnings_.suppressed(), delay.count(),
        result.error().message);
  }
  return false;
}

void Relay::Impl::fail_fatally(Error error) {
  if (fatal_) return;
  internal::relay_log().error("stopping on an error that retrying cannot fix: {}",
                              error.to_string());
  fatal_ = std::move(error);
}

void Relay::Impl::update_metrics(Clock::time_point now) {
  counters_.owned_partitions = static_cast<int>(leases_.owned().size());
  counters_.in_flight = static_cast<int>(book_.in_flight_count());
  counters_.broker_connected = broker_ready_;
  counters_.published_per_second = rate_.per_second(now);
  counters_.commit_to_ack_count = commit_to_ack_.count();
  counters_.commit_to_ack_p50 = commit_to_ack_.quantile(0.5);
  counters_.commit_to_ack_p99 = commit_to_ack_.quantile(0.99);
  counters_.fatal_error = fatal_;

  std::lock_guard lock(metrics_mutex_);
  metrics_ = counters_;
}

void Relay::Impl::shut_down() {
  auto now = Clock::now();
  const auto deadline = now + options_.shutdown_grace;
  internal::relay_log().info("stopping: waiting up to {} ms for {} acknowledgements in flight",
                             options_.shutdown_grace.count(), book_.in_flight_count());

  // The batch in flight finishes: its acknowledgements are recorded, nothing new is sent.
  while (book_.in_flight_count() > 0 && broker_ready_ && publisher_->connected() &&
         now < deadline) {
    settle(inbox_.wait(std::min(deadline, now + std::chrono::milliseconds(50))), Clock::now());
    now = Clock::now();
  }
  while ((!to_mark_.empty() || !failure_writes_.empty()) && now < deadline &&
         !database_refused_) {
    step_database_writes(now, true);
    if (!to_mark_.empty() || !failure_writes_.empty()) {
      inbox_.wait(std::min(deadline, database_backoff_.retry_at()));
    }
    now = Clock::now();
  }
  if (recorder_) {
    recorder_->wait_until_idle(deadline);
    if (options_.retain_published.count() == 0) {
      counters_.rows_deleted += recorder_->take_recorded();
    }
  }

  const std::size_t unrecorded = to_mark_.size() + (recorder_ ? recorder_->pending_count() : 0);
  publisher_->disconnect();
  leases_.release_all();
  update_metrics(now);
  internal::relay_log().info(
      "stopped: {} rows published ({} already in JetStream), {} dead letters, {} published "
      "rows deleted; {} messages left unacknowledged and {} acknowledged but unrecorded will "
      "be published again by the next relay; commit to PubAck p50 {:.1f} ms, p99 {:.1f} ms",
      counters_.published, counters_.duplicates, counters_.dead_letters, counters_.rows_deleted,
      book_.in_flight_count(), unrecorded, counters_.commit_to_ack_p50.count() / 1000.0,
      counters_.commit_to_ack_p99.count() / 1000.0);
}

}  // namespace deedkit
