// pgcourierctl's commands by topic, one file each (subscriptions.cpp,
// deliveries.cpp, integrations.cpp, runs.cpp, providers.cpp, kpis.cpp, status.cpp, setup.cpp, events.cpp,
// transfer.cpp, gateway.cpp), and the
// printing they share. main.cpp puts the tables together in this order.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/args.hpp"
#include "ctl/print.hpp"
#include "store/admin/connections.hpp"
#include "store/admin/subscriptions.hpp"

namespace pgcourier::ctl {

std::vector<Command> SubscriptionCommands();  // subscription ...
std::vector<Command> DeliveryCommands();      // publish, replay, redeliver, inspect
std::vector<Command> IntegrationCommands();   // connection ..., credential ...
std::vector<Command> RunCommands();           // run ...
std::vector<Command> ProviderCommands();      // provider ..., api-client ... (providers.cpp)
std::vector<Command> KpiCommands();           // kpi, kpi-threshold ... (kpis.cpp)
std::vector<Command> StatusCommands();        // status
std::vector<Command> SetupCommands();         // migrate, schema, keygen, version
std::vector<Command> GatewayCommands();       // api-token ... (gateway.cpp)
std::vector<Command> EventCommands();         // event-type ..., events (events.cpp)
std::vector<Command> TransferCommands();      // export ..., import events, dead-letters ... (transfer.cpp)

// Labels and scopes on the command line: "channel=web,facility=f1" as the JSON
// object {"channel": "web", "facility": "f1"}; "" for an empty text. nullopt,
// with `error` set, for an item without '=' or a key given twice (the
// database checks the rest: names, lengths, counts).
std::optional<std::string> LabelPairsJson(std::string_view text, std::string& error);

// Shared by subscriptions and status.
std::string DescribeState(const store::admin::SubscriptionState& s);  // "paused since T: reason"
void PrintState(const store::admin::SubscriptionState& s);           // the state and health lines
void WriteState(Json& json, const store::admin::SubscriptionState& s);  // {"state": ..., "held_deliveries": ...}

// Shared by connections, credentials, runs and status: a connection's health
// fields, and with `settings` its settings too (not in status).
void WriteConnection(Json& json, const store::admin::ConnectionInfo& c, bool settings);

// Shared by credentials and ingress sources: the secret a file holds, all of
// it but one trailing newline (LF or CRLF); nullopt, after saying why, when it
// cannot be read or holds no one-line secret.
std::optional<std::string> ReadSecretFile(const std::string& path);

// Shared by inspect and run show.
void PrintAttemptLine(const std::string& attempt, const std::string& started, const std::string& duration,
                      const std::string& http, const std::string& outcome, const std::string& error_class,
                      const std::string& retryable, const std::string& summary);
void WriteAttempt(Json& json, const store::admin::AttemptInfo& a, bool run);

}  // namespace pgcourier::ctl
