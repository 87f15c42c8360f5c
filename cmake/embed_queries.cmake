# Writes OUT, a C++ file defining pgcourier::store::EmbeddedQueries() from the
# daemon's statements in FILES (daemon/store/queries/NAME.sql): one statement
# per file, and the file name is the statement's name everywhere (prepared
# statement, log line, pgcourier_db_statement_duration_seconds label).
separate_arguments(files NATIVE_COMMAND "${FILES}")
list(SORT files)
set(body "#include \"store/queries.hpp\"\n\nnamespace pgcourier::store {\n\nconst std::vector<NamedQuery>& EmbeddedQueries() {\n  static const std::vector<NamedQuery> kQueries = {\n")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME_WE)
  file(READ "${f}" sql)
  string(APPEND body "      {\"${name}\", R\"PGCSQL(${sql})PGCSQL\"},\n")
endforeach()
string(APPEND body "  };\n  return kQueries;\n}\n\n}  // namespace pgcourier::store\n")
file(WRITE "${OUT}.tmp" "${body}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
