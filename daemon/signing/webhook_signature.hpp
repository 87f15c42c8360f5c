// Standard Webhooks signatures (https://www.standardwebhooks.com/) over
// "msg_id.timestamp.body": v1 (HMAC-SHA256 with a whsec_ secret, base64,
// prefixed "v1,") and v1a (ed25519 with a whsk_ private key, the seed; its
// public key is whpk_ + base64 of the 32 bytes, and receivers verify with it
// holding no secret; prefixed "v1a,").
// Pure functions over OpenSSL; thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgcourier::signing {

std::string Base64Encode(std::string_view bytes);
// Standard alphabet, padding required; whitespace is not accepted. nullopt on any error.
std::optional<std::string> Base64Decode(std::string_view text);

// "whsec_" + base64(raw key bytes). Returns the raw key bytes, or nullopt when
// the prefix is missing, the base64 is invalid or the key is not 24..64 bytes.
std::optional<std::string> DecodeWebhookSecret(std::string_view whsec);
// A new secret: "whsec_" + base64 of `bytes` random bytes from the OS CSPRNG.
// Throws std::runtime_error if the CSPRNG fails or bytes is outside 24..64.
std::string GenerateWebhookSecret(std::size_t bytes = 32);

// A key a delivery is signed with: raw HMAC key bytes, or an ed25519 seed (32 bytes).
struct SigningKey {
  enum class Scheme { kHmacSha256, kEd25519 };
  std::string key;
  Scheme scheme = Scheme::kHmacSha256;
};

// A secret as it is sealed: "whsec_..." (v1) or "whsk_" + base64 of a 32-byte
// ed25519 seed (v1a). nullopt when it is neither.
std::optional<SigningKey> DecodeSigningSecret(std::string_view secret);
// A new ed25519 key pair from the OS CSPRNG: {"whsk_..." (the private key, to
// seal), "whpk_..." (the public key, to show)}. Throws std::runtime_error.
std::pair<std::string, std::string> GenerateEd25519Secret();
// "whpk_" + base64 of the public key of a 32-byte seed. Throws std::invalid_argument for another size.
std::string Ed25519PublicKey(std::string_view seed);
// One "v1a,<base64>" signature (64 bytes) with a 32-byte seed. The message is
// assembled in one buffer (ed25519 is not streamed): one copy of the body
// while it is signed. Throws std::invalid_argument for a bad seed.
std::string SignEd25519(std::string_view seed, std::string_view msg_id, std::int64_t timestamp, std::string_view body);
// True when `signature` ("v1a,<base64>") is `public_key`'s ("whpk_..." or raw
// 32 bytes) over the message, checked with OpenSSL's EVP_DigestVerify.
bool VerifyEd25519(std::string_view public_key, std::string_view signature, std::string_view msg_id,
                   std::int64_t timestamp, std::string_view body);
// HMAC-SHA256 (raw 32 bytes) of the pieces, concatenated, under `key`: the
// one HMAC of the code base (Standard Webhooks here, and the inbound schemes
// of pgcourier-gateway's ingress: GitHub, Stripe, a generic header).
std::string HmacSha256(std::string_view key, std::initializer_list<std::string_view> pieces);
// Equal without a timing side channel (CRYPTO_memcmp); false for different lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Lower-case hex.
std::string HexEncode(std::string_view bytes);

// One "v1,<base64>" signature with the raw key bytes.
std::string Sign(std::string_view key, std::string_view msg_id, std::int64_t timestamp,
                 std::string_view body);
// The webhook-signature header value: one signature per key, space-separated,
// in the order given.
std::string SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                            std::int64_t timestamp, std::string_view body);
// The same with keys of either scheme: v1 and v1a signatures side by side
// (a rotation from one to the other signs with both during its grace period).
std::string SignatureHeaderForKeys(const std::vector<SigningKey>& keys, std::string_view msg_id, std::int64_t timestamp,
                            std::string_view body);

}  // namespace pgcourier::signing
