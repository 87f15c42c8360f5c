"""Issue 13, end to end: the attacks a hostile producer, tenant or configuration writer tried, each
rerun against the running daemon. Every one must fail with a clear error and send nothing."""
import os
import shutil
import signal

from conftest import LOCAL_POLICIES, wait_for


def test_a_fifo_as_policies_file_is_refused_at_start_without_blocking(daemon_factory, tmp_path):
    fifo = str(tmp_path / "policies.yaml")
    os.mkfifo(fifo)
    d = daemon_factory(start=False, policies_file=fifo)
    d.start(wait_ready=False)
    assert d.wait(timeout=10) == 1, d.log()
    assert f"{fifo}: cannot read policies file: is a FIFO, not a regular file" in d.log()


def test_a_symlink_to_dev_zero_is_refused_at_start_before_reading(daemon_factory, tmp_path):
    link = str(tmp_path / "policies.yaml")
    os.symlink("/dev/zero", link)
    d = daemon_factory(start=False, policies_file=link)
    d.start(wait_ready=False)
    assert d.wait(timeout=10) == 1, d.log()
    assert "is a character device, not a regular file" in d.log()


def test_a_fifo_swapped_in_before_sighup_is_rejected_and_sigterm_still_stops_the_daemon(daemon_factory, tmp_path):
    """Before the fix the main thread blocked in open() on the FIFO: no SIGHUP or SIGTERM was handled
    afterwards, only SIGKILL ended the daemon."""
    path = str(tmp_path / "policies.yaml")
    shutil.copy(LOCAL_POLICIES, path)
    d = daemon_factory(policies_file=path)
    os.remove(path)
    os.mkfifo(path)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in d.log(), timeout=10, what="the reload to be rejected")
    assert "is a FIFO, not a regular file" in d.log()
    # The old configuration stays in force and the main thread still handles signals.
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0, d.log()
