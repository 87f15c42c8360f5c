// Standard Webhooks signatures (https://www.standardwebhooks.com/):
// HMAC-SHA256 over "msg_id.timestamp.body", base64, prefixed "v1,".
// Pure functions over OpenSSL; thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
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

}  // namespace pgcourier::signing
