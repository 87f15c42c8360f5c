// pgcourierctl event-type create|list|show|send-example (the event catalog)
// and events (the change feed): sql/schema/60_catalog.sql through
// store/admin/events. Also the label pairs of --scope and --labels.
#include <iostream>
#include <set>
#include <sstream>

#include "base/file.hpp"
#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/events.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::EventTypeInfo;
using store::admin::Events;

std::string Trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return "";
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

// JSON given inline, or "@PATH" for a file's content (at most 1 MiB).
std::string JsonArgument(const std::string& value) {
  if (value.empty() || value[0] != '@') return value;
  base::ReadOptions options;
  options.allow_stream = true;
  return base::ReadSmallFile(value.substr(1), options);
}

void WriteType(Json& json, const EventTypeInfo& t) {
  json.BeginObject()
      .Field("id", t.id)
      .StringOrNull("tenant_id", t.tenant_id)
      .Field("name", t.name)
      .StringOrNull("description", t.description)
      .Key("schema")
      .Raw(t.schema_json)
      .Key("specimen")
      .Raw(t.specimen_json)
      .Time("created_at", t.created_at)
      .Time("updated_at", t.updated_at)
      .EndObject();
}

int CreateType(const Invocation& inv) {
  store::admin::NewEventType type;
  type.name = inv.operand();
  type.tenant_id = inv.Text("tenant");
  type.description = inv.Text("description");
  type.schema_json = JsonArgument(inv.Text("schema"));
  type.specimen_json = JsonArgument(inv.Text("specimen"));
  type.replace = inv.Flag("replace");
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto id = Events(db).CreateType(type);
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Field("id", id).Field("name", type.name).EndObject();
    json.Finish();
    return 0;
  }
  std::cout << (type.replace ? "registered or replaced" : "registered") << " event type " << type.name << " ("
            << id << ") " << (type.tenant_id.empty() ? "for every tenant" : "for tenant " + type.tenant_id) << "\n";
  return 0;
}

int ListTypes(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto types = Events(db).ListTypes(inv.Text("tenant"));
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("event_types").BeginArray();
    for (const auto& t : types) WriteType(json, t);
    json.EndArray().EndObject();
    json.Finish();
    return 0;
  }
  if (types.empty()) {
    std::cout << "no event types\n";
    return 0;
  }
  Table rows = {{"NAME", "TENANT", "SCHEMA", "SPECIMEN", "DESCRIPTION"}};
  for (const auto& t : types) {
    rows.push_back({t.name, t.tenant_id.empty() ? "(global)" : t.tenant_id, t.schema_json.empty() ? "-" : "yes",
                    t.specimen_json.empty() ? "-" : "yes", Dash(t.description)});
  }
  PrintTable(rows);
  return 0;
}

int ShowType(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto t = Events(db).ShowType(inv.operand(), inv.Text("tenant"));
  if (!t) return Fail("no event type " + inv.operand() + (inv.Has("tenant") ? " for tenant " + inv.Text("tenant") : ""));
  if (inv.json()) {
    Json json(std::cout);
    WriteType(json, *t);
    json.Finish();
    return 0;
  }
  std::cout << t->name << "  " << t->id << "  " << (t->tenant_id.empty() ? "global" : "tenant=" + t->tenant_id)
            << "\n";
  if (!t->description.empty()) std::cout << "  about:    " << t->description << "\n";
  std::cout << "  schema:   " << OrElse(t->schema_json, "none (payloads are not checked)") << "\n"
            << "  specimen: " << OrElse(t->specimen_json, "none") << "\n"
            << "  created:  " << t->created_at << ", updated " << t->updated_at << "\n";
  return 0;
}

int SendExample(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto id = Events(db).SendExample(inv.operand(), inv.Text("subscription"));
  std::cout << "sent the specimen of " << inv.operand() << " to " << inv.Text("subscription") << " as event " << id
            << "\n";
  return 0;
}

int Feed(const Invocation& inv) {
  store::admin::FeedQuery query;
  query.tenant_id = inv.Text("tenant");
  query.after_cursor = inv.Text("after");
  query.max_rows = static_cast<int>(*inv.Int("limit"));
  query.event_type_prefix = inv.Text("type");
  std::string error;
  const auto labels = LabelPairsJson(inv.Text("label"), error);
  if (!labels) return UsageError("--label: " + error);
  query.labels_json = *labels;
  query.since = inv.Text("since");
  query.until = inv.Text("until");
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto events = Events(db).Feed(query);
  const std::string next = events.empty() ? query.after_cursor : events.back().cursor;
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("events").BeginArray();
    for (const auto& e : events) json.Raw(e.envelope_json);
    json.EndArray().StringOrNull("next_cursor", next).EndObject();
    json.Finish();
    return 0;
  }
  if (events.empty()) {
    std::cout << "no events" << (query.after_cursor.empty() ? "" : " after the cursor") << "\n";
    return 0;
  }
  Table rows = {{"EVENT", "TYPE", "CREATED", "LABELS"}};
  for (const auto& e : events) {
    rows.push_back({e.id, e.event_type, e.created_at, e.labels_json == "{}" ? "-" : e.labels_json});
  }
  PrintTable(rows);
  std::cout << "continue with --after " << next << "\n";
  return 0;
}

}  // namespace

