"""README.md's quickstart, run as written: the ```sh block after the `<!-- quickstart -->` marker, line by line in
bash, from the clone, as root. It must work on a fresh Debian 12 machine; here it runs against a throwaway
PostgreSQL cluster and installs into a temporary root, so the test touches nothing of this machine's /etc or
/usr. What differs from a real machine, and nothing else:
  - `make install` gets DESTDIR=<root> (from the environment), so the files land under <root>; in the block,
    /etc/pgcourier is replaced by <root>/etc/pgcourier, and <root>/usr/local/bin is first on PATH;
  - pgcourierctl is told where that settings file is (PGCOURIER_CONFIG), since its built-in default is the real
    /etc/pgcourier/pgcourierd.yaml;
  - `sudo CMD` runs CMD (the test is root); `sudo -u postgres CMD` runs CMD as the cluster's superuser over TCP;
  - PGPORT points libpq at the cluster (the block's URL names no port: 5432 on a real machine);
  - the metrics address 127.0.0.1:9464 becomes a free port;
  - `systemctl` is quickstart_systemctl.py, which runs the installed unit's ExecStart as systemd would (its
    Environment= and LoadCredential=).
Before running, the test checks that the block writes no other absolute path of this machine."""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request

import psycopg2
import pytest

from conftest import BUILD_DIR, ROOT

README = os.path.join(ROOT, "README.md")
MARKER = "<!-- quickstart -->"
STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart_systemctl.py")


def quickstart_block():
    text = open(README).read()
    assert text.count(MARKER) == 1, "README.md must mark exactly one quickstart block"
    match = re.match(r"\s*```sh\n(.*?)\n```\n", text.split(MARKER, 1)[1], re.S)
    assert match, "the quickstart marker must be followed by a ```sh block"
    return match.group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """A throwaway cluster of its own: the block creates a role and a database, cluster-wide objects."""
    tmp = tempfile.mkdtemp(prefix="pgcourier-quickstart-pg-")
    os.chmod(tmp, 0o755)
    pgdir = os.path.join(tmp, "pg")
    url = subprocess.check_output([os.path.join(ROOT, "tools", "pg-local"), "start", pgdir, "--fast"],
                                  env={**os.environ, "PGLOCAL_DB": "postgres"}, text=True).strip()
    yield int(url.rsplit(":", 1)[1].split("/")[0])
    subprocess.call([os.path.join(ROOT, "tools", "pg-local"), "destroy", pgdir])
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def root():
    path = tempfile.mkdtemp(prefix="pgcourier-quickstart-root-")
    yield path
    pid_file = os.path.join(path, "pgcourierd.pid")
    if os.path.exists(pid_file):
        try:
            os.kill(int(open(pid_file).read()), signal.SIGTERM)
            time.sleep(1)
        except ProcessLookupError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def test_the_readme_quickstart_works_as_written(cluster, root):
    block = quickstart_block()
    metrics_port = free_port()
    assert "/etc/pgcourier" in block and "127.0.0.1:9464" in block
    script = block.replace("/etc/pgcourier", f"{root}/etc/pgcourier").replace("127.0.0.1:9464",
                                                                              f"127.0.0.1:{metrics_port}")
    # Nothing else of this machine may be written: no other absolute path outside the root (comments aside).
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#")).replace(root, "<root>")
    stray = re.findall(r"(?<![\w<>.-])/(?:etc|usr|var|lib|opt|root|home|srv|run)\b[^\s'\"]*", code)
    assert stray == [], f"the quickstart names paths the test cannot redirect: {stray}"

    prelude = f"""set -euo pipefail
sudo() {{ if [ "$1" = "-u" ]; then local user=$2; shift 2; PGHOST=127.0.0.1 PGUSER="$user" "$@"; else "$@"; fi; }}
systemctl() {{ /usr/bin/python3 {STUB} "$@"; }}
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PGHOST", "PGUSER", "PGDATABASE", "PGPASSFILE", "PGPASSWORD",
                        "PGCOURIER_POLICIES_FILE", "PGCOURIER_MASTER_KEY_FILE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update({"DESTDIR": root, "BUILD_DIR": os.path.abspath(BUILD_DIR), "PGPORT": str(cluster),
                "PATH": f"{root}/usr/local/bin:{env['PATH']}",
                "PGCOURIER_CONFIG": f"{root}/etc/pgcourier/pgcourierd.yaml",
                "QS_ROOT": root, "QS_PGPORT": str(cluster)})
    result = subprocess.run(["bash", "-c", prelude + script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"the quickstart failed ({result.returncode}):\n{out[-6000:]}"

    # What each step said.
    for said in ("applied 001_baseline", "wrote a new master key to", "configuration OK: 2 policies from",
                 "created subscription sub_", "signing secret (shown once, store it with the receiver): whsec_",
                 "\nruns:\n"):
        assert said in out, f"{said!r} not in the output:\n{out[-4000:]}"

    # The files it leaves, with their modes.
    etc = os.path.join(root, "etc", "pgcourier")
    modes = {name: stat.S_IMODE(os.stat(os.path.join(etc, name)).st_mode) for name in os.listdir(etc)}
    assert modes == {"pgcourierd.yaml": 0o644, "policies.yaml": 0o644, "pgpass": 0o600, "master.key": 0o600}, modes
    assert stat.S_IMODE(os.stat(etc).st_mode) == 0o755
    assert os.path.getsize(os.path.join(etc, "master.key")) == 45  # 44 characters of base64 and a newline
    assert re.fullmatch(r"localhost:\*:pgcourier:pgcourier:[0-9a-f]{32}\n", open(os.path.join(etc, "pgpass")).read())
    for binary in ("pgcourierd", "pgcourierctl"):
        assert os.access(os.path.join(root, "usr", "local", "bin", binary), os.X_OK)

    # The service runs as the unit says, against the database of the settings file.
    pid = int(open(os.path.join(root, "pgcourierd.pid")).read())
    assert os.path.exists(f"/proc/{pid}"), open(os.path.join(root, "pgcourierd.log")).read()
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert b"DATABASE_URL" not in environ and environ[b"PGPASSFILE"].endswith(b"/pgpass"), environ
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    assert "pgcourier_build_info" in metrics

    db = psycopg2.connect(host="127.0.0.1", port=cluster, user="postgres", dbname="pgcourier")
    try:
        cur = db.cursor()
        cur.execute("SELECT tenant_id, url, event_types FROM courier.subscriptions")
        assert cur.fetchall() == [("acme", "https://hooks.example.com/in", ["order.*"])]
        cur.execute("SELECT count(*) FROM courier.subscription_secrets")
        assert cur.fetchone() == (1,)
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'courier_%' ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["courier_daemon", "courier_gateway", "courier_operator",
                                                  "courier_producer"]
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgcourier' AND datname = 'pgcourier'")
        assert cur.fetchone()[0] >= 1  # the daemon's connections
    finally:
        db.close()
