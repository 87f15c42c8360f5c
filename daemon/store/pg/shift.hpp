// One batch of the pass that moves schedules back after a backward step of
// the database clock: queries/shift_schedules.sql (deliveries) and
// shift_run_schedules.sql (runs) take the same parameters and return the
// same columns, so both stores run them through this. Internal to
// daemon/store/; like its Session, one thread at a time.
#pragma once

#include "store/pg/rows.hpp"
#include "store/pg/session_impl.hpp"
#include "store/types.hpp"

namespace pgcourier::store::pg {

inline ShiftedSchedules ExecShift(Session::Impl& s, const char* name, const ScheduleShift& shift) {
  static const RowMapping<ShiftedSchedules> kColumns = {{"last_id", &ShiftedSchedules::last_id},
                                                        {"visited", &ShiftedSchedules::visited},
                                                        {"due_times", &ShiftedSchedules::due_times},
                                                        {"leases", &ShiftedSchedules::leases}};
  return kColumns.Read(s.ExecCommitted(name, static_cast<long long>(shift.step.count()), shift.after, shift.batch,
                                       static_cast<long long>(shift.lease_margin.count()))[0]);
}

}  // namespace pgcourier::store::pg