std::optional<std::string> LabelPairsJson(std::string_view text, std::string& error) {
  const auto items = SplitList(text);
  if (items.empty()) return std::string();
  std::ostringstream out;
  Json json(out);
  json.BeginObject();
  std::set<std::string> seen;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    const std::string key = eq == std::string::npos ? "" : Trim(std::string_view(item).substr(0, eq));
    if (key.empty()) {
      error = "expected KEY=VALUE pairs separated by commas (e.g. channel=web,facility=f1), got '" + item + "'";
      return std::nullopt;
    }
    if (!seen.insert(key).second) {
      error = "label " + key + " is given twice";
      return std::nullopt;
    }
    json.Field(key, Trim(std::string_view(item).substr(eq + 1)));
  }
  json.EndObject();
  std::string compact;
  for (const char c : out.str()) {
    if (c != '\n') compact += c;
  }
  return compact;
}

std::vector<Command> EventCommands() {
  constexpr std::string_view kTopic = "Events";
  const Option tenant_types = {.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                               .help = "the tenant's own types and the global ones (default: every type)"};
  return {
      {.topic = kTopic,
       .name = "event-type create",
       .operand = "NAME",
       .summary = "register an event type in the catalog, with a JSON Schema for its payload and a specimen",
       .description = "Every event of the type (courier.publish or a plain INSERT) is then held to the schema, and "
                      "refused with the failing path ($.amount: expected number). The schema is the subset "
                      "documented in the README (type, required, properties, additionalProperties: false, items, "
                      "enum, minimum, maximum, minLength, maxLength); other keywords are refused. Once a tenant has "
                      "a type of its own, its subscriptions may only name known types. JSON values may be given "
                      "inline or as @FILE.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                    .help = "the tenant it belongs to (default: global, for every tenant)"},
                   {.name = "description", .value_name = "TEXT", .help = "what the event means"},
                   {.name = "schema", .value_name = "JSON", .help = "the payload's JSON Schema (or @FILE)"},
                   {.name = "specimen", .value_name = "JSON",
                    .help = "an example payload, valid against the schema (or @FILE)"},
                   {.name = "replace", .kind = Kind::kFlag, .help = "replace a type already registered"}},
       .example = "pgcourierctl event-type create order.created --tenant acme \\\n"
                  "  --schema '{\"type\": \"object\", \"required\": [\"amount\"], "
                  "\"properties\": {\"amount\": {\"type\": \"number\"}}}' \\\n"
                  "  --specimen '{\"amount\": 120}'",
       .json = true,
       .run = CreateType},
      {.topic = kTopic,
       .name = "event-type list",
       .summary = "the event catalog",
       .options = {tenant_types},
       .example = "pgcourierctl event-type list --tenant acme",
       .json = true,
       .run = ListTypes},
      {.topic = kTopic,
       .name = "event-type show",
       .operand = "NAME",
       .summary = "one event type: its schema and specimen (the tenant's own, else the global one)",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT",
                    .help = "whose type (default: the global one)"}},
       .example = "pgcourierctl event-type show order.created --tenant acme --json",
       .json = true,
       .run = ShowType},
      {.topic = kTopic,
       .name = "event-type send-example",
       .operand = "NAME",
       .summary = "deliver the type's specimen to one subscription, for testing its receiver",
       .description = "Published as an event of the subscription's tenant, labelled courier.example=true, and "
                      "delivered to that subscription only.",
       .options = {{.name = "subscription", .kind = Kind::kIdentifier, .value_name = "SUB_ID",
                    .help = "the subscription", .required = true}},
       .example = "pgcourierctl event-type send-example order.created --subscription sub_...",
       .run = SendExample},
      {.topic = kTopic,
       .name = "events",
       .summary = "the change feed: a tenant's stored events in a stable order, page by page, with a cursor",
       .description = "courier.event_feed(): an event appears once every transaction older than its own has "
                      "ended, so none can ever appear behind a cursor already printed.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "whose events",
                    .required = true},
                   {.name = "after", .value_name = "CURSOR", .help = "the events after this cursor"},
                   {.name = "type", .value_name = "PREFIX", .help = "only types starting with PREFIX (order.)"},
                   {.name = "label", .value_name = "LABELS",
                    .help = "only events carrying every pair, e.g. channel=web,facility=f1"},
                   {.name = "since", .value_name = "TS", .help = "created at or after TS"},
                   {.name = "until", .value_name = "TS", .help = "created before TS"},
                   {.name = "limit", .kind = Kind::kInt, .value_name = "N", .help = "at most N events",
                    .default_value = "100", .min = 1, .max = 10'000}},
       .example = "pgcourierctl events --tenant acme --type order. --label channel=web --json",
       .json = true,
       .run = Feed},
  };
}

}  // namespace pgcourier::ctl
