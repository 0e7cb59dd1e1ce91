#pragma once

// Helpers shared by the decider tests: money, outcome assertions whose failure message says
// which rule fired, and the seed of the randomised tests.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "deedkit/engine/decider.hpp"
#include "deedkit/realestate/v1/common.pb.h"

namespace deedkit::realestate::test_support {

inline v1::Money money(std::int64_t amount_minor, std::string_view currency = "EUR") {
  v1::Money result;
  result.set_amount_minor(amount_minor);
  result.set_currency(std::string(currency));
  return result;
}

// Succeeds when decide accepted the command; otherwise the message carries code and reason.
template <typename Event>
::testing::AssertionResult accepted(const Decision<Event>& decision) {
  if (decision) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected the command to be accepted, but it was "
                                       << "rejected with " << decision.error().code << ": "
                                       << decision.error().reason;
}

// Succeeds when decide rejected the command with `code` and a reason mentioning `mention`.
template <typename Event>
::testing::AssertionResult rejected_with(const Decision<Event>& decision, std::string_view code,
                                         std::string_view mention = "") {
  if (decision) {
    return ::testing::AssertionFailure() << "expected rejection " << code << ", but decide "
                                         << "accepted the command with " << decision->size()
                                         << " event(s)";
  }

  const Rejection& rejection = decision.error();
  if (rejection.code != code) {
    return ::testing::AssertionFailure() << "expected rejection " << code << ", got "
                                         << rejection.code << ": " << rejection.reason;
  }
  if (rejection.reason.empty() || rejection.reason.find(mention) == std::string::npos) {
    return ::testing::AssertionFailure() << "rejection " << code << " has reason \""
                                         << rejection.reason << "\", which should mention \""
                                         << mention << "\"";
  }
  return ::testing::AssertionSuccess();
}

// The seed for a randomised test: DEEDKIT_TEST_SEED when set (to replay a failure), else a
// fresh one. Printed either way, so any failure can be reproduced.
inline std::uint64_t test_seed(std::string_view test_name) {
  std::uint64_t seed = 0;
  if (const char* fixed = std::getenv("DEEDKIT_TEST_SEED")) {
    seed = std::strtoull(fixed, nullptr, 10);
  } else {
    seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  std::printf("%.*s: seed %llu (replay with DEEDKIT_TEST_SEED=%llu)\n",
              static_cast<int>(test_name.size()), test_name.data(),
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

}  // namespace deedkit::realestate::test_support
