#include "store/admin/transfer.hpp"

#include "store/admin/impl.hpp"
#include "store/pg/arrays.hpp"

namespace pgcourier::store::admin {
namespace {

const pg::RowMapping<PageRow> kPageRow = {
    {"cursor", &PageRow::cursor},
    {"json", &PageRow::json},
};

const pg::RowMapping<DeadLetterRow> kDeadLetter = {
    {"cursor", &DeadLetterRow::cursor},
    {"delivery_id", &DeadLetterRow::delivery_id},
    {"tenant_id", &DeadLetterRow::tenant_id},
    {"subscription_id", &DeadLetterRow::subscription_id},
    {"event_type", &DeadLetterRow::event_type},
    {"attempts", &DeadLetterRow::attempts},
    {"last_error", &DeadLetterRow::last_error},
    {"dead_lettered_at", &DeadLetterRow::dead_lettered_at},
    {"json", &DeadLetterRow::json},
};

}  // namespace

std::vector<DeadLetterRow> Transfer::DeadLetters(const PageQuery& q) {
  return pg::Translate("dead letters", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    NamedCall call("courier.dead_letter_page");
    call.ArgUnlessEmpty("tenant_id", q.tenant_id)
        .ArgUnlessEmpty("subscription_id", q.subscription_id)
        .ArgUnlessEmpty("after_cursor", q.after_cursor)
        .Arg("max_rows", std::to_string(q.max_rows), "integer")
        .ArgUnlessEmpty("since", q.since, "timestamptz")
        .ArgUnlessEmpty("until", q.until, "timestamptz");
    return kDeadLetter.ReadAll(call.Exec(
        txn,
        "SELECT p.cursor, p.line ->> 'delivery_id' AS delivery_id, p.line ->> 'tenant_id' AS tenant_id, "
        "  p.line ->> 'subscription_id' AS subscription_id, p.line -> 'event' ->> 'type' AS event_type, "
        "  (p.line ->> 'attempts')::int AS attempts, p.line ->> 'last_error' AS last_error, "
        "  date_trunc('second', (p.line ->> 'dead_lettered_at')::timestamptz)::text AS dead_lettered_at, "
        "  p.line::text AS json FROM ",
        " p"));
  });
}

std::vector<PageRow> Transfer::Page(const PageQuery& q) {
  return pg::Translate("export page", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    if (q.kind == ExportKind::kEvents) {
      NamedCall call("courier.event_feed");
      call.Arg("tenant_id", q.tenant_id)
          .ArgUnlessEmpty("after_cursor", q.after_cursor)
          .Arg("max_rows", std::to_string(q.max_rows), "integer")
          .ArgUnlessEmpty("since", q.since, "timestamptz")
          .ArgUnlessEmpty("until", q.until, "timestamptz");
      return kPageRow.ReadAll(call.Exec(
          txn,
          "SELECT f.cursor, jsonb_build_object('id', f.id, 'tenant_id', $1::text, 'type', f.event_type, "
          "  'payload', f.payload, 'labels', f.event_labels, 'idempotency_key', f.idempotency_key, "
          "  'trace_id', f.trace_id, 'ordering_key', f.ordering_key, 'created_at', f.created_at, "
          "  'cursor', f.cursor)::text AS json FROM ",
          " f"));
    }
    NamedCall call(q.kind == ExportKind::kDeliveries ? "courier.export_deliveries" : "courier.dead_letter_page");
    if (q.kind == ExportKind::kDeliveries) {
      call.Arg("tenant_id", q.tenant_id);
    } else {
      call.ArgUnlessEmpty("tenant_id", q.tenant_id).ArgUnlessEmpty("subscription_id", q.subscription_id);
    }
    call.ArgUnlessEmpty("after_cursor", q.after_cursor)
        .Arg("max_rows", std::to_string(q.max_rows), "integer")
        .ArgUnlessEmpty("since", q.since, "timestamptz")
        .ArgUnlessEmpty("until", q.until, "timestamptz");
    return kPageRow.ReadAll(call.Exec(txn, "SELECT p.cursor, p.line::text AS json FROM ", " p"));
  });
}

std::vector<ImportedLine> Transfer::ImportEvents(const std::string& tenant_id,
                                                 const std::vector<std::pair<long long, std::string>>& lines) {
  return pg::Translate("import events", [&] {
    std::vector<ImportedLine> out;
    std::vector<std::string> texts;
    texts.reserve(lines.size());
    for (const auto& line : lines) texts.push_back(line.second);
    pqxx::work txn(connection_.impl().conn);
    // One statement per batch; the function rolls a rejected line back on its own.
    const auto rows = txn.exec_params(
        "SELECT r.line_index, r.status, r.reason FROM courier.import_events($1, $2::text[]) r ORDER BY r.line_index",
        tenant_id, pg::TextArray(texts));
    for (const auto& row : rows) {
      const auto index = row["line_index"].as<std::size_t>() - 1;
      out.push_back({lines.at(index).first, Text(row["status"]), Text(row["reason"])});
    }
    txn.commit();
    return out;
  });
}

std::string Transfer::ShowDeadLetter(const std::string& delivery_id, bool pretty) {
  return pg::Translate("show dead letter", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params("SELECT CASE WHEN $2 THEN jsonb_pretty(j) ELSE j::text END AS json FROM courier.show_dead_letter($1) j", delivery_id, pretty);
    return Text(rows[0]["json"]);
  });
}

}  // namespace pgcourier::store::admin
