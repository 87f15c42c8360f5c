// App: the composition root of pgcourierd. Parses the command line, loads and
// validates configuration, builds the modules, runs the engine on its own
// thread and handles signals synchronously on the main thread (signalfd):
//   SIGTERM/SIGINT: drain (a second one stops at once); SIGHUP: reload policies.
#pragma once

namespace pgcourier::app {

// Returns the process exit code.
int Main(int argc, char** argv, const char* version);

}  // namespace pgcourier::app
