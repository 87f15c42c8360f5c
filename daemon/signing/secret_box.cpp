#include "signing/secret_box.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "base/file.hpp"
#include "signing/webhook_signature.hpp"

namespace pgcourier::signing {
namespace {

constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::string_view kSealedPrefix = "v1:";
constexpr std::size_t kKeyBase64Chars = 44;
constexpr std::size_t kKeyHexChars = 64;
// A key file is a few dozen bytes; a bound keeps a wrong path (a log file, a
// device) from being slurped into memory.
constexpr std::size_t kMaxKeyFileBytes = 4096;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// Scrubs a string holding key material before its buffer is released.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& s) : s_(s) {}
  ~WipeOnExit() {
    if (!s_.empty()) OPENSSL_cleanse(s_.data(), s_.size());
  }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string& s_;
};

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* MutableBytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

CipherCtx NewCipherCtx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw std::runtime_error("SecretBox: EVP_CIPHER_CTX_new failed");
  return ctx;
}

bool FitsInInt(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> HexDecode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out(text.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = HexValue(text[2 * i]);
    const int low = HexValue(text[2 * i + 1]);
    if (high < 0 || low < 0) {
      OPENSSL_cleanse(out.data(), out.size());
      return std::nullopt;
    }
    out[i] = static_cast<char>((high << 4) | low);
  }
  return out;
}

[[noreturn]] void ThrowKeyFileError(const std::string& path, const std::string& what) {
  throw std::runtime_error("SecretBox key file '" + path + "': " + what);
}

// Non-blocking open + fstat (base/file.hpp): a FIFO or a device given as the
// key file is refused at once instead of blocking start-up or a reload.
std::string ReadKeyFile(const std::string& path) {
  try {
    return base::ReadSmallFile(path, base::ReadOptions{kMaxKeyFileBytes, false, true});
  } catch (const base::FileError& e) {
    const std::string message = e.what();
    ThrowKeyFileError(path, message.compare(0, path.size() + 2, path + ": ") == 0 ? message.substr(path.size() + 2)
                                                                                  : message);
  }
}

}  // namespace

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {
  if (key_.size() != kKeyBytes) {
    const std::size_t size = key_.size();
    OPENSSL_cleanse(key_.data(), key_.size());
    throw std::invalid_argument("SecretBox key must be 32 bytes, got " + std::to_string(size));
  }
}

SecretBox SecretBox::FromKeyFile(const std::string& path) {
  std::string content = ReadKeyFile(path);
  WipeOnExit wipe_content(content);

  std::string_view text = content;
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);

  std::optional<std::string> key;
  if (text.size() == kKeyBase64Chars) {
    key = Base64Decode(text);
    if (!key) ThrowKeyFileError(path, "44 characters but not valid base64");
  } else if (text.size() == kKeyHexChars) {
    key = HexDecode(text);
    if (!key) ThrowKeyFileError(path, "64 characters but not valid hex");
  } else {
    ThrowKeyFileError(path,
                      "wrong length: expected a 32-byte key as 44 base64 or 64 hex "
                      "characters, found " +
                          std::to_string(text.size()) + " characters");
  }
  WipeOnExit wipe_key(*key);
  if (key->size() != kKeyBytes) {
    // 44 base64 characters are 31, 32 or 33 bytes depending on the padding.
    ThrowKeyFileError(path, "wrong length: base64 decodes to " + std::to_string(key->size()) +
                                " bytes, expected 32");
  }
  return SecretBox(*key);
}

std::string SecretBox::GenerateKeyText() {
  std::string key(kKeyBytes, '\0');
  WipeOnExit wipe_key(key);
  if (RAND_bytes(MutableBytes(key), static_cast<int>(key.size())) != 1) {
    throw std::runtime_error("SecretBox: RAND_bytes failed while generating a key");
  }
  return Base64Encode(key);
}

