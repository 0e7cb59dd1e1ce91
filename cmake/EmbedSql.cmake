# Run as a script: cmake -DSQL_DIR=... -DOUTPUT=... -P EmbedSql.cmake
# Writes a C++ source that holds every sql/NNNN_name.sql migration, in order, so the installed
# deedkit binary and libraries carry their schema with them.
file(GLOB migration_files "${SQL_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT migration_files)

set(body "")
foreach(path IN LISTS migration_files)
  get_filename_component(file_name "${path}" NAME_WE)
  string(SUBSTRING "${file_name}" 0 4 number)
  string(SUBSTRING "${file_name}" 5 -1 name)
  math(EXPR number "${number} + 0")
  file(READ "${path}" sql)
  string(APPEND body "    {${number}, \"${name}\", R\"deedkit_sql(${sql})deedkit_sql\"},\n")
endforeach()

file(WRITE "${OUTPUT}.tmp"
"// Generated from sql/ by cmake/EmbedSql.cmake. Do not edit.\n"
"#include \"deedkit/eventstore/migrations.hpp\"\n\n"
"namespace deedkit {\n\n"
"const std::vector<Migration>& bundled_migrations() {\n"
"  static const std::vector<Migration> kMigrations = {\n${body}  };\n"
"  return kMigrations;\n}\n\n}  // namespace deedkit\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
