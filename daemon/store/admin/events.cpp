#include "store/admin/events.hpp"

#include "store/admin/impl.hpp"

namespace pgcourier::store::admin {
namespace {

const std::string kTypes =
    "SELECT t.id, t.tenant_id, t.name, t.description, t.schema::text AS schema_json, "
    "  t.specimen::text AS specimen_json, date_trunc('second', t.created_at)::text AS created_at, "
    "  date_trunc('second', t.updated_at)::text AS updated_at "
    "FROM courier.event_types t ";

const pg::RowMapping<EventTypeInfo> kType = {
    {"id", &EventTypeInfo::id},
    {"tenant_id", &EventTypeInfo::tenant_id},
    {"name", &EventTypeInfo::name},
    {"description", &EventTypeInfo::description},
    {"schema_json", &EventTypeInfo::schema_json},
    {"specimen_json", &EventTypeInfo::specimen_json},
    {"created_at", &EventTypeInfo::created_at},
    {"updated_at", &EventTypeInfo::updated_at},
};

const pg::RowMapping<FeedEvent> kFeedEvent = {
    {"cursor", &FeedEvent::cursor},
    {"id", &FeedEvent::id},
    {"event_type", &FeedEvent::event_type},
    {"labels_json", &FeedEvent::labels_json},
    {"created_at", &FeedEvent::created_at},
    {"envelope_json", &FeedEvent::envelope_json},
};

}  // namespace

std::string Events::CreateType(const NewEventType& type) {
  return pg::Translate("create event type", [&] {
    pqxx::work txn(connection_.impl().conn);
    NamedCall call("courier.create_event_type");
    call.Arg("name", type.name)
        .ArgUnlessEmpty("tenant_id", type.tenant_id)
        .ArgUnlessEmpty("description", type.description)
        .ArgUnlessEmpty("schema", type.schema_json, "jsonb")
        .ArgUnlessEmpty("specimen", type.specimen_json, "jsonb")
        .Arg("replace", type.replace ? "true" : "false", "boolean");
    auto id = Text(call.Exec1(txn, "SELECT ")[0]);
    txn.commit();
    return id;
  });
}

std::vector<EventTypeInfo> Events::ListTypes(const std::string& tenant_id) {
  return pg::Translate("list event types", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    return kType.ReadAll(txn.exec_params(
        kTypes + "WHERE $1 = '' OR t.tenant_id = $1 OR t.tenant_id IS NULL ORDER BY t.name, t.tenant_id NULLS FIRST",
        tenant_id));
  });
}

std::optional<EventTypeInfo> Events::ShowType(const std::string& name, const std::string& tenant_id) {
  return pg::Translate("show event type", [&]() -> std::optional<EventTypeInfo> {
    pqxx::read_transaction txn(connection_.impl().conn);
    const auto rows = txn.exec_params(
        kTypes + "WHERE t.name = $1 AND (t.tenant_id = nullif($2, '') OR t.tenant_id IS NULL) "
                 "ORDER BY t.tenant_id NULLS LAST LIMIT 1",
        name, tenant_id);
    if (rows.empty()) return std::nullopt;
    return kType.Read(rows[0]);
  });
}

std::string Events::SendExample(const std::string& name, const std::string& subscription_id) {
  return pg::Translate("send example", [&] {
    pqxx::work txn(connection_.impl().conn);
    auto id = Text(NamedCall("courier.send_example")
                       .Arg("event_type", name)
                       .Arg("subscription_id", subscription_id)
                       .Exec1(txn, "SELECT ")[0]);
    txn.commit();
    return id;
  });
}

std::vector<FeedEvent> Events::Feed(const FeedQuery& q) {
  return pg::Translate("event feed", [&] {
    pqxx::read_transaction txn(connection_.impl().conn);
    NamedCall call("courier.event_feed");
    call.Arg("tenant_id", q.tenant_id)
        .ArgUnlessEmpty("after_cursor", q.after_cursor)
        .Arg("max_rows", std::to_string(q.max_rows), "integer")
        .ArgUnlessEmpty("event_type_prefix", q.event_type_prefix)
        .ArgUnlessEmpty("labels", q.labels_json, "jsonb")
        .ArgUnlessEmpty("since", q.since, "timestamptz")
        .ArgUnlessEmpty("until", q.until, "timestamptz");
    return kFeedEvent.ReadAll(call.Exec(
        txn,
        "SELECT f.cursor, f.id, f.event_type, f.event_labels::text AS labels_json, "
        "  date_trunc('second', f.created_at)::text AS created_at, "
        "  jsonb_build_object('id', f.id, 'tenant_id', $1::text, 'type', f.event_type, 'payload', f.payload, "
        "    'labels', f.event_labels, 'idempotency_key', f.idempotency_key, 'trace_id', f.trace_id, "
        "    'ordering_key', f.ordering_key, 'created_at', f.created_at, 'cursor', f.cursor)::text AS envelope_json "
        "FROM ",
        " f"));
  });
}

}  // namespace pgcourier::store::admin
