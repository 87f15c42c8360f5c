// The grammar of tenant ids and operator-chosen ids (subscription, connection
// and credential ids): 1 to 128 characters, ASCII letters, digits, '.', '_',
// ':' and '-', starting with a letter or digit. The same rule as
// courier.check_identifier() (sql/schema/50_management.sql), in the same
// words. Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgcourier::validate {

// nullopt when `value` is a valid identifier; else what is wrong, without the
// field's name ("\"   \" is not valid: 1 to 128 characters (...)").
std::optional<std::string> IdentifierProblem(std::string_view value);

}  // namespace pgcourier::validate
