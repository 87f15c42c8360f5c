# Writes OUT, a C++ file defining pgcourier::store::EmbeddedMigrations():
#   {1, "baseline", ...}: the files of sql/schema (SCHEMA_FILES, already sorted) concatenated in
#     that order, each preceded by a line "-- file: sql/schema/NAME", applied as one migration;
#   then one migration per sql/migrations/NNN_name.up.sql (MIGRATION_FILES, already sorted),
#     NNN >= 2 and increasing.
# The lists come with "|" between their items: a ";" does not survive add_custom_command.
# SOURCE_DIR is the source tree, for the names in the markers.
string(REPLACE "|" ";" schema_files "${SCHEMA_FILES}")
string(REPLACE "|" ";" migration_files "${MIGRATION_FILES}")
if(NOT schema_files)
  message(FATAL_ERROR "embed_migrations: no sql/schema/*.sql files")
endif()

set(kDelimiter ")PGCSQL\"")
function(read_sql path out)
  file(READ "${path}" text)
  string(FIND "${text}" "${kDelimiter}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "embed_migrations: ${path} contains the raw string delimiter ${kDelimiter}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

set(baseline "")
foreach(f IN LISTS schema_files)
  file(RELATIVE_PATH rel "${SOURCE_DIR}" "${f}")
  read_sql("${f}" sql)
  string(APPEND baseline "-- file: ${rel}\n${sql}")
  if(NOT sql MATCHES "\n$")
    string(APPEND baseline "\n")
  endif()
endforeach()

set(body "#include \"store/migrations.hpp\"\n\nnamespace pgcourier::store {\n\nconst std::vector<Migration>& EmbeddedMigrations() {\n  static const std::vector<Migration> kMigrations = {\n")
string(APPEND body "      {1, \"baseline\", R\"PGCSQL(${baseline})PGCSQL\"},\n")
set(previous 1)
foreach(f IN LISTS migration_files)
  get_filename_component(fname "${f}" NAME)
  if(NOT fname MATCHES "^([0-9]+)_(.+)\\.up\\.sql$")
    message(FATAL_ERROR "embed_migrations: ${f}: a migration is named NNN_name.up.sql")
  endif()
  set(version "${CMAKE_MATCH_1}")
  set(mname "${CMAKE_MATCH_2}")
  math(EXPR version_num "${version}")
  if(NOT version_num GREATER previous)
    message(FATAL_ERROR "embed_migrations: ${f}: version ${version_num} must be greater than ${previous} "
                        "(1 is the baseline, and each version is used once)")
  endif()
  set(previous ${version_num})
  read_sql("${f}" sql)
  string(APPEND body "      {${version_num}, \"${mname}\", R\"PGCSQL(${sql})PGCSQL\"},\n")
endforeach()
string(APPEND body "  };\n  return kMigrations;\n}\n\n}  // namespace pgcourier::store\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
