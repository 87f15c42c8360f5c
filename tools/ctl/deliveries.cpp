// pgcourierctl publish, replay, redeliver, inspect: deliveries and the
// events behind them.
#include <cstdio>
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "store/admin/deliveries.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::Deliveries;

int Publish(const Invocation& inv) {
  std::string error;
  const auto labels = LabelPairsJson(inv.Text("labels"), error);
  if (!labels) return UsageError("--labels: " + error);
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  std::cout << Deliveries(db).Publish(inv.Text("tenant"), inv.Text("type"), inv.Text("payload"),
                                      inv.Text("idempotency-key"), inv.Text("trace-id"), *labels)
            << "\n";
  return 0;
}

int Replay(const Invocation& inv) {
  store::admin::ReplayFilter filter;
  filter.tenant_id = inv.Text("tenant");
  filter.subscription_id = inv.Text("subscription");
  filter.event_type = inv.Text("event-type");
  filter.since = inv.Text("since");
  filter.until = inv.Text("until");
  filter.statuses = inv.List("status");
  filter.include_delivered = inv.Flag("include-delivered");
  filter.dry_run = inv.Flag("dry-run");
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto result = Deliveries(db).Replay(filter);
  // A mistyped id matches nothing: say so instead of "replayed 0 deliveries".
  if (!result.subscription_found) return Fail("no subscription " + filter.subscription_id + "; nothing replayed");
  if (!result.tenant_found) return Fail("tenant " + filter.tenant_id + " has no subscriptions; nothing replayed");
  std::cout << (filter.dry_run ? "would replay " : "replayed ") << Count(result.deliveries, "delivery", "deliveries")
            << "\n";
  return 0;
}

int Redeliver(const Invocation& inv) {
  store::admin::RedeliverRequest request;
  request.subscription_id = inv.Text("subscription");
  request.from_event = inv.Text("from-event");
  request.since = inv.Text("since");
  if (request.from_event.empty() == request.since.empty()) {
    return UsageError(request.from_event.empty() ? "redeliver needs --from-event EVT or --since TS"
                                                 : "redeliver takes --from-event or --since, not both");
  }
  if (const auto limit = inv.Int("limit")) request.max_events = static_cast<int>(*limit);
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto result = Deliveries(db).Redeliver(request);
  std::cout << "re-queued " << Count(result.events_processed, "event", "events") << "; ";
  if (result.next_cursor.empty()) {
    std::cout << "nothing after the cursor\n";
  } else {
    std::cout << "continue with --from-event " << result.next_cursor << "\n";
  }
  return 0;
}

bool Finished(const std::string& status) {
  return status == "delivered" || status == "failed" || status == "dead_lettered";
}

void WriteDelivery(Json& json, const store::admin::DeliveryDetail& d) {
  json.BeginObject()
      .Field("id", d.id)
      .Field("tenant_id", d.tenant_id)
      .Field("status", d.status)
      .Field("attempts", d.attempts)
      .Field("subscription_id", d.subscription_id)
      .Field("url", retry::RedactUrls(d.url))
      .Field("event_id", d.event_id)
      .Field("event_type", d.event_type)
      .Time("next_attempt_at", Finished(d.status) ? std::string() : d.next_attempt_at)
      .Field("held", d.next_attempt_at == "infinity" && !Finished(d.status))
      .StringOrNull("lease_owner", d.lease_owner)
      .Time("lease_expires_at", d.lease_expires_at)
      .Field("last_status_code", d.last_status_code)
      .StringOrNull("last_error", d.last_error)
      .Time("created_at", d.created_at)
      .Time("updated_at", d.updated_at)
      .Time("completed_at", d.completed_at)
      .Key("timeline")
      .BeginArray();
  for (const auto& a : d.timeline) WriteAttempt(json, a, false);
  json.EndArray().EndObject();
}

int Inspect(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto d = Deliveries(db).Inspect(id);
  if (!d) return Fail("no delivery " + id);
  if (inv.json()) {
    Json json(std::cout);
    WriteDelivery(json, *d);
    json.Finish();
    return 0;
  }
  std::string next = d->next_attempt_at;
  if (Finished(d->status)) {
    next = "none (finished " + d->completed_at + ")";
  } else if (d->status == "delivering") {
    next = "in flight now";
  } else if (next == "infinity") {
    next = "held until the subscription is resumed";
  }
  std::cout << "delivery " << d->id << "  tenant=" << d->tenant_id << "\n"
            << "  status:       " << d->status << " after " << Count(d->attempts, "attempt", "attempts") << "\n"
            << "  subscription: " << d->subscription_id << "  " << retry::RedactUrls(d->url) << "\n"
            << "  event:        " << d->event_id << "  " << d->event_type << "\n"
            << "  created:      " << d->created_at << "  (updated " << d->updated_at << ")\n"
            << "  next attempt: " << next << "\n"
            << "  lease:        "
            << (d->lease_owner.empty() ? "none" : d->lease_owner + " until " + d->lease_expires_at) << "\n"
            << "  last status:  " << Dash(d->last_status_code) << "\n"
            << "  last error:   " << Dash(d->last_error) << "\n";
  if (d->timeline.empty()) {
    std::cout << "no attempts yet\n";
    return 0;
  }
  std::cout << "attempts:\n";
  PrintAttemptLine("#", "started", "duration ms", "http", "outcome", "error class", "retryable", "summary");
  char duration[32];
  for (const auto& a : d->timeline) {
    std::snprintf(duration, sizeof duration, "%.1f", a.duration_ms);
    PrintAttemptLine(std::to_string(a.attempt), a.started_at, duration, Dash(a.status_code), a.outcome,
                     Dash(a.error_class), a.retryable ? "yes" : "no", Dash(a.error_summary));
  }
  return 0;
}

}  // namespace

