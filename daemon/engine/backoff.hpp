// The one retry policy of the engine, for everything that talks to the
// database: the first retry after 100 ms, each next one twice as late, at
// most 5 s apart; reset after a success. Pure; not synchronised.
#pragma once

#include <algorithm>
#include <chrono>

namespace pgcourier::engine {

class Backoff {
 public:
  using Millis = std::chrono::milliseconds;
  explicit Backoff(Millis first = Millis(100), Millis most = Millis(5000)) : first_(first), most_(most), next_(first) {}

  // The delay before the next try, and the one after it doubled.
  Millis Next() {
    const Millis delay = next_;
    next_ = std::min(most_, next_ * 2);
    return delay;
  }
  // The delay Next() would give, without moving on.
  Millis Peek() const { return next_; }
  void Reset() { next_ = first_; }
  bool reset() const { return next_ == first_; }

 private:
  Millis first_, most_, next_;
};

}  // namespace pgcourier::engine
