// pgcourierctl: the operator CLI. main() puts the command tables of the
// topic files together, parses (ctl/args), and runs one command; every
// database statement lives in daemon/store/admin/. Exit codes: 0 done,
// 1 refused or failed, 2 usage error.
#include <iostream>
#include <string>
#include <vector>

#include "ctl/args.hpp"
#include "ctl/topics.hpp"
#include "store/errors.hpp"

namespace {

using namespace pgcourier;

std::vector<ctl::Command> AllCommands() {
  std::vector<ctl::Command> all;
  for (auto topic : {ctl::SubscriptionCommands, ctl::DeliveryCommands, ctl::IntegrationCommands,
                     ctl::RunCommands, ctl::ProviderCommands, ctl::KpiCommands, ctl::EventCommands,
                     ctl::TransferCommands, ctl::StatusCommands, ctl::GatewayCommands, ctl::SetupCommands}) {
    auto commands = topic();
    all.insert(all.end(), std::make_move_iterator(commands.begin()), std::make_move_iterator(commands.end()));
  }
  return all;
}

// SQLSTATEs of values and states the database refuses: said as the server
// says it, without the statement's name (the message names the field).
bool IsRefusal(const std::string& sqlstate) {
  return sqlstate.rfind("22", 0) == 0 || sqlstate.rfind("23", 0) == 0 || sqlstate == "P0002" ||
         sqlstate == "55000" || sqlstate == "42501";
}

}  // namespace

int main(int argc, char** argv) {
  const auto commands = AllCommands();
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = ctl::Parse(commands, args, PGCOURIER_VERSION);
  switch (parsed.action) {
    case ctl::ParseResult::Action::kPrint:
      std::cout << parsed.text;
      return 0;
    case ctl::ParseResult::Action::kUsageError:
      std::cerr << (parsed.text.rfind("usage:", 0) == 0 ? "" : "pgcourierctl: ") << parsed.text << "\n";
      return 2;
    case ctl::ParseResult::Action::kRun:
      break;
  }
  const auto& invocation = *parsed.invocation;
  try {
    return invocation.command().run(invocation);
  } catch (const store::StoreError& e) {
    if (IsRefusal(e.sqlstate())) {
      std::cerr << "pgcourierctl: " << e.server_message() << "\n";
    } else {
      std::cerr << "pgcourierctl " << invocation.command().name << ": " << e.what() << "\n";
    }
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "pgcourierctl " << invocation.command().name << ": " << e.what() << "\n";
    return 1;
  }
}
