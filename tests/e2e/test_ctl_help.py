"""pgcourierctl's command line: help generated from the command tables at every level, --version on both
binaries, 'did you mean' for commands and options, and the documented exit codes (0 done, 1 refused or failed,
2 usage error: nothing done). No database is needed for any of it."""
import os
import re
import subprocess

import pytest

from conftest import PGCOURIERCTL, PGCOURIERD

ENV = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # never reached by these commands


def ctl(*args):
    return subprocess.run([PGCOURIERCTL, *args], capture_output=True, text=True, timeout=30, env=ENV)


def commands_in_global_help():
    """(name, operand) of every command line of the global help."""
    out = ctl("help").stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"^  ([a-z][a-z-]*(?: [a-z][a-z-]*)?)(?: ([A-Z_]+))?  +\S", line)
        if m and not line.startswith("  --"):
            found.append((m.group(1), m.group(2)))
    return found


def test_help_h_and_help_command_print_the_same_global_help_and_exit_0():
    outputs = [ctl(arg) for arg in ("help", "-h", "--help")]
    for result in outputs:
        assert result.returncode == 0 and result.stderr == "", result
        assert result.stdout.startswith("usage: pgcourierctl "), result.stdout
    assert outputs[0].stdout == outputs[1].stdout == outputs[2].stdout
    text = outputs[0].stdout
    for word in ("subscription update ID", "version", "Exit codes: 0 done; 1 refused or failed", "2 the command line",
                 "--json", "--version"):
        assert word in text, word
    names = [name for name, _ in commands_in_global_help()]
    assert len(names) >= 30 and "version" in names and "subscription update" in names, names


def test_every_command_has_its_own_help_with_only_its_options_and_an_example():
    seen = set()
    for name, operand in commands_in_global_help():
        words = name.split()
        for form in ([*words, "--help"], [*words, "-h"], ["help", *words]):
            result = ctl(*form)
            assert result.returncode == 0 and result.stderr == "", (form, result)
            out = result.stdout
            assert out.startswith(f"usage: pgcourierctl {name}" + (f" {operand}" if operand else "")), (form, out)
            assert "Example:\n  pgcourierctl " + words[0] in out, (form, out)
            assert "Exit codes:" in out
            seen.add(out)
    assert len(seen) == len(commands_in_global_help())  # one help per command, not the global one again


def test_subscription_create_help_shows_its_flags_with_defaults_required_and_an_example():
    out = ctl("subscription", "create", "--help").stdout
    assert out.startswith("usage: pgcourierctl subscription create --tenant TENANT --url URL --events TYPES "
                          "[options]\n"), out
    options = re.findall(r"^  (--[a-z-]+)", out, re.M)
    assert options == ["--tenant", "--url", "--events", "--policy", "--id", "--description", "--filter",
                       "--scope", "--signature", "--json"], options
    assert re.search(r"--policy NAME .*\(default: default\)", out, re.S), out
    assert "(required)" in out and "user:password@" in out
    assert "--recent" not in out and "--grace" not in out  # another command's options
    assert "pgcourierctl subscription create --tenant acme --url https://" in out


def test_group_help_lists_the_groups_commands():
    for args in (["subscription", "--help"], ["help", "subscription"], ["subscription", "-h"]):
        result = ctl(*args)
        assert result.returncode == 0, result
        assert result.stdout.startswith("usage: pgcourierctl subscription COMMAND"), result.stdout
        for sub in ("create", "update", "list", "show", "pause", "resume", "disable", "rotate-secret",
                    "revoke-secret"):
            assert f"\n  {sub} " in result.stdout, sub


def test_version_on_both_binaries():
    for args in (["--version"], ["version"]):
        result = ctl(*args)
        assert result.returncode == 0 and re.fullmatch(r"pgcourierctl \d+\.\d+\.\d+\n", result.stdout), result
    daemon = subprocess.run([PGCOURIERD, "--version"], capture_output=True, text=True, timeout=30)
    assert daemon.returncode == 0 and re.fullmatch(r"pgcourierd \d+\.\d+\.\d+\n", daemon.stdout), daemon
    assert daemon.stdout.split()[1] == ctl("--version").stdout.split()[1]
    assert "--version" in subprocess.run([PGCOURIERD, "--help"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("args, message", [
    (["subscripton", "list"], "unknown command 'subscripton'; did you mean 'subscription'?"),
    (["stauts"], "unknown command 'stauts'; did you mean 'status'?"),
    (["subscription", "lst"], "subscription has no command 'lst'; did you mean 'list'?"),
    (["subscription", "craete"], "did you mean 'create'?"),
    (["replay", "--subscripton", "sub_x"], "replay does not take --subscripton; did you mean --subscription?"),
    (["replay", "--dryrun"], "did you mean --dry-run?"),
    (["status", "--recnet", "5"], "status does not take --recnet; did you mean --recent?"),
    (["subscription", "create", "--tenat", "acme"], "did you mean --tenant?"),
])
def test_typos_get_a_did_you_mean_and_exit_2(args, message):
    result = ctl(*args)
    assert result.returncode == 2 and result.stdout == "", result
    assert message in result.stderr, result.stderr
    assert "--help" in result.stderr  # where to look


@pytest.mark.parametrize("args, message", [
    ([], "usage: pgcourierctl"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["subscription"], "subscription needs create, update, list"),
    (["status", "--recent"], "--recent needs a value"),
    (["status", "--recent", "many"], "--recent takes a whole number from 0 to 100000"),
    (["status", "--json=yes"], "--json takes no value"),
    (["publish", "--tenant", "acme", "--type", "x", "--json"], "publish does not take --json"),
    (["subscription", "rotate-secret", "sub_x", "--grace", "soon"], "--grace takes a duration such as 30s"),
    (["subscription", "show"], "subscription show needs ID"),
    (["subscription", "show", "a", "b"], "unexpected argument 'b'"),
    (["replay", "--status", "lost"], "--status takes dead_lettered, failed or delivered, not 'lost'"),
    (["subscription", "update", "sub_x"], "subscription update needs at least one change"),
    (["subscription", "update", "sub_x", "--max-in-flight", "0"], "--max-in-flight takes a whole number from 1"),
    (["subscription", "update", "sub_x", "--ordering", "lifo"], "--ordering takes none or fifo, not 'lifo'"),
    (["-x"], "unknown option '-x'"),
])
def test_usage_errors_exit_2_with_nothing_on_stdout(args, message):
    result = ctl(*args)
    assert result.returncode == 2 and result.stdout == "", result
    assert message in result.stderr, result.stderr


def test_help_wins_over_other_problems_of_the_line():
    result = ctl("status", "--recent", "many", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: pgcourierctl status"), result
