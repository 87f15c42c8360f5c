"""End to end, operations: `make install` / `make uninstall` into a temporary prefix, and the installed
systemd unit checked with systemd-analyze (verify, offline security exposure) and read for the settings
the daemon relies on (notify, watchdog, reload, stop timeout, credentials, unprivileged user)."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD_DIR, ROOT

UNIT = os.path.join("lib", "systemd", "system", "pgcourierd.service")


def make(target, prefix):
    """make -s TARGET with PREFIX/SYSCONFDIR under prefix and the build dir the tests run against."""
    result = subprocess.run(["make", "-s", target, f"PREFIX={prefix}", f"SYSCONFDIR={prefix}/etc",
                             f"BUILD_DIR={os.path.abspath(BUILD_DIR)}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"make {target} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def files_under(root):
    """Every non-directory path under root, relative to it."""
    out = []
    for dirpath, _, filenames in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
    return sorted(out)


@pytest.fixture(scope="module")
def installed():
    """A `make install` into a fresh prefix (shared by the tests of this module; the uninstall test runs
    last, in file order). Yields the prefix."""
    prefix = tempfile.mkdtemp(prefix="pgcourier-install-")
    make("install", prefix)
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def unit_entries(path):
    """[(key, value)] of the [Service]-and-other sections of a unit file, in order (comments dropped)."""
    entries = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            entries.append((key.strip(), value.strip()))
    return entries


def seconds(text):
    """A systemd/pgcourier duration ('40', '40s', '25s', '1min', '500ms') in seconds."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|m|s|h)?", text.strip()):
        total += float(number) * {"ms": 0.001, "min": 60, "m": 60, "h": 3600}.get(unit, 1)
    return total


def test_make_install_places_binaries_unit_sql_policies_docs_and_example_config(installed):
    files = files_under(installed)
    expected = {
        "bin/pgcourierd", "bin/pgcourierctl", UNIT,
        "share/pgcourier/policies/default.yaml", "share/pgcourier/policies/local.yaml",
        "share/pgcourier/examples/pgcourierd.yaml",
        "share/doc/pgcourier/README.md", "share/doc/pgcourier/prometheus-alerts.yaml",
        "share/doc/pgcourier/grafana-dashboard.json",
        "etc/pgcourier/pgcourierd.yaml", "etc/pgcourier/policies.yaml",
    }
    # The SQL: the baseline's files, the deltas after it (none yet) and the snapshot.
    expected |= {f"share/pgcourier/sql/schema/{name}" for name in os.listdir(os.path.join(ROOT, "sql", "schema"))
                 if name.endswith(".sql")}
    expected |= {f"share/pgcourier/sql/migrations/{name}"
                 for name in os.listdir(os.path.join(ROOT, "sql", "migrations")) if name.endswith(".up.sql")}
    expected.add("share/pgcourier/sql/schema.snapshot.sql")
    assert expected - set(files) == set(), f"not installed: {sorted(expected - set(files))}"
    for binary in ("pgcourierd", "pgcourierctl"):
        path = os.path.join(installed, "bin", binary)
        assert os.access(path, os.X_OK), path
        with open(path, "rb") as a, open(os.path.join(BUILD_DIR, binary), "rb") as b:
            assert a.read() == b.read(), f"{binary} differs from the build dir's"
    version = subprocess.run([os.path.join(installed, "bin", "pgcourierctl"), "version"],
                             capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("pgcourierctl "), version


def test_installed_unit_passes_systemd_analyze_verify_and_offline_security_below_2(installed):
    unit = os.path.join(installed, UNIT)
    verify = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    out = verify.stdout + verify.stderr
    assert verify.returncode == 0, out
    # verify exits 0 on ignored unknown keys and bad values too; those are reported as "<unit>:<line>: ...".
    complaints = [line for line in out.splitlines() if re.search(r"pgcourierd\.service:\d+:", line)]
    assert complaints == [], out

    security = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                              capture_output=True, text=True, timeout=60)
    out = security.stdout + security.stderr
    assert security.returncode == 0, out
    match = re.search(r"Overall exposure level for pgcourierd\.service:\s*([0-9.]+)", out)
    assert match, out
    assert float(match.group(1)) < 2.0, out[-2000:]


def test_installed_unit_is_notify_with_watchdog_reload_credentials_and_a_stop_timeout_above_the_grace(installed):
    entries = unit_entries(os.path.join(installed, UNIT))
    values = {}
    for key, value in entries:
        values.setdefault(key, []).append(value)

    assert values.get("Type") == ["notify"], values.get("Type")
    assert seconds(values["WatchdogSec"][-1]) > 0, values.get("WatchdogSec")
    assert values.get("ExecReload"), "no ExecReload"
    assert "HUP" in values["ExecReload"][-1] and "$MAINPID" in values["ExecReload"][-1], values["ExecReload"]

    exec_start = values["ExecStart"][-1].split()
    assert exec_start[0] == os.path.join(installed, "bin", "pgcourierd"), exec_start
    assert "--config" in exec_start, exec_start
    config = exec_start[exec_start.index("--config") + 1]
    assert config == os.path.join(installed, "etc", "pgcourier", "pgcourierd.yaml"), config
    assert os.path.isfile(config)

    credentials = dict(v.split(":", 1) for v in values.get("LoadCredential", []))
    assert credentials.get("master-key") == os.path.join(installed, "etc", "pgcourier", "master.key"), credentials
    assert values.get("DynamicUser") == ["yes"] or values.get("User"), "the service must not run as root"

    # systemd must not SIGKILL a daemon that is still inside its drain window.
    with open(config) as f:
        grace = re.search(r"^shutdown_grace:\s*(\S+)", f.read(), re.M)
    grace_s = seconds(grace.group(1)) if grace else 25.0  # the built-in default (settings.hpp)
    stop_timeout = seconds(values["TimeoutStopSec"][-1])
    assert stop_timeout > grace_s, f"TimeoutStopSec {stop_timeout}s <= shutdown_grace {grace_s}s"


def test_installed_example_config_passes_check_config_with_the_installed_files(installed):
    # What ExecStart runs, with --check-config: the configuration installed under SYSCONFDIR must be usable.
    config = os.path.join(installed, "etc", "pgcourier", "pgcourierd.yaml")
    result = subprocess.run([os.path.join(installed, "bin", "pgcourierd"), "--check-config", "--config", config],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "DATABASE_URL": ""})
    out = result.stdout + result.stderr
    assert result.returncode == 0, (f"the installed {config} is rejected (SYSCONFDIR={installed}/etc):\n{out}")
    assert os.path.join(installed, "etc", "pgcourier", "policies.yaml") in out, out


def test_make_uninstall_removes_every_installed_file(installed):
    assert files_under(installed), "nothing installed"
    make("uninstall", installed)
    assert files_under(installed) == [], "left behind by make uninstall"
    assert not os.path.exists(os.path.join(installed, "etc", "pgcourier"))
    assert not os.path.exists(os.path.join(installed, "share", "pgcourier"))
    assert not os.path.exists(os.path.join(installed, "share", "doc", "pgcourier"))
