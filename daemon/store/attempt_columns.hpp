// The columns every recorded attempt has (model::AttemptRecord), as the
// array literals record_outcomes.sql and courier.record_run_outcomes() take:
// one builder per column, filled one record at a time; each store adds its
// own columns and passes them all in its statement's order. Internal to
// store/; not synchronised.
#pragma once

#include <string>

#include "model/delivery.hpp"
#include "store/pg/arrays.hpp"

namespace pgcourier::store {

struct AttemptColumns {
  pg::ArrayBuilder attempts, owners, delays, codes, names, classes, retryable, summaries, excerpts, started, durations,
      rescues;

  // `worker` stands for an empty expected_owner (the writing worker's own lease).
  void Add(const model::AttemptRecord& o, const std::string& worker) {
    attempts.AddNumber(o.attempt);
    owners.AddText(o.expected_owner.empty() ? worker : o.expected_owner);
    if (o.retry_delay_ms) {
      delays.AddNumber(*o.retry_delay_ms);
    } else {
      delays.AddNull();
    }
    if (o.status_code) {
      codes.AddNumber(*o.status_code);
    } else {
      codes.AddNull();
    }
    names.AddText(o.outcome);
    classes.AddTextOrNull(model::ToString(o.failure_class));
    retryable.AddBool(o.retryable);
    summaries.AddTextOrNull(o.error_summary);
    excerpts.AddTextOrNull(o.response_excerpt);
    started.AddNumber(o.started_us);
    durations.AddDouble(o.duration_ms);
    rescues.AddBool(o.rescue);
  }
};

}  // namespace pgcourier::store
