// admin::Events: the event catalog (courier.event_types,
// courier.create_event_type()), a type's specimen sent to one subscription
// (courier.send_example()) and the change feed (courier.event_feed()), for
// the operator; all of sql/schema/60_catalog.sql. Borrows an
// admin::Connection; not thread-safe. Throws StoreError (22023 a bad value,
// 23505 a type already registered, P0002 an unknown type or subscription).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

struct NewEventType {
  std::string name;
  std::string tenant_id;    // empty: global (every tenant)
  std::string description;  // empty: none
  std::string schema_json;  // empty: none
  std::string specimen_json;
  bool replace = false;  // change the registered one instead of refusing
};

struct EventTypeInfo {
  std::string id;
  std::string tenant_id;  // empty: global
  std::string name;
  std::string description;
  std::string schema_json;    // empty: none (compact JSON text otherwise)
  std::string specimen_json;  // empty: none
  std::string created_at;
  std::string updated_at;
};

// Arguments of courier.event_feed(); empty fields are not filtered on.
struct FeedQuery {
  std::string tenant_id;
  std::string after_cursor;
  int max_rows = 100;
  std::string event_type_prefix;
  std::string labels_json;  // a JSON object the events' labels must contain
  std::string since;        // timestamptz input text
  std::string until;
};

struct FeedEvent {
  std::string cursor;  // the feed continues after it
  std::string id;
  std::string event_type;
  std::string labels_json;
  std::string created_at;
  std::string envelope_json;  // the whole stored event as one JSON object (id, type, payload, labels, ...)
};

class Events {
 public:
  explicit Events(Connection& connection) : connection_(connection) {}

  std::string CreateType(const NewEventType& type);  // its id
  // The tenant's own types and the global ones (empty tenant: every type), by name.
  std::vector<EventTypeInfo> ListTypes(const std::string& tenant_id);
  // The type a tenant's event of `name` is held to: its own, else the global
  // one (empty tenant: the global one only). nullopt: none.
  std::optional<EventTypeInfo> ShowType(const std::string& name, const std::string& tenant_id);
  // Publishes the type's specimen for the subscription's tenant and delivers
  // it to that subscription only; the event id.
  std::string SendExample(const std::string& name, const std::string& subscription_id);
  std::vector<FeedEvent> Feed(const FeedQuery& query);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin
