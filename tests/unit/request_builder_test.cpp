#include <doctest/doctest.h>

#include "base/text.hpp"
#include "lanes/deliveries/request.hpp"
#include "signing/webhook_signature.hpp"

using pgcourier::lanes::deliveries::TakeEnvelope;
using pgcourier::lanes::deliveries::BuildHeaders;
using pgcourier::base::JsonQuote;
using pgcourier::base::TraceParent;

namespace {
pgcourier::model::ClaimedDelivery SampleDelivery() {
  pgcourier::model::ClaimedDelivery d;
  d.id = "dlv_1";
  d.event_id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
  d.event_type = "order.created";
  d.event_created_at = "2026-11-22T05:00:00.000000Z";
  d.payload_json = R"({"order_id": 42})";
  return d;
}
}  // namespace

TEST_CASE("the envelope wraps the payload with its type and timestamp, byte for byte") {
  auto d = SampleDelivery();
  CHECK(TakeEnvelope(d) ==
        R"({"type":"order.created","timestamp":"2026-11-22T05:00:00.000000Z","data":{"order_id": 42}})");
  CHECK(d.payload_json.empty());  // taken
}

TEST_CASE("the envelope is built in the payload's own buffer when the store left room for it") {
  auto d = SampleDelivery();
  const std::string payload = R"({"pad": ")" + std::string(100000, 'x') + R"("})";
  d.payload_json.reserve(payload.size() + pgcourier::model::EnvelopeRoom(d.event_type.size()));
  d.payload_json = payload;
  const char* buffer = d.payload_json.data();
  const std::string body = TakeEnvelope(d);
  CHECK(body.data() == buffer);  // no second buffer of the payload's size
  CHECK(body.size() == payload.size() + 74);
  CHECK(body.substr(body.size() - payload.size() - 1) == payload + "}");
  // A hostile event type (every byte needing \u escaping) still fits the room.
  auto odd = SampleDelivery();
  odd.event_type = std::string(200, '\x01');
  odd.payload_json.reserve(10 + pgcourier::model::EnvelopeRoom(odd.event_type.size()));
  odd.payload_json = "[1,2,3]";
  const char* odd_buffer = odd.payload_json.data();
  CHECK(TakeEnvelope(odd).data() == odd_buffer);
}

TEST_CASE("event types with quotes and control characters are escaped in the envelope") {
  CHECK(JsonQuote("a\"b\\c\n\x01") == R"("a\"b\\c\n\u0001")");
  auto d = SampleDelivery();
  d.event_type = "odd\"type";
  CHECK(TakeEnvelope(d).find(R"("type":"odd\"type")") != std::string::npos);
}

TEST_CASE("headers carry the event id as webhook-id and one signature per key") {
  const auto key1 = *pgcourier::signing::DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  const std::string key2(32, 'k');
  const auto d = SampleDelivery();
  const std::string body = R"({"test": 2432232314})";
  const auto headers = BuildHeaders(d, body, {{key1}, {key2}}, 1614265330, 7);
  REQUIRE(headers.size() == 4);
  CHECK(headers[0] == "content-type: application/json");
  CHECK(headers[1] == "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek");
  CHECK(headers[2] == "webhook-timestamp: 1614265330");
  const std::string expected_second = pgcourier::signing::Sign(key2, d.event_id, 1614265330, body);
  CHECK(headers[3] == "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= " + expected_second);
}

TEST_CASE("a traceparent is passed through, built from a bare trace id, or left out") {
  const std::string full = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  CHECK(TraceParent(full, 5) == full);
  CHECK(TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", 0x10) ==
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000011-01");
  CHECK(TraceParent("", 1).empty());
  CHECK(TraceParent("not-a-trace", 1).empty());
  CHECK(TraceParent(std::string(32, '0'), 1).empty());
  CHECK(TraceParent("4BF92F3577B34DA6A3CE929D0E0E4736", 1).empty());
  auto d = SampleDelivery();
  d.trace_id = full;
  const auto headers = BuildHeaders(d, "{}", {}, 1, 1);
  CHECK(headers.back() == "traceparent: " + full);
}
