// pgcourierctl status: deliveries by status, the subscriptions that need
// attention, the runs' queue and the connections that keep runs waiting, and
// the most recent deliveries. Needs no more than the courier_operator role.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "store/admin/status.hpp"

namespace pgcourier::ctl {
namespace {

constexpr std::chrono::hours kExpiryWindow{7 * 24};

int Status(const Invocation& inv) {
  const int recent = static_cast<int>(*inv.Int("recent"));
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  store::admin::Status status(db);
  const auto rows = status.Deliveries();
  const auto subscriptions = status.SubscriptionsNeedingAttention();
  const auto metrics = status.RunMetrics(kExpiryWindow);
  const auto connections = status.ConnectionsNeedingAttention();
  const auto latest = recent > 0 ? status.Recent(recent) : std::vector<store::admin::RecentDelivery>();

  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("deliveries").BeginArray();
    for (const auto& r : rows) {
      json.BeginObject()
          .Field("status", r.status)
          .Field("deliveries", r.deliveries)
          .Field("due_now", r.due_now)
          .Time("oldest_due_at", r.oldest_due_at)
          .EndObject();
    }
    json.EndArray().Key("subscriptions_needing_attention").BeginArray();
    for (const auto& s : subscriptions) {
      json.BeginObject()
          .Field("subscription_id", s.subscription_id)
          .Field("tenant_id", s.tenant_id)
          .Field("url", retry::RedactUrls(s.url))
          .Key("state");
      WriteState(json, s);
      json.EndObject();
    }
    json.EndArray()
        .Key("runs")
        .BeginObject()
        .Field("due", metrics.due)
        .Field("scheduled", metrics.scheduled)
        .Field("waiting", metrics.waiting)
        .Field("running", metrics.running)
        .Field("dead_lettered", metrics.dead_lettered)
        .Field("unhealthy_connections", metrics.unhealthy_connections)
        .Field("degraded_connections", metrics.degraded_connections)
        .Field("credentials_expiring_within_7_days", metrics.credentials_expiring)
        .Field("open_escalations", metrics.open_escalations)
        .EndObject()
        .Key("connections_needing_attention")
        .BeginArray();
    for (const auto& c : connections) WriteConnection(json, c, false);
    json.EndArray().Key("recent").BeginArray();
    for (const auto& d : latest) {
      json.BeginObject()
          .Field("id", d.id)
          .Field("event_type", d.event_type)
          .Field("subscription_id", d.subscription_id)
          .Field("status", d.status)
          .Field("attempts", d.attempts)
          .Field("last_status_code", d.last_status_code)
          .StringOrNull("last_error", d.last_error)
          .Time("updated_at", d.updated_at)
          .EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }

  std::printf("%-16s %12s %10s  %s\n", "status", "deliveries", "due now", "oldest due");
  for (const auto& r : rows) {
    std::printf("%-16s %12lld %10lld  %s\n", r.status.c_str(), r.deliveries, r.due_now, r.oldest_due_at.c_str());
  }
  if (rows.empty()) std::printf("(no deliveries)\n");
  std::fflush(stdout);
  if (!subscriptions.empty()) {
    std::cout << "\nsubscriptions paused, disabled or failing:\n";
    for (const auto& s : subscriptions) {
      std::cout << s.subscription_id << "  tenant=" << s.tenant_id << "  " << retry::RedactUrls(s.url) << "\n";
      PrintState(s);
    }
  }
  std::cout << "\nruns:\n";
  const Table counts = {{"due now", std::to_string(metrics.due)},
                        {"scheduled later", std::to_string(metrics.scheduled)},
                        {"waiting for their connection", std::to_string(metrics.waiting)},
                        {"running", std::to_string(metrics.running)},
                        {"dead-lettered", std::to_string(metrics.dead_lettered)},
                        {"connections unhealthy", std::to_string(metrics.unhealthy_connections)},
                        {"connections degraded", std::to_string(metrics.degraded_connections)},
                        {"credentials expiring within 7 days", std::to_string(metrics.credentials_expiring)},
                        {"open escalations", std::to_string(metrics.open_escalations)}};
  PrintTable(counts, "  ");
  if (!connections.empty()) {
    std::cout << "\nconnections pending, degraded or unhealthy:\n";
    Table table = {{"connection", "tenant", "provider", "status", "health", "runs waiting", "reason"}};
    for (const auto& c : connections) {
      table.push_back({c.id, c.tenant_id, c.provider, c.status, c.health, std::to_string(c.runs_waiting),
                       Dash(OrElse(c.status_reason, c.last_health_error.c_str()))});
    }
    PrintTable(table, "  ");
  }
  std::cout.flush();
  if (!latest.empty()) {
    std::printf("\n%-34s %-18s %-16s %8s %5s  %s\n", "delivery", "event type", "status", "attempts", "http",
                "last error");
    for (const auto& d : latest) {
      const std::string http = d.last_status_code ? std::to_string(*d.last_status_code) : "";
      std::printf("%-34s %-18s %-16s %8d %5s  %s\n", d.id.c_str(), d.event_type.c_str(), d.status.c_str(), d.attempts,
                  http.c_str(), d.last_error.c_str());
    }
  }
  return 0;
}

}  // namespace

std::vector<Command> StatusCommands() {
  return {
      {.topic = "Status",
       .name = "status",
       .summary = "deliveries by status, subscriptions paused, disabled or failing, runs by state, connections that "
                  "need attention, and the N most recent deliveries",
       .options = {{.name = "recent",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "also the N most recent deliveries",
                    .default_value = "0",
                    .min = 0,
                    .max = 100'000}},
       .example = "pgcourierctl status --recent 20\npgcourierctl status --json | jq '.deliveries'",
       .json = true,
       .run = Status},
  };
}

}  // namespace pgcourier::ctl
