#include "store/migrate.hpp"

#include <cstdio>
#include <pqxx/pqxx>

#include "store/migrations.hpp"
#include "store/pg/errors.hpp"

namespace pgcourier::store {

std::vector<std::string> Migrate(const std::string& database_url) {
  return pg::Translate("migrate", [&] {
    pqxx::connection conn(database_url);
    // Session-level lock: concurrent migrators wait for each other, and the
    // second one finds everything applied.
    pqxx::nontransaction(conn).exec("SELECT pg_advisory_lock(hashtext('pgcourier.migrate'))");
    {
      pqxx::work txn(conn);
      txn.exec("CREATE SCHEMA IF NOT EXISTS courier");
      txn.exec(
          "CREATE TABLE IF NOT EXISTS courier.schema_migrations ("
          " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      txn.commit();
    }
    std::vector<std::string> applied;
    for (const auto& m : EmbeddedMigrations()) {
      pqxx::work txn(conn);
      const pqxx::result done =
          txn.exec_params("SELECT 1 FROM courier.schema_migrations WHERE version = $1", m.version);
      if (!done.empty()) continue;
      char label[16];
      std::snprintf(label, sizeof label, "%03d_", m.version);
      try {
        txn.exec(m.sql);
      } catch (const pqxx::sql_error& e) {
        throw StoreError(StoreError::Kind::kSchema,
                         std::string("migration ") + label + m.name + " failed: " + e.what());
      }
      txn.exec_params("INSERT INTO courier.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
      txn.commit();
      applied.push_back(label + m.name);
    }
    pqxx::nontransaction(conn).exec("SELECT pg_advisory_unlock(hashtext('pgcourier.migrate'))");
    return applied;
  });
}

}  // namespace pgcourier::store
