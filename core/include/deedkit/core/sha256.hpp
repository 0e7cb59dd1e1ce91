#pragma once

// SHA-256 through OpenSSL's EVP interface. Used for migration checksums and idempotency
// request fingerprints.

#include <string>
#include <string_view>

namespace deedkit {

// Lower-case hex digest (64 characters) of `bytes`. Thread-safe.
std::string sha256_hex(std::string_view bytes);

}  // namespace deedkit
