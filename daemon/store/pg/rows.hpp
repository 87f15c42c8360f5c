// Rows into structs by column NAME: the one row-mapping idiom of the store.
// A RowMapping<S> lists (column name, member of S) pairs; Read() looks the
// column numbers up once per result (a missing column is a programming error,
// reported with its name), then fills one S per row. The SQL stays the single
// source of the column list (queries/*.sql name their columns with AS), and a
// renamed or reordered column cannot silently land in the wrong field.
// Internal to daemon/store/. Mappings are immutable after construction:
// thread-safe to share.
#pragma once

#include <pqxx/pqxx>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "store/pg/arrays.hpp"

namespace pgcourier::store::pg {

// NULL reads as "" for text, 0 for numbers, false for booleans, {} for a
// text[] read into a std::vector<std::string>.
template <typename S>
class RowMapping {
 public:
  using Member = std::variant<std::string S::*, int S::*, long S::*, long long S::*, double S::*, bool S::*,
                              std::optional<std::string> S::*, std::optional<int> S::*,
                              std::optional<long long> S::*, std::optional<double> S::*,
                              std::vector<std::string> S::*>;
  struct Column {
    const char* name;
    Member member;
  };

  RowMapping(std::initializer_list<Column> columns) : columns_(columns) {}

  // Every row of `result`, mapped.
  std::vector<S> ReadAll(const pqxx::result& result) const {
    const auto numbers = Numbers(result);
    std::vector<S> out;
    out.reserve(result.size());
    for (const auto& row : result) out.push_back(ReadWith(row, numbers));
    return out;
  }

  // One row (column numbers looked up in its result).
  S Read(const pqxx::row& row) const {
    std::vector<pqxx::row::size_type> numbers;
    numbers.reserve(columns_.size());
    for (const auto& c : columns_) numbers.push_back(NumberOf(row, c.name));
    return ReadWith(row, numbers);
  }

  // Fills the mapped members of an existing S from `row` (for structs
  // assembled from more than one mapping).
  void Fill(const pqxx::row& row, S& out) const {
    for (const auto& c : columns_) Assign(row[NumberOf(row, c.name)], c.member, out);
  }

 private:
  static pqxx::row::size_type NumberOf(const pqxx::row& row, const char* name) {
    try {
      return row.column_number(name);
    } catch (const std::exception&) {
      throw std::logic_error(std::string("result has no column '") + name + "'");
    }
  }

  std::vector<pqxx::row::size_type> Numbers(const pqxx::result& result) const {
    std::vector<pqxx::row::size_type> numbers;
    numbers.reserve(columns_.size());
    for (const auto& c : columns_) {
      try {
        numbers.push_back(result.column_number(c.name));
      } catch (const std::exception&) {
        throw std::logic_error(std::string("result has no column '") + c.name + "'");
      }
    }
    return numbers;
  }

  S ReadWith(const pqxx::row& row, const std::vector<pqxx::row::size_type>& numbers) const {
    S out{};
    for (std::size_t i = 0; i < columns_.size(); ++i) Assign(row[numbers[i]], columns_[i].member, out);
    return out;
  }

  static void Assign(const pqxx::field& f, const Member& member, S& out) {
    std::visit(
        [&](auto m) {
          auto& target = out.*m;
          using T = std::remove_reference_t<decltype(target)>;
          if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            target = f.is_null() ? T{} : ParseTextArray(f.c_str());
          } else if constexpr (std::is_same_v<T, std::optional<std::string>> || std::is_same_v<T, std::optional<int>> ||
                               std::is_same_v<T, std::optional<long long>> || std::is_same_v<T, std::optional<double>>) {
            if (f.is_null()) {
              target.reset();
            } else {
              target = f.template as<typename T::value_type>();
            }
          } else if (f.is_null()) {
            target = T{};
          } else {
            target = f.template as<T>();
          }
        },
        member);
  }

  std::vector<Column> columns_;
};

}  // namespace pgcourier::store::pg
