#include <doctest/doctest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "signing/secret_box.hpp"
#include "signing/webhook_signature.hpp"

namespace {

using namespace pgcourier::signing;
using namespace std::string_literals;

// Standard Webhooks published example (https://www.standardwebhooks.com/).
constexpr std::string_view kVectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr std::string_view kVectorMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kVectorTimestamp = 1614265330;
constexpr std::string_view kVectorBody = R"({"test": 2432232314})";
constexpr std::string_view kVectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Deterministic so a failure reproduces; these tests check encoding, not randomness.
std::string PseudoRandomBytes(std::size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return parts;
}

std::string ErrorFrom(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  FAIL("expected std::runtime_error");
  return {};
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "signing_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string Write(const std::string& name, std::string_view content) const {
    const std::filesystem::path file = path_ / name;
    std::ofstream out(file, std::ios::binary);
    out << content;
    return file.string();
  }
  std::string PathOf(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

const std::string kKey32 = "0123456789abcdef0123456789ABCDEF";

// Swaps one byte of the decoded payload and re-encodes, so only the crypto can reject it.
std::string FlipPayloadByte(const std::string& sealed, std::size_t index_from_start) {
  std::string raw = *Base64Decode(std::string_view(sealed).substr(3));
  raw.at(index_from_start) = static_cast<char>(raw.at(index_from_start) ^ 0x01);
  return "v1:" + Base64Encode(raw);
}

}  // namespace

TEST_SUITE("base64") {
  TEST_CASE("encodes the RFC 4648 test vectors") {
    CHECK(Base64Encode("") == "");
    CHECK(Base64Encode("f") == "Zg==");
    CHECK(Base64Encode("fo") == "Zm8=");
    CHECK(Base64Encode("foo") == "Zm9v");
    CHECK(Base64Encode("foob") == "Zm9vYg==");
    CHECK(Base64Encode("fooba") == "Zm9vYmE=");
    CHECK(Base64Encode("foobar") == "Zm9vYmFy");
    CHECK(Base64Encode("\xfb\xff") == "+/8=");
  }

  TEST_CASE("decodes the RFC 4648 test vectors") {
    CHECK(Base64Decode("") == "");
    CHECK(Base64Decode("Zg==") == "f");
    CHECK(Base64Decode("Zm8=") == "fo");
    CHECK(Base64Decode("Zm9v") == "foo");
    CHECK(Base64Decode("Zm9vYg==") == "foob");
    CHECK(Base64Decode("Zm9vYmE=") == "fooba");
    CHECK(Base64Decode("Zm9vYmFy") == "foobar");
    CHECK(Base64Decode("+/8=") == "\xfb\xff");
  }

  TEST_CASE("round trips random bytes of every length from 0 to 40") {
    std::mt19937 rng(4648);
    for (std::size_t n = 0; n <= 40; ++n) {
      CAPTURE(n);
      for (int trial = 0; trial < 8; ++trial) {
        const std::string bytes = PseudoRandomBytes(n, rng);
        const std::string text = Base64Encode(bytes);
        CHECK(text.size() == (n + 2) / 3 * 4);
        CHECK(Base64Decode(text) == bytes);
      }
    }
  }

  TEST_CASE("round trips every byte value including NUL") {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    CHECK(Base64Decode(Base64Encode(all)) == all);
  }

  TEST_CASE("rejects lengths that are not a multiple of four") {
    for (const char* text : {"Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zm9vYg=", "Zg==="}) {
      CAPTURE(text);
      CHECK_FALSE(Base64Decode(text).has_value());
    }
  }

  TEST_CASE("rejects characters outside the standard alphabet") {
    for (std::string_view text : {"Zm9v!A==", "Zm9-", "Zm9_", "Zm.v", "Zm9\x80"}) {
      CAPTURE(text);
      CHECK_FALSE(Base64Decode(text).has_value());
    }
    CHECK_FALSE(Base64Decode("Zm\0v"s).has_value());
  }

  TEST_CASE("rejects whitespace anywhere") {
    for (const char* text : {"Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n", "Zm9v    "}) {
      CAPTURE(text);
      CHECK_FALSE(Base64Decode(text).has_value());
    }
  }

  TEST_CASE("rejects misplaced or excess padding") {
    for (const char* text : {"====", "A===", "Zg=A", "=Zm9", "Zm=v", "Zg==Zm9v", "Zm9v===="}) {
      CAPTURE(text);
      CHECK_FALSE(Base64Decode(text).has_value());
    }
  }

  TEST_CASE("rejects non-canonical encodings with nonzero padding bits") {
    // "Zh==" and "Zm9=" would decode to "f" / "fo" if the unused bits were ignored.
    CHECK_FALSE(Base64Decode("Zh==").has_value());
    CHECK_FALSE(Base64Decode("Zm9=").has_value());
  }

  TEST_CASE("never crashes on arbitrary short inputs") {
    std::mt19937 rng(1);
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_\0\xff"s;
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::uniform_int_distribution<std::size_t> length(0, 12);
    for (int i = 0; i < 20000; ++i) {
      std::string text(length(rng), '\0');
      for (char& c : text) c = alphabet[pick(rng)];
      if (const auto decoded = Base64Decode(text)) {
        // Only canonical text is accepted, so decoding is the exact inverse of encoding.
        CHECK(Base64Encode(*decoded) == text);
      }
    }
  }
}

TEST_SUITE("webhook signature") {
  TEST_CASE("Sign reproduces the Standard Webhooks published vector") {
    const auto key = DecodeWebhookSecret(kVectorSecret);
    REQUIRE(key.has_value());
    CHECK(key->size() == 24);
    CHECK(Sign(*key, kVectorMsgId, kVectorTimestamp, kVectorBody) == kVectorSignature);
  }

  TEST_CASE("signature changes when any signed field changes") {
    const std::string key = *DecodeWebhookSecret(kVectorSecret);
    const std::string base = Sign(key, kVectorMsgId, kVectorTimestamp, kVectorBody);
    CHECK(Sign(key, "msg_other", kVectorTimestamp, kVectorBody) != base);
    CHECK(Sign(key, kVectorMsgId, kVectorTimestamp + 1, kVectorBody) != base);
    CHECK(Sign(key, kVectorMsgId, kVectorTimestamp, R"({"test": 2432232315})") != base);
    CHECK(Sign(key + "x", kVectorMsgId, kVectorTimestamp, kVectorBody) != base);
  }

  TEST_CASE("signature is deterministic and shaped v1,<44 base64 chars>") {
    const std::string sig = Sign(kKey32, "msg_1", 1, "body");
    CHECK(sig == Sign(kKey32, "msg_1", 1, "body"));
    REQUIRE(sig.size() == 3 + 44);
    CHECK(sig.starts_with("v1,"));
    CHECK(Base64Decode(std::string_view(sig).substr(3))->size() == 32);
  }

  TEST_CASE("Sign accepts an empty key and an empty body") {
    CHECK(Sign("", "msg_1", 0, "").starts_with("v1,"));
    CHECK(Sign("", "msg_1", 0, "") != Sign("k", "msg_1", 0, ""));
  }

  TEST_CASE("SignatureHeader with two keys lists two signatures in key order") {
    const std::string old_key = *DecodeWebhookSecret(kVectorSecret);
    const std::string new_key = kKey32;
    const std::string header =
        SignatureHeader({new_key, old_key}, kVectorMsgId, kVectorTimestamp, kVectorBody);
    const std::vector<std::string> parts = Split(header, ' ');
    REQUIRE(parts.size() == 2);
    // Each signature verifies with its own key alone, as a receiver holding one key would check.
    CHECK(parts[0] == Sign(new_key, kVectorMsgId, kVectorTimestamp, kVectorBody));
    CHECK(parts[1] == kVectorSignature);
    CHECK(parts[0] != parts[1]);
  }

  TEST_CASE("SignatureHeader with one key is exactly that key's signature") {
    const std::string key = *DecodeWebhookSecret(kVectorSecret);
    CHECK(SignatureHeader({key}, kVectorMsgId, kVectorTimestamp, kVectorBody) == kVectorSignature);
    CHECK(SignatureHeader({}, kVectorMsgId, kVectorTimestamp, kVectorBody).empty());
  }
}

TEST_SUITE("webhook secret") {
  TEST_CASE("DecodeWebhookSecret accepts 24 and 64 byte keys") {
    std::mt19937 rng(24);
    for (std::size_t n : {24u, 32u, 64u}) {
      const std::string raw = PseudoRandomBytes(n, rng);
      CHECK(DecodeWebhookSecret("whsec_" + Base64Encode(raw)) == raw);
    }
  }

  TEST_CASE("DecodeWebhookSecret rejects a missing or wrong prefix") {
    const std::string body = Base64Encode(std::string(32, 'k'));
    CHECK_FALSE(DecodeWebhookSecret(body).has_value());
    CHECK_FALSE(DecodeWebhookSecret("WHSEC_" + body).has_value());
    CHECK_FALSE(DecodeWebhookSecret("whsec" + body).has_value());
    CHECK_FALSE(DecodeWebhookSecret(" whsec_" + body).has_value());
    CHECK_FALSE(DecodeWebhookSecret("").has_value());
  }

  TEST_CASE("DecodeWebhookSecret rejects keys shorter than 24 bytes") {
    CHECK_FALSE(DecodeWebhookSecret("whsec_").has_value());
    CHECK_FALSE(DecodeWebhookSecret("whsec_" + Base64Encode(std::string(23, 'k'))).has_value());
  }

  TEST_CASE("DecodeWebhookSecret rejects keys longer than 64 bytes") {
    CHECK_FALSE(DecodeWebhookSecret("whsec_" + Base64Encode(std::string(65, 'k'))).has_value());
  }

  TEST_CASE("DecodeWebhookSecret rejects invalid base64") {
    CHECK_FALSE(DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!").has_value());
    CHECK_FALSE(DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").has_value());
    CHECK_FALSE(DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").has_value());
    CHECK_FALSE(DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-_").has_value());
  }

  TEST_CASE("GenerateWebhookSecret output decodes to the requested length") {
    for (std::size_t n : {24u, 32u, 48u, 64u}) {
      CAPTURE(n);
      const auto key = DecodeWebhookSecret(GenerateWebhookSecret(n));
      REQUIRE(key.has_value());
      CHECK(key->size() == n);
    }
    CHECK(DecodeWebhookSecret(GenerateWebhookSecret())->size() == 32);
  }

  TEST_CASE("GenerateWebhookSecret returns a different secret each call") {
    CHECK(GenerateWebhookSecret() != GenerateWebhookSecret());
  }

  TEST_CASE("GenerateWebhookSecret rejects lengths outside 24..64") {
    CHECK_THROWS_AS(GenerateWebhookSecret(23), std::runtime_error);
    CHECK_THROWS_AS(GenerateWebhookSecret(65), std::runtime_error);
    CHECK_THROWS_AS(GenerateWebhookSecret(0), std::runtime_error);
  }
}

TEST_SUITE("secret box") {
  TEST_CASE("Seal then Open with the same associated data returns the plaintext") {
    const SecretBox box(kKey32);
    for (const std::string& plaintext : {""s, "s"s, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"s,
                                         std::string(1000, 'x'), "nul\0inside"s}) {
      const std::string sealed = box.Seal(plaintext, "sub_123");
      CHECK(sealed.starts_with("v1:"));
      CHECK(box.Open(sealed, "sub_123") == plaintext);
    }
  }

  TEST_CASE("sealed text has nonce, ciphertext and tag in its base64 payload") {
    const SecretBox box(kKey32);
    const std::string sealed = box.Seal("hello", "aad");
    const auto raw = Base64Decode(std::string_view(sealed).substr(3));
    REQUIRE(raw.has_value());
    CHECK(raw->size() == 12 + 5 + 16);
    CHECK(raw->find("hello") == std::string::npos);
  }

  TEST_CASE("sealing the same plaintext twice gives different text") {
    const SecretBox box(kKey32);
    CHECK(box.Seal("same", "aad") != box.Seal("same", "aad"));
  }

  TEST_CASE("Open fails with different associated data") {
    const SecretBox box(kKey32);
    const std::string sealed = box.Seal("secret", "sub_1");
    CHECK_FALSE(box.Open(sealed, "sub_2").has_value());
    CHECK_FALSE(box.Open(sealed, "").has_value());
    CHECK_FALSE(box.Open(box.Seal("secret", ""), "sub_1").has_value());
  }

  TEST_CASE("Open fails with a different key") {
    const std::string sealed = SecretBox(kKey32).Seal("secret", "aad");
    std::string other_key = kKey32;
    other_key[0] = 'X';
    CHECK_FALSE(SecretBox(other_key).Open(sealed, "aad").has_value());
  }

  TEST_CASE("Open fails when any byte of nonce, ciphertext or tag is flipped") {
    const SecretBox box(kKey32);
    const std::string sealed = box.Seal("secret", "aad");
    const std::size_t raw_size = 12 + 6 + 16;
    for (std::size_t i = 0; i < raw_size; ++i) {
      CAPTURE(i);
      CHECK_FALSE(box.Open(FlipPayloadByte(sealed, i), "aad").has_value());
    }
  }

  TEST_CASE("Open returns nullopt for truncated text") {
    const SecretBox box(kKey32);
    const std::string sealed = box.Seal("secret", "aad");
    for (std::size_t len = 0; len < sealed.size(); ++len) {
      CAPTURE(len);
      CHECK_FALSE(box.Open(sealed.substr(0, len), "aad").has_value());
    }
    // Well-formed base64 whose payload lost its last tag byte, or is shorter than nonce + tag.
    std::string raw = *Base64Decode(std::string_view(sealed).substr(3));
    raw.pop_back();
    CHECK_FALSE(box.Open("v1:" + Base64Encode(raw), "aad").has_value());
    CHECK_FALSE(box.Open("v1:" + Base64Encode(std::string(27, 'a')), "aad").has_value());
    CHECK_FALSE(box.Open("v1:" + Base64Encode(std::string(28, 'a')), "aad").has_value());
  }

  TEST_CASE("Open returns nullopt for empty, garbage and wrong-version text") {
    const SecretBox box(kKey32);
    const std::string sealed = box.Seal("secret", "aad");
    const std::string payload = sealed.substr(3);
    for (const std::string& text : {""s, "v1:"s, "v1"s, "garbage"s, "v1:not base64!"s, payload,
                                    "v2:" + payload, "V1:" + payload, "v1," + payload, " " + sealed,
                                    sealed + "\n", "v1:" + payload + "AAAA", "\0\xff\x01"s}) {
      CAPTURE(text);
      CHECK_FALSE(box.Open(text, "aad").has_value());
    }
  }

  TEST_CASE("constructor rejects keys that are not 32 bytes") {
    CHECK_THROWS_AS(SecretBox(std::string(31, 'k')), std::invalid_argument);
    CHECK_THROWS_AS(SecretBox(std::string(33, 'k')), std::invalid_argument);
    CHECK_THROWS_AS(SecretBox(""), std::invalid_argument);
  }

  TEST_CASE("GenerateKeyText is base64 of 32 fresh random bytes") {
    const std::string text = SecretBox::GenerateKeyText();
    CHECK(text.size() == 44);
    CHECK(Base64Decode(text)->size() == 32);
    CHECK(text != SecretBox::GenerateKeyText());
  }
}

TEST_SUITE("secret box key file") {
  TEST_CASE("FromKeyFile reads base64 and hex keys with surrounding whitespace") {
    const TempDir dir;
    const std::string b64 = Base64Encode(kKey32);
    std::string hex;
    for (unsigned char c : kKey32) {
      static constexpr char kDigits[] = "0123456789ABCDEF";
      hex.push_back(kDigits[c >> 4]);
      hex.push_back(kDigits[c & 0x0F]);
    }
    const std::string sealed = SecretBox(kKey32).Seal("secret", "aad");
    for (const std::string& content :
         {b64, b64 + "\n", "  \t" + b64 + "\r\n\n", hex, "\n" + hex + "  \n", hex + "\n"}) {
      CAPTURE(content);
      const std::string path = dir.Write("key", content);
      CHECK(SecretBox::FromKeyFile(path).Open(sealed, "aad") == "secret");
    }
    // Lower-case hex is the usual `openssl rand -hex 32` output.
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CHECK(SecretBox::FromKeyFile(dir.Write("key", hex)).Open(sealed, "aad") == "secret");
  }

  TEST_CASE("FromKeyFile accepts the text GenerateKeyText produces") {
    const TempDir dir;
    const std::string path = dir.Write("key", SecretBox::GenerateKeyText() + "\n");
    const SecretBox box = SecretBox::FromKeyFile(path);
    CHECK(box.Open(box.Seal("x", "y"), "y") == "x");
  }

  TEST_CASE("FromKeyFile error for a missing file names the path") {
    const TempDir dir;
    const std::string path = dir.PathOf("does-not-exist");
    const std::string what = ErrorFrom([&] { SecretBox::FromKeyFile(path); });
    CHECK(what.find(path) != std::string::npos);
    CHECK(what.find("No such file") != std::string::npos);
  }

  TEST_CASE("FromKeyFile error for a directory names the path") {
    const TempDir dir;
    const std::string path = dir.PathOf("");
    CHECK(ErrorFrom([&] { SecretBox::FromKeyFile(path); }).find(path) != std::string::npos);
  }

  TEST_CASE("FromKeyFile rejects keys of the wrong length without echoing them") {
    const TempDir dir;
    const std::string short_b64 = Base64Encode(std::string(31, 'k'));  // 44 chars, "=="
    const std::string long_b64 = Base64Encode(std::string(33, 'k'));   // 44 chars, unpadded
    const std::string short_hex(62, 'a');
    const std::string long_hex(66, 'a');
    for (const std::string& content :
         {short_b64, long_b64, short_hex, long_hex, ""s, "\n \n"s, "abc"s}) {
      CAPTURE(content);
      const std::string path = dir.Write("key", content);
      const std::string what = ErrorFrom([&] { SecretBox::FromKeyFile(path); });
      CHECK(what.find(path) != std::string::npos);
      CHECK(what.find("length") != std::string::npos);
      if (content.size() > 8) CHECK(what.find(content) == std::string::npos);
    }
  }

  TEST_CASE("FromKeyFile rejects text that is neither base64 nor hex") {
    const TempDir dir;
    std::string bad_b64 = Base64Encode(kKey32);
    bad_b64[5] = '!';
    std::string bad_hex(64, 'a');
    bad_hex[10] = 'g';
    const std::string inner_space = std::string(32, 'a') + " " + std::string(31, 'a');
    struct Case {
      std::string content;
      std::string expected;
    };
    for (const Case& c :
         {Case{bad_b64, "base64"}, Case{bad_hex, "hex"}, Case{inner_space, "hex"}}) {
      CAPTURE(c.content);
      const std::string path = dir.Write("key", c.content);
      const std::string what = ErrorFrom([&] { SecretBox::FromKeyFile(path); });
      CHECK(what.find(path) != std::string::npos);
      CHECK(what.find(c.expected) != std::string::npos);
      CHECK(what.find(c.content) == std::string::npos);
    }
  }

  TEST_CASE("FromKeyFile rejects an oversized file") {
    const TempDir dir;
    const std::string path = dir.Write("key", std::string(100000, 'a'));
    CHECK(ErrorFrom([&] { SecretBox::FromKeyFile(path); }).find("too large") != std::string::npos);
  }
}
