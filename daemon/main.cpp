// pgcourierd: argv -> config -> App -> exit code.
#include "app/app.hpp"

int main(int argc, char** argv) { return pgcourier::app::Main(argc, argv, PGCOURIER_VERSION); }
