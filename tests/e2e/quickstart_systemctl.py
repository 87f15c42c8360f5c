"""A stand-in for systemctl in the README quickstart test (test_readme_quickstart.py): the test cannot start a
real systemd unit, so `systemctl enable --now pgcourierd` / `start` read the unit that `make install` installed
and run its ExecStart the way systemd would: with only the unit's Environment= (%d expanded), its
LoadCredential= files copied into a private credentials folder ($CREDENTIALS_DIRECTORY), and the unit's absolute
paths under the test's root (QS_ROOT). The one thing added to the environment is PGPORT (QS_PGPORT): the
throwaway cluster does not listen on 5432. `daemon-reload` does nothing; `status` says whether it runs.

usage: quickstart_systemctl.py daemon-reload | enable --now NAME | start NAME | status NAME
"""
import os
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.environ["QS_ROOT"]
UNIT_DIR = os.path.join(ROOT, "usr", "local", "lib", "systemd", "system")


def under_root(path):
    """An absolute path of the unit, inside the test's root."""
    return os.path.join(ROOT, path.lstrip("/")) if path.startswith(("/usr/local/", "/etc/pgcourier/")) else path


def unit_entries(name):
    entries = []
    with open(os.path.join(UNIT_DIR, name + ".service")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                entries.append((key.strip(), value.strip()))
    return entries


def start(name):
    entries = unit_entries(name)
    credentials = os.path.join(ROOT, "run", "credentials", name + ".service")
    shutil.rmtree(credentials, ignore_errors=True)
    os.makedirs(credentials, mode=0o700)
    for key, value in entries:
        if key == "LoadCredential":
            cred, _, path = value.partition(":")
            shutil.copyfile(under_root(path), os.path.join(credentials, cred))  # systemd fails the unit when absent
            os.chmod(os.path.join(credentials, cred), 0o400)
    env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": credentials, "PGPORT": os.environ["QS_PGPORT"]}
    for key, value in entries:
        if key == "Environment":
            var, _, val = value.partition("=")
            env[var] = val.replace("%d", credentials)
    exec_start = [under_root(word) for word in shlex.split(dict(entries)["ExecStart"])]
    log_path = os.path.join(ROOT, name + ".log")
    log = open(log_path, "w")
    proc = subprocess.Popen(exec_start, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    with open(os.path.join(ROOT, name + ".pid"), "w") as f:
        f.write(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log_path) as f:
            text = f.read()
        if "ready" in text:
            return 0
        if proc.poll() is not None:
            sys.stderr.write(f"{name} exited with {proc.returncode}:\n{text}")
            return 1
        time.sleep(0.1)
    sys.stderr.write(f"{name} did not become ready:\n{text}")
    return 1


def main(args):
    if args == ["daemon-reload"]:
        return 0
    if len(args) == 3 and args[:2] == ["enable", "--now"]:
        return start(args[2])
    if len(args) == 2 and args[0] == "start":
        return start(args[1])
    if len(args) == 2 and args[0] == "status":
        pid_file = os.path.join(ROOT, args[1] + ".pid")
        running = os.path.exists(pid_file) and os.path.exists(f"/proc/{open(pid_file).read().strip()}")
        print(f"{args[1]}: {'active (running)' if running else 'inactive'}")
        return 0 if running else 3
    sys.stderr.write(f"quickstart_systemctl: not emulated: {args}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
