#include "deedkit/core/sha256.hpp"

#include <array>
#include <stdexcept>

#include <openssl/evp.h>

namespace deedkit {

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_length = 0;

  // NOTE: EVP_Digest with a null engine only fails when OpenSSL itself is broken (no SHA-256
  // provider); that is an installation fault, not a recoverable error.
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &digest_length, EVP_sha256(),
                 nullptr) != 1) {
    throw std::runtime_error("OpenSSL EVP_Digest(SHA-256) failed: no usable SHA-256 provider");
  }

  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest_length * 2);
  for (unsigned int i = 0; i < digest_length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

}  // namespace deedkit
