// admin::Transfer: NDJSON export and import and the dead letters, for the
// operator (courier.event_feed, courier.export_deliveries,
// courier.dead_letter_page, courier.import_event of sql/schema/60_catalog.sql).
// Exports read page by page (keyset pages of at most 10,000 rows, each its own
// short read transaction): memory stays flat whatever the size, no snapshot
// is held for the whole export (so vacuum of the queue tables is not held
// up), and every row carries the cursor to continue after it. Borrows an admin::Connection; not
// thread-safe. Throws StoreError.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "store/admin/connection.hpp"

namespace pgcourier::store::admin {

enum class ExportKind { kEvents, kDeliveries, kDeadLetters };

struct PageQuery {
  ExportKind kind = ExportKind::kEvents;
  std::string tenant_id;        // dead letters: empty means every tenant
  std::string subscription_id;  // dead letters only; empty: all
  std::string after_cursor;
  int max_rows = 1000;
  std::string since;  // timestamptz input text; empty: unbounded
  std::string until;
};

// A dead letter as `dead-letters list` prints it.
struct DeadLetterRow {
  std::string cursor;
  std::string delivery_id;
  std::string tenant_id;
  std::string subscription_id;
  std::string event_type;
  int attempts = 0;
  std::string last_error;
  std::string dead_lettered_at;
  std::string json;
};

struct PageRow {
  std::string cursor;
  std::string json;  // one JSON object (compact, one line), the cursor included
};

// One line's fate in an import.
struct ImportedLine {
  long long line = 0;  // 1-based
  std::string status;  // imported, duplicate, cursor, rejected
  std::string reason;  // rejected: the database's message
};

class Transfer {
 public:
  explicit Transfer(Connection& connection) : connection_(connection) {}

  std::vector<PageRow> Page(const PageQuery& query);

  // courier.import_events() over (line number, text) pairs, one statement
  // and one transaction: a rejected line is reported (its own changes rolled
  // back) and the others are kept.
  std::vector<ImportedLine> ImportEvents(const std::string& tenant_id,
                                         const std::vector<std::pair<long long, std::string>>& lines);

  // A page of dead letters (query.kind is ignored).
  std::vector<DeadLetterRow> DeadLetters(const PageQuery& query);
  // One dead letter's envelope, attempts and failure as a JSON object
  // (indented when `pretty`); "" when there is no such dead letter.
  std::string ShowDeadLetter(const std::string& delivery_id, bool pretty);

 private:
  Connection& connection_;
};

}  // namespace pgcourier::store::admin
