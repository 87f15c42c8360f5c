#!/usr/bin/env python3
"""Run one command and watch it: its memory and its progress through a file, over time.

  bench/run_sampled.py SERIES_OUT reads|writes FILE -- COMMAND [ARG...]

Every 0.2 s, until the command exits, appends "<unix time> <VmRSS KiB>
<bytes>" to SERIES_OUT: bytes is how far the command is in FILE: for a
command that reads it (an import), the offset of its descriptor on FILE (the
last one seen while it has none open: 0 before it opens the file); for one
that writes it (an export), FILE's size. At the end prints one line of
key=value: seconds (wall), user_s and sys_s (its CPU, from wait4), hwm_kib
(its peak RSS: the kernel's VmHWM, last read at most 0.2 s before the end),
maxrss_kib (wait4's, which can include this Python's own RSS from before the
exec) and rc.
The command's stdout and stderr go to this script's.

For bench/run's export scenario (issue 17): rows/s each way and whether the
client's memory stays flat while a million rows go through it.
"""
import os
import subprocess
import sys
import time


def memory_kib(pid):
    """(VmRSS, VmHWM) of pid in KiB, (0, 0) once it is gone."""
    fields = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def read_offset(pid, path):
    """The offset of pid's descriptor reading path, or None when it has none open."""
    real = os.path.realpath(path)
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != real:
                    continue
                info = dict(line.split(":", 1) for line in open(f"/proc/{pid}/fdinfo/{fd}") if ":" in line)
                if int(info["flags"].strip(), 8) & os.O_ACCMODE == os.O_RDONLY:
                    return int(info["pos"])
            except (OSError, KeyError, ValueError):
                continue
    except OSError:
        pass
    return None


def written(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def main():
    if len(sys.argv) < 6 or sys.argv[2] not in ("reads", "writes") or sys.argv[4] != "--":
        sys.exit("usage: " + __doc__.strip().splitlines()[2].strip())
    series_path, mode, watched, command = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
    where = peak = 0
    start = time.time()
    child = subprocess.Popen(command)
    with open(series_path, "a", buffering=1) as series:
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            # Read before the sample's time is taken: the row is as of then or later.
            kib, hwm = memory_kib(child.pid)
            peak = max(peak, hwm)
            if mode == "writes":
                where = written(watched)
            else:
                where = read_offset(child.pid, watched) or where
            if kib:
                series.write(f"{time.time():.3f} {kib} {where}\n")
            time.sleep(0.2)
    seconds = time.time() - start
    rc = os.waitstatus_to_exitcode(status)
    print(f"seconds={seconds:.3f} user_s={usage.ru_utime:.3f} sys_s={usage.ru_stime:.3f} "
          f"maxrss_kib={usage.ru_maxrss} hwm_kib={peak} rc={rc}")


if __name__ == "__main__":
    main()
