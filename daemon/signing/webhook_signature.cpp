#include "signing/webhook_signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <memory>
#include <stdexcept>

namespace pgcourier::signing {
namespace {

constexpr std::string_view kSecretPrefix = "whsec_";
constexpr std::string_view kSignatureVersion = "v1,";
constexpr std::size_t kMinSecretBytes = 24;
constexpr std::size_t kMaxSecretBytes = 64;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::int8_t kInvalid = -1;

constexpr std::array<std::int8_t, 256> MakeDecodeTable() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = kInvalid;
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}
constexpr std::array<std::int8_t, 256> kDecodeTable = MakeDecodeTable();

std::int8_t SextetOf(char c) { return kDecodeTable[static_cast<unsigned char>(c)]; }

std::uint32_t ByteAt(std::string_view bytes, std::size_t i) {
  return static_cast<unsigned char>(bytes[i]);
}

// Validates the whole input before producing any output, so a rejected input
// (possibly a secret with one bad character) never leaves a partially decoded
// copy behind in freed memory.
bool IsCanonicalBase64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  // "Zg=A": the '=' counted above is not trailing padding.
  if (padding == 1 && text.back() != '=') return false;
  const std::size_t data_chars = text.size() - padding;
  for (std::size_t i = 0; i < data_chars; ++i) {
    if (SextetOf(text[i]) == kInvalid) return false;
  }
  // Unused low bits of the last sextet must be zero, otherwise several texts
  // would decode to the same bytes; canonical-only keeps decode/encode a bijection.
  if (padding == 2 && (SextetOf(text[data_chars - 1]) & 0x0F) != 0) return false;
  if (padding == 1 && (SextetOf(text[data_chars - 1]) & 0x03) != 0) return false;
  return true;
}

void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t chunk = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t group = ByteAt(bytes, i) << 16;
    if (chunk > 1) group |= ByteAt(bytes, i + 1) << 8;
    if (chunk > 2) group |= ByteAt(bytes, i + 2);
    out.push_back(kAlphabet[(group >> 18) & 0x3F]);
    out.push_back(kAlphabet[(group >> 12) & 0x3F]);
    out.push_back(chunk > 1 ? kAlphabet[(group >> 6) & 0x3F] : '=');
    out.push_back(chunk > 2 ? kAlphabet[group & 0x3F] : '=');
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (!IsCanonicalBase64(text)) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    std::uint32_t group = 0;
    int data_chars = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      group <<= 6;
      if (text[i + j] != '=') {
        group |= static_cast<std::uint32_t>(SextetOf(text[i + j]));
        ++data_chars;
      }
    }
    out.push_back(static_cast<char>((group >> 16) & 0xFF));
    if (data_chars >= 3) out.push_back(static_cast<char>((group >> 8) & 0xFF));
    if (data_chars == 4) out.push_back(static_cast<char>(group & 0xFF));
  }
  return out;
}

std::optional<std::string> DecodeWebhookSecret(std::string_view whsec) {
  if (!whsec.starts_with(kSecretPrefix)) return std::nullopt;
  std::optional<std::string> key = Base64Decode(whsec.substr(kSecretPrefix.size()));
  if (!key) return std::nullopt;
  if (key->size() < kMinSecretBytes || key->size() > kMaxSecretBytes) {
    Wipe(*key);
    return std::nullopt;
  }
  return key;
}

std::string GenerateWebhookSecret(std::size_t bytes) {
  if (bytes < kMinSecretBytes || bytes > kMaxSecretBytes) {
    throw std::runtime_error("webhook secret length must be 24..64 bytes, got " +
                             std::to_string(bytes));
  }
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed while generating a webhook secret");
  }
  std::string secret = std::string(kSecretPrefix) + Base64Encode(raw);
  Wipe(raw);
  return secret;
}

std::string HmacSha256(std::string_view key, std::initializer_list<std::string_view> pieces) {
  if (key.size() > static_cast<std::size_t>(INT_MAX)) {
    throw std::invalid_argument("signing key is too long");
  }
  // A null key pointer means "keep the previous key" in parts of OpenSSL's MAC
  // API; a real pointer keeps an empty key (legal for HMAC) unambiguous.
  static constexpr unsigned char kEmptyKey = 0;
  const auto* key_ptr = key.empty() ? &kEmptyKey : reinterpret_cast<const unsigned char*>(key.data());

  // Fed in pieces: the body (which can be megabytes) is never copied.
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (kHmac == nullptr) throw std::runtime_error("HMAC is not available in this OpenSSL");
  const std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(kHmac), &EVP_MAC_CTX_free);
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t mac_len = 0;
  bool ok = ctx && EVP_MAC_init(ctx.get(), key_ptr, key.size(), params) == 1;
  for (const auto piece : pieces) {
    ok = ok && EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(piece.data()), piece.size()) == 1;
  }
  if (!ok || EVP_MAC_final(ctx.get(), mac, &mac_len, sizeof mac) != 1) throw std::runtime_error("HMAC-SHA256 failed");
  return {reinterpret_cast<const char*>(mac), mac_len};
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string Sign(std::string_view key, std::string_view msg_id, std::int64_t timestamp,
                 std::string_view body) {
  const std::string timestamp_text = std::to_string(timestamp);
  return std::string(kSignatureVersion) + Base64Encode(HmacSha256(key, {msg_id, ".", timestamp_text, ".", body}));
}

