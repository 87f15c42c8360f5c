# Writes OUT: docs/openapi.json (IN) as a C++ string constant for pgcourier-gateway.
file(READ ${IN} content)
string(FIND "${content}" ")OPENAPI\"" bad)
if(NOT bad EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter )OPENAPI\"")
endif()
file(WRITE ${OUT} "// Generated from docs/openapi.json by cmake/embed_openapi.cmake.\nnamespace pgcourier::gateway {\nextern const char* const kOpenApiDocument;\nconst char* const kOpenApiDocument = R\"OPENAPI(${content})OPENAPI\";\n}\n")
