// pgcourierctl export events|deliveries|dead-letters (NDJSON), import events,
// dead-letters list|show: store/admin/transfer over sql/schema/60_catalog.sql.
//
// An export writes one JSON object a line, each with its "cursor", and ends
// with the line {"cursor": C}: the cursor to continue from (--after C). It
// reads page by page and writes each page out before reading the next, so
// its memory does not grow with the export. An import reads its file line by
// line, sends batches of lines, and reports every rejected line with its
// number and reason without stopping.
#include <fstream>
#include <iostream>
#include <memory>

#include "ctl/context.hpp"
#include "ctl/topics.hpp"
#include "store/admin/transfer.hpp"

namespace pgcourier::ctl {
namespace {

using store::admin::ExportKind;
using store::admin::Transfer;

constexpr std::size_t kImportBatch = 500;                    // lines per statement, at most
constexpr std::size_t kImportBatchBytes = std::size_t{8} << 20;  // and at most this much text
constexpr std::size_t kMaxLineBytes = std::size_t{8} << 20;

std::string Quoted(const std::string& cursor) {
  std::string out = "\"";
  for (const char c : cursor) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int Export(const Invocation& inv, ExportKind kind, std::string_view noun) {
  store::admin::PageQuery query;
  query.kind = kind;
  query.tenant_id = inv.Text("tenant");
  query.after_cursor = inv.Text("after");
  query.since = inv.Text("since");
  query.until = inv.Text("until");
  query.max_rows = static_cast<int>(*inv.Int("page-size"));
  const long long limit = inv.Has("max-rows") ? *inv.Int("max-rows") : -1;

  std::ofstream file;
  if (inv.Has("out")) {
    file.open(inv.Text("out"), std::ios::out | std::ios::trunc | std::ios::binary);
    if (!file) return Fail("--out: cannot write " + inv.Text("out"));
  }
  std::ostream& out = inv.Has("out") ? static_cast<std::ostream&>(file) : std::cout;

  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  Transfer transfer(db);
  long long written = 0;
  std::string cursor = query.after_cursor;
  while (limit < 0 || written < limit) {
    if (limit >= 0) query.max_rows = static_cast<int>(std::min<long long>(query.max_rows, limit - written));
    const auto rows = transfer.Page(query);
    for (const auto& row : rows) out << row.json << '\n';
    out.flush();
    if (!out) return Fail("writing the export failed");
    written += static_cast<long long>(rows.size());
    if (rows.empty()) break;
    cursor = rows.back().cursor;
    query.after_cursor = cursor;
    if (rows.size() < static_cast<std::size_t>(query.max_rows)) break;
  }
  out << "{\"cursor\": " << (cursor.empty() ? "null" : Quoted(cursor)) << "}\n";
  out.flush();
  if (!out) return Fail("writing the export failed");
  std::cerr << "exported " << Count(written, std::string(noun), std::string(noun) + "s")
            << (cursor.empty() ? "" : "; continue with --after " + cursor) << "\n";
  return 0;
}

int ExportEvents(const Invocation& inv) { return Export(inv, ExportKind::kEvents, "event"); }
int ExportDeliveries(const Invocation& inv) { return Export(inv, ExportKind::kDeliveries, "delivery"); }
int ExportDeadLetters(const Invocation& inv) { return Export(inv, ExportKind::kDeadLetters, "dead letter"); }

int ImportEvents(const Invocation& inv) {
  const std::string& path = inv.operand();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail("cannot read " + path);
  std::ofstream report;
  if (inv.Has("report")) {
    report.open(inv.Text("report"), std::ios::out | std::ios::trunc);
    if (!report) return Fail("--report: cannot write " + inv.Text("report"));
  }
  const long long from_line = *inv.Int("from-line");
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  Transfer transfer(db);

  long long imported = 0, duplicates = 0, rejected = 0, number = 0, last_done = 0;
  const auto reject = [&](long long line, const std::string& reason) {
    ++rejected;
    std::cerr << path << ":" << line << ": rejected: " << reason << "\n";
    if (report) report << line << "\t" << reason << "\n";
  };
  std::vector<std::pair<long long, std::string>> batch;
  std::size_t batch_bytes = 0;
  const auto flush = [&] {
    batch_bytes = 0;
    if (batch.empty()) return;
    for (const auto& r : transfer.ImportEvents(inv.Text("tenant"), batch)) {
      if (r.status == "imported") ++imported;
      if (r.status == "duplicate") ++duplicates;
      if (r.status == "rejected") reject(r.line, r.reason);
    }
    last_done = batch.back().first;
    batch.clear();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++number;
    if (number < from_line) continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line.size() > kMaxLineBytes) {
      reject(number, "line of " + std::to_string(line.size()) + " bytes, over " + std::to_string(kMaxLineBytes));
      continue;
    }
    batch_bytes += line.size();
    batch.emplace_back(number, std::move(line));
    line.clear();
    if (batch.size() >= kImportBatch || batch_bytes >= kImportBatchBytes) flush();
  }
  flush();
  std::cout << "imported " << Count(imported, "event", "events") << ", "
            << Count(duplicates, "duplicate", "duplicates") << " skipped, " << rejected << " rejected"
            << (last_done ? "; last line read " + std::to_string(last_done) : "") << "\n";
  return rejected ? 1 : 0;
}

int ListDeadLetters(const Invocation& inv) {
  store::admin::PageQuery query;
  query.tenant_id = inv.Text("tenant");
  query.subscription_id = inv.Text("subscription");
  query.since = inv.Text("since");
  query.after_cursor = inv.Text("after");
  query.max_rows = static_cast<int>(*inv.Int("limit"));
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto rows = Transfer(db).DeadLetters(query);
  const std::string next = rows.empty() ? query.after_cursor : rows.back().cursor;
  if (inv.json()) {
    Json json(std::cout);
    json.BeginObject().Key("dead_letters").BeginArray();
    for (const auto& r : rows) json.Raw(r.json);
    json.EndArray().StringOrNull("next_cursor", next).EndObject();
    json.Finish();
    return 0;
  }
  if (rows.empty()) {
    std::cout << "no dead letters\n";
    return 0;
  }
  Table table = {{"DELIVERY", "TENANT", "SUBSCRIPTION", "EVENT TYPE", "ATTEMPTS", "DEAD-LETTERED", "LAST ERROR"}};
  for (const auto& r : rows) {
    table.push_back({r.delivery_id, r.tenant_id, r.subscription_id, r.event_type, std::to_string(r.attempts),
                     r.dead_lettered_at, Dash(r.last_error.substr(0, 80))});
  }
  PrintTable(table);
  if (rows.size() == static_cast<std::size_t>(query.max_rows)) std::cout << "more with --after " << next << "\n";
  return 0;
}

int ShowDeadLetter(const Invocation& inv) {
  const Context context(inv);
  store::admin::Connection db(context.DatabaseUrl());
  const auto json = Transfer(db).ShowDeadLetter(inv.operand(), !inv.json());
  if (json.empty()) return Fail("no dead letter " + inv.operand());
  std::cout << json << "\n";
  return 0;
}

}  // namespace

std::vector<Command> TransferCommands() {
  constexpr std::string_view kTopic = "Export, import and dead letters";
  const auto export_options = [](std::string_view tenant_help) {
    return std::vector<Option>{
        {.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = tenant_help, .required = true},
        {.name = "since", .value_name = "TS", .help = "created at or after TS"},
        {.name = "until", .value_name = "TS", .help = "created before TS"},
        {.name = "after", .value_name = "CURSOR",
         .help = "continue after this cursor (the last line of an export, or the cursor of its last full line)"},
        {.name = "out", .value_name = "FILE", .help = "write to FILE (replaced) instead of stdout"},
        {.name = "max-rows", .kind = Kind::kInt, .value_name = "N", .help = "stop after N rows (then the cursor line)",
         .min = 1, .max = 1'000'000'000'000},
        {.name = "page-size", .kind = Kind::kInt, .value_name = "N", .help = "rows per database read",
         .default_value = "1000", .min = 1, .max = 10'000}};
  };
  constexpr std::string_view kExportDescription =
      "One JSON object a line, each with its \"cursor\"; the last line is {\"cursor\": C}, the cursor to continue "
      "from with --after. Read page by page, so memory stays flat whatever the size.";
  return {
      {.topic = kTopic,
       .name = "export events",
       .summary = "a tenant's events as NDJSON, in the change feed's order",
       .description = kExportDescription,
       .options = export_options("whose events"),
       .example = "pgcourierctl export events --tenant acme --since 2026-11-01 --out acme-events.ndjson",
       .run = ExportEvents},
      {.topic = kTopic,
       .name = "export deliveries",
       .summary = "a tenant's deliveries (state as of now) as NDJSON",
       .description = kExportDescription,
       .options = export_options("whose deliveries"),
       .example = "pgcourierctl export deliveries --tenant acme --out acme-deliveries.ndjson",
       .run = ExportDeliveries},
      {.topic = kTopic,
       .name = "export dead-letters",
       .summary = "a tenant's dead letters (delivery, event envelope, last failure) as NDJSON",
       .description = kExportDescription,
       .options = export_options("whose dead letters"),
       .example = "pgcourierctl export dead-letters --tenant acme --since 2026-11-20",
       .run = ExportDeadLetters},
      {.topic = kTopic,
       .name = "import events",
       .operand = "FILE",
       .summary = "publish the events of an NDJSON export, idempotently (event id, idempotency key)",
       .description = "Each line is published with its id, type, payload, labels, keys and created_at (and fans "
                      "out to this database's subscriptions); an event already present is skipped, so an "
                      "interrupted import can be run again (or continued with --from-line). A line that is "
                      "refused (not JSON, not an event, another tenant's, a payload its type's schema refuses) is "
                      "reported with its number and reason and the others go on; exit 1 when any was.",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "the tenant",
                    .required = true},
                   {.name = "from-line", .kind = Kind::kInt, .value_name = "N", .help = "start at line N",
                    .default_value = "1", .min = 1, .max = 1'000'000'000'000},
                   {.name = "report", .value_name = "FILE",
                    .help = "also write the rejected lines there (LINE<TAB>REASON)"}},
       .example = "pgcourierctl import events --tenant acme acme-events.ndjson --report rejected.tsv",
       .run = ImportEvents},
      {.topic = kTopic,
       .name = "dead-letters list",
       .summary = "dead-lettered deliveries, oldest first, with a cursor for the next page",
       .options = {{.name = "tenant", .kind = Kind::kIdentifier, .value_name = "TENANT", .help = "only this tenant's"},
                   {.name = "subscription", .kind = Kind::kIdentifier, .value_name = "SUB_ID",
                    .help = "only this subscription's"},
                   {.name = "since", .value_name = "TS", .help = "dead-lettered at or after TS"},
                   {.name = "after", .value_name = "CURSOR", .help = "the page after this cursor"},
                   {.name = "limit", .kind = Kind::kInt, .value_name = "N", .help = "at most N",
                    .default_value = "100", .min = 1, .max = 10'000}},
       .example = "pgcourierctl dead-letters list --tenant acme --since 2026-11-20",
       .json = true,
       .run = ListDeadLetters},
      {.topic = kTopic,
       .name = "dead-letters show",
       .operand = "DLV_ID",
       .summary = "one dead letter: the event's envelope, every attempt and the last failure",
       .example = "pgcourierctl dead-letters show dlv_...",
       .json = true,
       .run = ShowDeadLetter},
  };
}

}  // namespace pgcourier::ctl