std::string SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                            std::int64_t timestamp, std::string_view body) {
  std::string header;
  for (const std::string& key : keys) {
    if (!header.empty()) header.push_back(' ');
    header += Sign(key, msg_id, timestamp, body);
  }
  return header;
}

}  // namespace pgcourier::signing

namespace pgcourier::signing {
namespace {

constexpr std::string_view kPrivatePrefix = "whsk_";
constexpr std::string_view kPublicPrefix = "whpk_";
constexpr std::string_view kAsymmetricVersion = "v1a,";
constexpr std::size_t kEd25519Bytes = 32;

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

PkeyPtr PrivateKey(std::string_view seed) {
  if (seed.size() != kEd25519Bytes) throw std::invalid_argument("an ed25519 seed is 32 bytes");
  return {EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()),
                                       seed.size()),
          &EVP_PKEY_free};
}

std::string Message(std::string_view msg_id, std::int64_t timestamp, std::string_view body) {
  const std::string ts = std::to_string(timestamp);
  std::string message;
  message.reserve(msg_id.size() + ts.size() + body.size() + 2);
  message.append(msg_id).append(".").append(ts).append(".").append(body);
  return message;
}

}  // namespace

std::optional<SigningKey> DecodeSigningSecret(std::string_view secret) {
  if (secret.substr(0, kPrivatePrefix.size()) == kPrivatePrefix) {
    auto seed = Base64Decode(secret.substr(kPrivatePrefix.size()));
    if (!seed || seed->size() != kEd25519Bytes) return std::nullopt;
    return SigningKey{std::move(*seed), SigningKey::Scheme::kEd25519};
  }
  auto key = DecodeWebhookSecret(secret);
  if (!key) return std::nullopt;
  return SigningKey{std::move(*key), SigningKey::Scheme::kHmacSha256};
}

std::string Ed25519PublicKey(std::string_view seed) {
  const auto pkey = PrivateKey(seed);
  unsigned char pub[kEd25519Bytes];
  std::size_t len = sizeof pub;
  if (!pkey || EVP_PKEY_get_raw_public_key(pkey.get(), pub, &len) != 1 || len != sizeof pub) {
    throw std::runtime_error("ed25519 public key derivation failed");
  }
  return std::string(kPublicPrefix) + Base64Encode(std::string_view(reinterpret_cast<const char*>(pub), len));
}

std::pair<std::string, std::string> GenerateEd25519Secret() {
  std::string seed(kEd25519Bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(seed.data()), static_cast<int>(seed.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed while generating an ed25519 key");
  }
  std::pair<std::string, std::string> out{std::string(kPrivatePrefix) + Base64Encode(seed), Ed25519PublicKey(seed)};
  Wipe(seed);
  return out;
}

std::string SignEd25519(std::string_view seed, std::string_view msg_id, std::int64_t timestamp,
                        std::string_view body) {
  const auto pkey = PrivateKey(seed);
  const MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const std::string message = Message(msg_id, timestamp, body);
  unsigned char sig[64];
  std::size_t sig_len = sizeof sig;
  if (!pkey || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    throw std::runtime_error("ed25519 signing failed");
  }
  return std::string(kAsymmetricVersion) + Base64Encode(std::string_view(reinterpret_cast<const char*>(sig), sig_len));
}

bool VerifyEd25519(std::string_view public_key, std::string_view signature, std::string_view msg_id,
                   std::int64_t timestamp, std::string_view body) {
  std::string raw_public(public_key);
  if (public_key.substr(0, kPublicPrefix.size()) == kPublicPrefix) {
    auto decoded = Base64Decode(public_key.substr(kPublicPrefix.size()));
    if (!decoded) return false;
    raw_public = std::move(*decoded);
  }
  if (raw_public.size() != kEd25519Bytes || signature.substr(0, kAsymmetricVersion.size()) != kAsymmetricVersion) {
    return false;
  }
  const auto sig = Base64Decode(signature.substr(kAsymmetricVersion.size()));
  if (!sig) return false;
  const PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                                 reinterpret_cast<const unsigned char*>(raw_public.data()),
                                                 raw_public.size()),
                     &EVP_PKEY_free);
  const MdCtxPtr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const std::string message = Message(msg_id, timestamp, body);
  return pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                          reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

std::string SignatureHeaderForKeys(const std::vector<SigningKey>& keys, std::string_view msg_id, std::int64_t timestamp,
                            std::string_view body) {
  std::string header;
  for (const auto& key : keys) {
    if (!header.empty()) header.push_back(' ');
    header += key.scheme == SigningKey::Scheme::kEd25519 ? SignEd25519(key.key, msg_id, timestamp, body)
                                                         : Sign(key.key, msg_id, timestamp, body);
  }
  return header;
}

}  // namespace pgcourier::signing
