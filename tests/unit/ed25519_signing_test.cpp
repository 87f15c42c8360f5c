// Standard Webhooks v1a (ed25519) signatures: the reference library's
// published vector, verification with OpenSSL's own EVP_DigestVerify, the
// whsk_/whpk_ key forms, and headers that mix v1 and v1a during a rotation.
#include <doctest/doctest.h>

#include <string>

#include "lanes/deliveries/request.hpp"
#include "signing/webhook_signature.hpp"

namespace {

using namespace pgcourier::signing;

// The vector of the Standard Webhooks reference implementation
// (libraries/go/webhook_asymmetric_test.go, TestAsymmetricWebhookSign): the
// private key is the base64 ed25519 seed.
constexpr std::string_view kSeedBase64 = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
constexpr std::string_view kMsgId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kTimestamp = 1614265330;
constexpr std::string_view kBody = R"({"test": 2432232314})";
constexpr std::string_view kExpected =
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

std::string Seed() { return *Base64Decode(kSeedBase64); }

}  // namespace

TEST_CASE("v1a signs the reference implementation's published vector exactly") {
  CHECK(SignEd25519(Seed(), kMsgId, kTimestamp, kBody) == kExpected);
  const auto key = DecodeSigningSecret("whsk_" + std::string(kSeedBase64));
  REQUIRE(key);
  CHECK(key->scheme == SigningKey::Scheme::kEd25519);
  CHECK(SignatureHeaderForKeys(std::vector<SigningKey>{*key}, kMsgId, kTimestamp, kBody) == kExpected);
}

TEST_CASE("a v1a signature verifies with the public key alone (OpenSSL EVP_DigestVerify), and nothing else does") {
  const std::string public_key = Ed25519PublicKey(Seed());
  CHECK(public_key.rfind("whpk_", 0) == 0);
  CHECK(Base64Decode(public_key.substr(5))->size() == 32);
  CHECK(VerifyEd25519(public_key, kExpected, kMsgId, kTimestamp, kBody));
  CHECK(VerifyEd25519(*Base64Decode(public_key.substr(5)), kExpected, kMsgId, kTimestamp, kBody));
  CHECK_FALSE(VerifyEd25519(public_key, kExpected, kMsgId, kTimestamp + 1, kBody));
  CHECK_FALSE(VerifyEd25519(public_key, kExpected, "msg_other", kTimestamp, kBody));
  CHECK_FALSE(VerifyEd25519(public_key, kExpected, kMsgId, kTimestamp, R"({"test": 2432232315})"));
  std::string flipped(kExpected);
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  CHECK_FALSE(VerifyEd25519(public_key, flipped, kMsgId, kTimestamp, kBody));
  CHECK_FALSE(VerifyEd25519(public_key, "v1a,", kMsgId, kTimestamp, kBody));
  CHECK_FALSE(VerifyEd25519(public_key, "v1," + std::string(kExpected.substr(4)), kMsgId, kTimestamp, kBody));
  const auto [other_private, other_public] = GenerateEd25519Secret();
  CHECK_FALSE(VerifyEd25519(other_public, kExpected, kMsgId, kTimestamp, kBody));
}

TEST_CASE("a generated key pair signs what its public key verifies; secrets of the wrong form are refused") {
  const auto [private_key, public_key] = GenerateEd25519Secret();
  CHECK(private_key.rfind("whsk_", 0) == 0);
  const auto key = DecodeSigningSecret(private_key);
  REQUIRE(key);
  CHECK(Ed25519PublicKey(key->key) == public_key);
  const std::string body(100000, 'x');
  CHECK(VerifyEd25519(public_key, SignEd25519(key->key, "evt_1", 42, body), "evt_1", 42, body));
  CHECK_FALSE(DecodeSigningSecret("whsk_" + Base64Encode(std::string(31, 'a'))));
  CHECK_FALSE(DecodeSigningSecret("whsk_not base64"));
  CHECK_FALSE(DecodeSigningSecret("whpk_" + Base64Encode(std::string(32, 'a'))));  // a public key signs nothing
  CHECK(DecodeSigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")->scheme == SigningKey::Scheme::kHmacSha256);
  CHECK_THROWS(SignEd25519("short", kMsgId, kTimestamp, kBody));
}

TEST_CASE("during a rotation from v1 to v1a the header carries both signatures, newest first") {
  const auto hmac = *DecodeSigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const SigningKey ed{Seed(), SigningKey::Scheme::kEd25519};
  pgcourier::model::ClaimedDelivery d;
  d.event_id = std::string(kMsgId);
  const auto headers = pgcourier::lanes::deliveries::BuildHeaders(d, kBody, {ed, hmac}, kTimestamp, 1);
  CHECK(headers[3] == "webhook-signature: " + std::string(kExpected) +
                          " v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
