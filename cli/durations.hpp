#pragma once

// Durations on the command line, written as "500ms", "5s", "2m", "1h" (or "0").

#include <chrono>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace deedkit::cli {

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);

// For CLI11's check(): refuses anything parse_duration does not take, saying what it expects.
const CLI::Validator& duration_validator();

// REQUIRES: `text` passed duration_validator().
std::chrono::milliseconds duration(const std::string& text);

}  // namespace deedkit::cli
