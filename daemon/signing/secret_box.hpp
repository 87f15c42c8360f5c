// SecretBox: authenticated encryption (AES-256-GCM) of secrets stored in the
// database. The 32-byte master key lives outside the database (a file, e.g. a
// systemd credential). Sealed format, as text safe for a `text` column:
//   "v1:" + base64(nonce[12] || ciphertext || tag[16])
// The associated data (e.g. the owning subscription id) is authenticated, so a
// sealed secret copied onto another row does not open.
// Immutable after construction; Seal/Open are thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgcourier::signing {

class SecretBox {
 public:
  // key must be exactly 32 bytes; throws std::invalid_argument otherwise.
  explicit SecretBox(std::string key);

  // Reads a key file: base64 or hex of 32 bytes, surrounding whitespace ignored.
  // Throws std::runtime_error naming the path and what is wrong (never the key).
  static SecretBox FromKeyFile(const std::string& path);
  // A new random key, base64-encoded, for writing to a key file.
  static std::string GenerateKeyText();

  std::string Seal(std::string_view plaintext, std::string_view associated_data) const;
  // nullopt when the text is malformed, the tag does not verify, or the
  // associated data differs. Never throws on bad input.
  std::optional<std::string> Open(std::string_view sealed, std::string_view associated_data) const;

  // "fp_" + 16 hex digits of HMAC-SHA256(secret) under a key derived from the
  // master key: equal secrets give equal fingerprints (change detection), and
  // without the master key it cannot be used to test guesses of the secret.
  std::string Fingerprint(std::string_view secret) const;

 private:
  std::string key_;
};

}  // namespace pgcourier::signing
