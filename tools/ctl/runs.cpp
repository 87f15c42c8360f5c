// pgcourierctl run ...: integration runs (enqueue, list, show, replay).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "retry/text.hpp"
#include "store/admin/runs.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::RunInfo;
using store::admin::Runs;

bool IsRunPath(std::string_view path) {
  return !path.empty() && path[0] == '/' && path.find(' ') == std::string_view::npos &&
         std::none_of(path.begin(), path.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool IsMethod(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
}

// Why the connection of a new run keeps it from running, if it does (stderr; stdout holds the id).
void NoteRunConnection(const store::admin::EnqueuedRun& run, const std::string& tenant_id,
                       const std::string& connection_id) {
  const auto& c = run.connection;
  if (!c) {
    Note("there is no connection " + connection_id + "; the run becomes poison when claimed");
  } else if (c->tenant_id != tenant_id) {
    Note("connection " + c->id + " belongs to tenant " + c->tenant_id);
  } else if (c->status == "retired") {
    Note("connection " + c->id + " is retired; the run becomes poison when claimed");
  } else if (c->status != "active" || c->health == "unhealthy") {
    Note("connection " + c->id + " is " + c->status + "/" + c->health + "; the run waits until it can run");
  }
}

int Enqueue(const Invocation& inv) {
  store::admin::NewRun run{.tenant_id = inv.Text("tenant"),
                           .connection_id = inv.Text("connection"),
                           .operation = inv.Text("operation"),
                           .method = inv.Text("method"),
                           .path = inv.Text("path"),
                           .body = inv.Text("body"),
                           .headers_json = inv.Text("headers"),
                           .idempotency_key = inv.Text("idempotency-key"),
                           .trace_id = inv.Text("trace-id"),
                           .external_ref_pointer = inv.Text("external-ref")};
  if (inv.Has("method") && !IsMethod(run.method)) return UsageError("--method takes an HTTP method such as POST");
  std::transform(run.method.begin(), run.method.end(), run.method.begin(),
                 [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
  if (inv.Has("path") && !IsRunPath(run.path)) return UsageError("--path takes a path that starts with /");
  if (inv.Has("external-ref") && run.external_ref_pointer.rfind('/', 0) != 0) {
    return UsageError("--external-ref takes a JSON pointer into the response, e.g. /id");
  }
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto enqueued = Runs(db).Enqueue(run);
  std::cout << enqueued.id << "\n";
  if (enqueued.created) {
    NoteRunConnection(enqueued, run.tenant_id, run.connection_id);
  } else {
    Note("idempotency key " + run.idempotency_key + " names an earlier run; nothing new was queued");
  }
  return 0;
}

void WriteRun(Json& json, const RunInfo& r) {
  json.Field("id", r.id)
      .Field("tenant_id", r.tenant_id)
      .Field("connection_id", r.connection_id)
      .StringOrNull("provider", r.provider)
      .Field("operation", r.operation)
      .Field("method", r.method)
      .Field("path", retry::RedactPath(r.path))
      .Field("status", r.status)
      .Field("attempts", r.attempts)
      .Time("next_attempt_at", r.completed_at.empty() ? r.next_attempt_at : std::string())
      .StringOrNull("lease_owner", r.lease_owner)
      .Time("lease_expires_at", r.lease_expires_at)
      .StringOrNull("external_ref", r.external_ref)
      .StringOrNull("external_ref_pointer", r.external_ref_pointer)
      .Field("last_status_code", r.last_status_code)
      .StringOrNull("last_error", r.last_error)
      .StringOrNull("last_error_code", r.last_error_code)
      .StringOrNull("waiting_for", r.waiting_for)
      .StringOrNull("idempotency_key", r.idempotency_key)
      .StringOrNull("trace_id", r.trace_id)
      .Time("created_at", r.created_at)
      .Time("started_at", r.started_at)
      .Time("completed_at", r.completed_at)
      .Field("latency_ms", r.latency_ms);
}

int List(const Invocation& inv) {
  store::admin::RunFilter filter;
  filter.tenant_id = inv.Text("tenant");
  filter.status = inv.Text("status");
  filter.limit = static_cast<int>(*inv.Int("limit"));
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto runs = Runs(db).List(filter);
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("runs").BeginArray();
    for (const auto& r : runs) {
      json.BeginObject();
      WriteRun(json, r);
      json.EndObject();
    }
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (runs.empty()) {
    std::cout << "no runs\n";
    return 0;
  }
  Table table = {{"run", "tenant", "connection", "operation", "status", "attempts", "http", "created",
                  "waiting for / last error"}};
  for (const auto& r : runs) {
    table.push_back({r.id, r.tenant_id, r.connection_id, r.operation, r.status, std::to_string(r.attempts),
                     Dash(r.last_status_code), r.created_at, Dash(OrElse(r.waiting_for, r.last_error.c_str()))});
  }
  PrintTable(table);
  return 0;
}

std::string NextRunAttempt(const RunInfo& r) {
  if (!r.completed_at.empty()) return "none (finished " + r.completed_at + ")";
  if (r.status == "running") return "in flight now (lease " + r.lease_owner + " until " + r.lease_expires_at + ")";
  return r.next_attempt_at + (r.waiting_for.empty() ? "" : ", waiting for " + r.waiting_for);
}

void PrintFailures(const std::vector<store::admin::FailureInfo>& failures) {
  if (failures.empty()) {
    std::cout << "no failures\n";
    return;
  }
  std::cout << "failures:\n";
  Table table = {
      {"failure", "created", "attempt", "category", "error code", "next action", "escalations", "state", "message"}};
  for (const auto& f : failures) {
    table.push_back(
        {f.id, f.created_at, Dash(f.attempt), f.category, f.error_code, f.next_action, std::to_string(f.escalations),
         f.resolved_at.empty() ? "open" : "resolved " + f.resolved_at + " (" + f.resolution + ")", Dash(f.message)});
  }
  PrintTable(table, "  ");
}

void WriteFailures(Json& json, const std::vector<store::admin::FailureInfo>& failures) {
  json.Key("failures").BeginArray();
  for (const auto& f : failures) {
    json.BeginObject()
        .Field("id", f.id)
        .Time("created_at", f.created_at)
        .Field("attempt", f.attempt)
        .Field("category", f.category)
        .StringOrNull("error_code", f.error_code)
        .StringOrNull("message", f.message)
        .Field("next_action", f.next_action)
        .Field("escalations", f.escalations)
        .Time("resolved_at", f.resolved_at)
        .StringOrNull("resolution", f.resolution)
        .EndObject();
  }
  json.EndArray();
}

int Show(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto detail = Runs(db).Show(id);
  if (!detail) return Fail("no run " + id);
  const auto& r = detail->run;
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject();
    WriteRun(json, r);
    json.Key("timeline").BeginArray();
    for (const auto& a : detail->timeline) WriteAttempt(json, a, true);
    json.EndArray();
    WriteFailures(json, detail->failures);
    json.EndObject();
    json.Finish();
    return 0;
  }
  std::cout << "run " << r.id << "  tenant=" << r.tenant_id << "\n"
            << "  connection:   " << r.connection_id << "  "
            << (r.provider.empty() ? "(no such connection: the run is poison)" : r.provider) << "\n"
            << "  operation:    " << r.operation << "  " << r.method << " " << retry::RedactPath(r.path) << "\n"
            << "  status:       " << r.status << " after " << Count(r.attempts, "attempt", "attempts") << "\n"
            << "  next attempt: " << NextRunAttempt(r) << "\n"
            << "  idempotency:  " << Dash(r.idempotency_key) << "\n"
            << "  external ref: " << Dash(r.external_ref) << "  (pointer " << Dash(r.external_ref_pointer) << ")\n"
            << "  last status:  " << Dash(r.last_status_code) << "\n"
            << "  last error:   " << (r.last_error_code.empty() ? "" : "[" + r.last_error_code + "] ")
            << Dash(r.last_error) << "\n"
            << "  trace id:     " << Dash(r.trace_id) << "\n"
            << "  created:      " << r.created_at << "  started " << Dash(r.started_at) << "  completed "
            << Dash(r.completed_at) << (r.latency_ms ? "  latency " + FormatNumber(*r.latency_ms) + " ms" : "")
            << "\n";
  if (detail->timeline.empty()) {
    std::cout << "no attempts yet\n";
  } else {
    std::cout << "attempts:\n";
    PrintAttemptLine("#", "started", "duration ms", "http", "outcome", "error class", "retryable",
                     "[error code] summary (credential version)");
    char duration[32];
    for (const auto& a : detail->timeline) {
      std::snprintf(duration, sizeof duration, "%.1f", a.duration_ms);
      const std::string summary =
          (a.error_code.empty() ? "" : "[" + a.error_code + "] ") + Dash(a.error_summary) +
          (a.credential_version ? " (v" + std::to_string(*a.credential_version) + ")" : "");
      PrintAttemptLine(std::to_string(a.attempt), a.started_at, duration, Dash(a.status_code), a.outcome,
                       Dash(a.error_class), a.retryable ? "yes" : "no", summary);
    }
  }
  PrintFailures(detail->failures);
  return 0;
}

int Replay(const Invocation& inv) {
  const std::string& id = inv.operand();
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto replay = Runs(db).Replay(id);
  if (!replay.replayed) {
    std::cout << id << " is " << replay.previous_status << "; nothing to replay\n";
    return 0;
  }
  std::cout << "replayed " << id << " (was " << replay.previous_status
            << "); it runs again with a fresh attempt budget\n";
  return 0;
}

}  // namespace

std::vector<Command> RunCommands() {
  constexpr std::string_view kTopic = "Integration runs";
  return {
      {.topic = kTopic,
       .name = "run enqueue",
       .summary = "queue a run (courier.enqueue_run); prints its id",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "its tenant",
                    .required = true},
                   {.name = "connection", .value_name = "CONN_ID", .help = "the connection", .required = true},
                   {.name = "operation", .value_name = "OP", .help = "what it does, e.g. sms.send", .required = true},
                   {.name = "method", .value_name = "METHOD", .help = "the HTTP method", .default_value = "POST"},
                   {.name = "path", .value_name = "PATH", .help = "appended to the base URL", .default_value = "/"},
                   {.name = "body", .value_name = "TEXT", .help = "the request body"},
                   {.name = "headers", .kind = Kind::kJsonObject, .value_name = "JSON_OBJECT",
                    .help = "non-secret headers",
                    .expect = R"(a JSON object, e.g. '{"X-Request-Source": "ops"}')"},
                   {.name = "idempotency-key", .value_name = "KEY",
                    .help = "sent as Idempotency-Key; the same key again returns the first run"},
                   {.name = "trace-id", .value_name = "ID", .help = "a W3C trace id"},
                   {.name = "external-ref", .value_name = "/json/pointer",
                    .help = "where the vendor's id is in the response"}},
       .example = "pgcourierctl run enqueue --tenant acme --connection conn_... --operation sms.send \\\n"
                  "  --path /2010-04-01/Messages.json --body '{\"to\":\"+15550100\"}' --idempotency-key order-42-sms",
       .run = Enqueue},
      {.topic = kTopic,
       .name = "run list",
       .summary = "the most recent runs",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "only this tenant's"},
                   {.name = "status",
                    .kind = Kind::kChoice,
                    .value_name = "STATUS",
                    .help = "only runs in this status",
                    .choices = {"pending", "running", "completed", "failed", "dead_lettered"}},
                   {.name = "limit",
                    .kind = Kind::kInt,
                    .value_name = "N",
                    .help = "at most N",
                    .default_value = "50",
                    .min = 1,
                    .max = 100'000}},
       .example = "pgcourierctl run list --status dead_lettered --json",
       .json = true,
       .run = List},
      {.topic = kTopic,
       .name = "run show",
       .operand = "ID",
       .summary = "one run, its attempts and its failures",
       .example = "pgcourierctl run show run_...",
       .json = true,
       .run = Show},
      {.topic = kTopic,
       .name = "run replay",
       .operand = "ID",
       .summary = "run a failed or dead-lettered run again with a fresh attempt budget",
       .description = "A completed run never runs again.",
       .example = "pgcourierctl run replay run_...",
       .run = Replay},
  };
}

}  // namespace pgcourier::ctl