void PrintAttemptLine(const std::string& attempt, const std::string& started, const std::string& duration,
                      const std::string& http, const std::string& outcome, const std::string& error_class,
                      const std::string& retryable, const std::string& summary) {
  std::printf("  %3s  %-30s %11s %5s  %-20s %-19s %-9s  %s\n", attempt.c_str(), started.c_str(), duration.c_str(),
              http.c_str(), outcome.c_str(), error_class.c_str(), retryable.c_str(), summary.c_str());
}

void WriteAttempt(Json& json, const store::admin::AttemptInfo& a, bool run) {
  json.BeginObject()
      .Field("attempt", a.attempt)
      .Time("started_at", a.started_at)
      .Field("duration_ms", a.duration_ms)
      .Field("status_code", a.status_code)
      .Field("outcome", a.outcome)
      .StringOrNull("error_class", a.error_class)
      .Field("retryable", a.retryable)
      .StringOrNull("error_summary", a.error_summary)
      .StringOrNull("worker", a.worker);
  if (run) json.StringOrNull("error_code", a.error_code).Field("credential_version", a.credential_version);
  json.EndObject();
}

std::vector<Command> DeliveryCommands() {
  constexpr std::string_view kTopic = "Deliveries";
  const Option since = {.name = "since", .value_name = "TS", .help = "created at or after TS"};
  return {
      {.topic = kTopic,
       .name = "publish",
       .summary = "publish an event (courier.publish): one delivery per matching subscription of its tenant",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "the tenant",
                    .required = true},
                   {.name = "type", .value_name = "EVENT_TYPE", .help = "its type, e.g. order.paid", .required = true},
                   {.name = "payload", .value_name = "JSON", .help = "the data", .default_value = "{}"},
                   {.name = "idempotency-key", .value_name = "KEY",
                    .help = "the same key again returns the first event and publishes nothing"},
                   {.name = "trace-id", .value_name = "ID", .help = "a W3C trace id, sent as traceparent"},
                   {.name = "labels", .value_name = "LABELS",
                    .help = "labels that subscriptions' scopes select on, e.g. channel=web,facility=f1"}},
       .example = "pgcourierctl publish --tenant acme --type order.paid --payload '{\"order_id\": 42}'",
       .run = Publish},
      {.topic = kTopic,
       .name = "replay",
       .summary = "re-queue finished deliveries (created in [since, until)) with a fresh attempt budget",
       .description = "Earlier attempts are kept; attempt numbers keep increasing. A subscription or tenant that "
                      "does not exist is an error (exit 1), not zero deliveries.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "only this tenant's"},
                   {.name = "subscription", .kind = Kind::kIdentifier, .value_name = "SUB_ID",
                    .help = "only this subscription's"},
                   {.name = "event-type", .value_name = "TYPE", .help = "only events of this type"},
                   since,
                   {.name = "until", .value_name = "TS", .help = "created before TS"},
                   {.name = "status",
                    .kind = Kind::kChoices,
                    .value_name = "STATUSES",
                    .help = "which finished ones, comma-separated",
                    .default_value = "dead_lettered,failed",
                    .choices = {"dead_lettered", "failed", "delivered"}},
                   {.name = "include-delivered", .kind = Kind::kFlag, .help = "also delivered ones"},
                   {.name = "dry-run", .kind = Kind::kFlag, .help = "count only; change nothing"}},
       .example = "pgcourierctl replay --subscription sub_... --since 2026-11-22T00:00:00Z --dry-run",
       .run = Replay},
      {.topic = kTopic,
       .name = "redeliver",
       .summary = "send a subscription's stored events again, in order, from a cursor; prints the cursor to go on",
       .options = {{.name = "subscription", .kind = Kind::kIdentifier, .value_name = "SUB_ID",
                    .help = "the subscription", .required = true},
                   {.name = "from-event", .value_name = "EVT", .help = "the events after this one (a cursor)"},
                   since,
                   {.name = "limit",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "at most N events",
                    .default_value = "1000",
                    .min = 1,
                    .max = 1'000'000}},
       .example = "pgcourierctl redeliver --subscription sub_... --since 2026-11-21T00:00:00Z --limit 1000",
       .run = Redeliver},
      {.topic = kTopic,
       .name = "inspect",
       .operand = "DLV_ID",
       .summary = "one delivery and its attempts",
       .example = "pgcourierctl inspect dlv_... --json",
       .json = true,
       .run = Inspect},
  };
}

}  // namespace pgcourier::ctl
