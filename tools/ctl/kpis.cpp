// pgcourierctl kpi and kpi-threshold ...: the KPI snapshots the maintenance
// leader writes (per tenant and subscription, per minute and hour) and the
// thresholds that raise KpiThresholdBreached / KpiThresholdCleared on the
// outbox (sql/schema/70_providers.sql).
#include <cstdio>
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/kpis.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::Kpis;

std::string Percent(const std::optional<double>& rate) {
  if (!rate) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", *rate * 100);
  return text;
}

std::string Ms(const std::optional<double>& ms) {
  if (!ms) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", *ms);
  return text;
}

int Kpi(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const std::string subscription = inv.Flag("by-subscription") ? "*" : inv.Text("subscription");
  const auto rows = Kpis(db).Snapshots(inv.Text("tenant"), inv.Text("bucket"), subscription, inv.Text("since"),
                                       static_cast<int>(*inv.Int("limit")));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("tenant_id", inv.Text("tenant")).Field("bucket", inv.Text("bucket"));
    json.Key("buckets").BeginArray();
    for (const auto& r : rows) {
      json.BeginObject()
          .Time("bucket_start", r.bucket_start)
          .StringOrNull("subscription_id", r.subscription_id)
          .Field("attempts", r.attempts)
          .Field("delivered", r.delivered)
          .Field("failed", r.failed)
          .Field("dead_lettered", r.dead_lettered)
          .Field("success_rate", r.success_rate)
          .Field("latency_p50_ms", r.latency_p50_ms)
          .Field("latency_p95_ms", r.latency_p95_ms)
          .EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (rows.empty()) {
    std::cout << "no KPI snapshots (the maintenance leader writes them once a minute is complete)\n";
    return 0;
  }
  Table table = {
      {"bucket", "subscription", "attempts", "delivered", "failed", "dead-lettered", "success", "p50 ms", "p95 ms"}};
  for (const auto& r : rows) {
    table.push_back({r.bucket_start, OrElse(r.subscription_id, "(all)"), std::to_string(r.attempts),
                     std::to_string(r.delivered), std::to_string(r.failed), std::to_string(r.dead_lettered),
                     Percent(r.success_rate), Ms(r.latency_p50_ms), Ms(r.latency_p95_ms)});
  }
  PrintTable(table);
  return 0;
}

int ThresholdCreate(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  std::string metric;
  double value = 0;
  int given = 0;
  if (inv.Has("success-rate-below")) metric = "success_rate_below", value = *inv.Number("success-rate-below"), ++given;
  if (inv.Has("dead-letters-above"))
    metric = "dead_letters_above", value = static_cast<double>(*inv.Int("dead-letters-above")), ++given;
  if (inv.Has("p95-above-ms")) metric = "p95_above_ms", value = static_cast<double>(*inv.Int("p95-above-ms")), ++given;
  if (given != 1) return UsageError("give one of --success-rate-below, --dead-letters-above, --p95-above-ms");
  std::cout << Kpis(db).CreateThreshold(inv.Text("tenant"), metric, value, inv.Text("subscription")) << "\n";
  return 0;
}

int ThresholdList(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto thresholds = Kpis(db).Thresholds(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("thresholds").BeginArray();
    for (const auto& t : thresholds) {
      json.BeginObject()
          .Field("id", t.id)
          .Field("tenant_id", t.tenant_id)
          .StringOrNull("subscription_id", t.subscription_id)
          .Field("metric", t.metric)
          .Field("value", t.value)
          .Field("state", t.state)
          .Time("breached_since", t.breached_since)
          .Time("last_bucket", t.last_bucket)
          .Field("last_observed", t.last_observed)
          .EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (thresholds.empty()) {
    std::cout << "no KPI thresholds\n";
    return 0;
  }
  Table table = {{"threshold", "tenant", "subscription", "metric", "value", "state", "since", "last observed"}};
  for (const auto& t : thresholds) {
    table.push_back({t.id, t.tenant_id, OrElse(t.subscription_id, "(all)"), t.metric, FormatNumber(t.value), t.state,
                     Dash(t.breached_since), Dash(t.last_observed)});
  }
  PrintTable(table);
  return 0;
}

int ThresholdDelete(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  if (!Kpis(db).DeleteThreshold(inv.operand(), inv.Text("tenant"))) return Fail("no KPI threshold " + inv.operand());
  std::cout << "deleted " << inv.operand() << "\n";
  return 0;
}

}  // namespace

std::vector<Command> KpiCommands() {
  constexpr std::string_view kTopic = "KPIs (delivery snapshots and threshold alerts)";
  const Option tenant = {
      .name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "the tenant", .required = true};
  return {
      {.topic = kTopic,
       .name = "kpi",
       .summary = "a tenant's delivery KPIs per minute or hour, newest first",
       .description = "attempts, delivered (2xx) and failed attempts, dead-lettered deliveries, success rate "
                      "(delivered / attempts) and attempt latency p50/p95, per bucket, for the tenant (default) "
                      "or its subscriptions. Written by the maintenance leader once a minute is complete.",
       .options = {tenant,
                   {.name = "bucket",
                    .kind = Kind::kChoice,
                    .value_name = "WIDTH",
                    .help = "the bucket width",
                    .default_value = "1m",
                    .choices = {"1m", "1h"}},
                   {.name = "subscription",
                    .kind = Kind::kIdentifier,
                    .value_name = "SUB_ID",
                    .help = "only this subscription's rows"},
                   {.name = "by-subscription", .kind = Kind::kFlag, .help = "every subscription's rows too"},
                   {.name = "since", .value_name = "TS", .help = "buckets starting at or after TS"},
                   {.name = "limit",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "at most N rows",
                    .default_value = "60",
                    .min = 1,
                    .max = 100000}},
       .example = "pgcourierctl kpi --tenant acme --bucket 1h --json",
       .json = true,
       .run = Kpi},
      {.topic = kTopic,
       .name = "kpi-threshold create",
       .summary = "a threshold on a tenant's (or subscription's) minute KPIs; prints its id",
       .description = "Give one condition. KpiThresholdBreached goes to the outbox when a minute breaches it "
                      "(once per breach), KpiThresholdCleared when a later minute no longer does.",
       .options = {tenant,
                   {.name = "subscription",
                    .kind = Kind::kIdentifier,
                    .value_name = "SUB_ID",
                    .help = "watch this subscription (default: the tenant's total)"},
                   {.name = "success-rate-below",
                    .kind = Kind::kNumber,
                    .value_name = "RATE",
                    .help = "success rate below RATE (0 to 1, e.g. 0.95)",
                    .max = 1,
                    .expect = "a rate above 0 and at most 1 (e.g. 0.95)"},
                   {.name = "dead-letters-above",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "more than N dead letters in a minute",
                    .min = 0,
                    .max = 1'000'000'000},
                   {.name = "p95-above-ms",
                    .kind = Kind::kInt,
                    .value_name = "MS",
                    .help = "attempt latency p95 above MS milliseconds",
                    .min = 0,
                    .max = 86'400'000}},
       .example = "pgcourierctl kpi-threshold create --tenant acme --success-rate-below 0.95",
       .run = ThresholdCreate},
      {.topic = kTopic,
       .name = "kpi-threshold list",
       .summary = "thresholds with their state (ok or breached since when)",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "only this tenant's"}},
       .example = "pgcourierctl kpi-threshold list --tenant acme --json",
       .json = true,
       .run = ThresholdList},
      {.topic = kTopic,
       .name = "kpi-threshold delete",
       .operand = "ID",
       .summary = "delete a threshold",
       .options = {{.name = "tenant",
                    .kind = Kind::kIdentifier,
                    .value_name = "TENANT",
                    .help = "act as this tenant: only its thresholds"}},
       .example = "pgcourierctl kpi-threshold delete kpt_...",
       .run = ThresholdDelete},
  };
}

}  // namespace pgcourier::ctl