std::string SecretBox::Seal(std::string_view plaintext, std::string_view associated_data) const {
  if (!FitsInInt(plaintext.size()) || !FitsInInt(associated_data.size())) {
    throw std::invalid_argument("SecretBox::Seal: input too large");
  }
  std::string raw(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = MutableBytes(raw);
  unsigned char* ciphertext = nonce + kNonceBytes;
  unsigned char* tag = ciphertext + plaintext.size();

  // Random 96-bit nonces: safe for far more seals per key than a secrets
  // table will ever see (NIST's bound is 2^32).
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
    throw std::runtime_error("SecretBox::Seal: RAND_bytes failed");
  }

  CipherCtx ctx = NewCipherCtx();
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes),
                          nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key_), nonce) != 1) {
    throw std::runtime_error("SecretBox::Seal: cipher initialisation failed");
  }
  if (!associated_data.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1) {
    throw std::runtime_error("SecretBox::Seal: associated data update failed");
  }
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ciphertext, &len, Bytes(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    throw std::runtime_error("SecretBox::Seal: encryption failed");
  }
  // GCM emits no bytes at finalisation; the buffer only satisfies the API.
  unsigned char no_output[EVP_MAX_BLOCK_LENGTH];
  if (EVP_EncryptFinal_ex(ctx.get(), no_output, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    throw std::runtime_error("SecretBox::Seal: finalisation failed");
  }
  return std::string(kSealedPrefix) + Base64Encode(raw);
}

std::optional<std::string> SecretBox::Open(std::string_view sealed,
                                           std::string_view associated_data) const {
  if (!sealed.starts_with(kSealedPrefix)) return std::nullopt;
  const std::optional<std::string> raw = Base64Decode(sealed.substr(kSealedPrefix.size()));
  if (!raw || raw->size() < kNonceBytes + kTagBytes) return std::nullopt;
  const std::size_t ciphertext_size = raw->size() - kNonceBytes - kTagBytes;
  if (!FitsInInt(ciphertext_size) || !FitsInInt(associated_data.size())) return std::nullopt;

  const unsigned char* nonce = Bytes(*raw);
  const unsigned char* ciphertext = nonce + kNonceBytes;
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer.
  unsigned char tag[kTagBytes];
  std::memcpy(tag, ciphertext + ciphertext_size, kTagBytes);

  CipherCtx ctx = NewCipherCtx();
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key_), nonce) != 1) {
    return std::nullopt;
  }
  if (!associated_data.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1) {
    return std::nullopt;
  }
  std::string plaintext(ciphertext_size, '\0');
  // Until the tag verifies, the buffer holds unauthenticated plaintext: scrub
  // it on every failure path rather than hand it back to the allocator.
  auto fail = [&plaintext]() -> std::optional<std::string> {
    if (!plaintext.empty()) OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return std::nullopt;
  };
  if (ciphertext_size > 0 &&
      (EVP_DecryptUpdate(ctx.get(), MutableBytes(plaintext), &len, ciphertext,
                         static_cast<int>(ciphertext_size)) != 1 ||
       static_cast<std::size_t>(len) != ciphertext_size)) {
    return fail();
  }
  unsigned char no_output[EVP_MAX_BLOCK_LENGTH];
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), no_output, &len) != 1) {
    return fail();
  }
  return plaintext;
}

}  // namespace pgcourier::signing

namespace pgcourier::signing {
namespace {

std::string HmacSha256(std::string_view key, std::string_view message) {
  static constexpr unsigned char kEmptyKey = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&kEmptyKey) : key.data();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), mac, &mac_len) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return {reinterpret_cast<const char*>(mac), mac_len};
}

}  // namespace

std::string SecretBox::Fingerprint(std::string_view secret) const {
  const std::string derived = HmacSha256(key_, "pgcourier credential fingerprint v1");
  const std::string mac = HmacSha256(derived, secret);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "fp_";
  for (std::size_t i = 0; i < 8; ++i) {
    const auto byte = static_cast<unsigned char>(mac[i]);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

}  // namespace pgcourier::signing
