"""The Debian package of `make deb`, checked without installing it on this machine (tests/deb/run): what it
declares, which files it holds and with which modes, that its binaries run from a `dpkg-deb -x` root with the
packaged settings and unit, that its maintainer scripts parse, and what lintian says."""
import os
import re
import shutil
import subprocess
import tempfile

import psycopg2
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEB = os.environ["PGCOURIER_DEB"]
VERSION = re.search(r"project\(pgcourier VERSION ([0-9.]+)", open(os.path.join(ROOT, "CMakeLists.txt")).read())[1]


def run(*args, **kwargs):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def extracted():
    root = tempfile.mkdtemp(prefix="pgcourier-deb-")
    assert run("dpkg-deb", "-x", DEB, root).returncode == 0
    control = os.path.join(root, "DEBIAN")
    assert run("dpkg-deb", "-e", DEB, control).returncode == 0
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    tmp = tempfile.mkdtemp(prefix="pgcourier-deb-pg-")
    os.chmod(tmp, 0o755)
    pgdir = os.path.join(tmp, "pg")
    url = subprocess.check_output([os.path.join(ROOT, "tools", "pg-local"), "start", pgdir, "--fast"],
                                  env={**os.environ, "PGLOCAL_DB": "postgres"}, text=True).strip()
    yield url
    subprocess.call([os.path.join(ROOT, "tools", "pg-local"), "destroy", pgdir])
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_package_is_named_by_version_and_architecture_and_declares_its_dependencies():
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert os.path.basename(DEB) == f"pgcourier_{VERSION}_{arch}.deb"
    fields = {name: run("dpkg-deb", "-f", DEB, name).stdout.strip() for name in
              ("Package", "Version", "Architecture", "Depends", "Section", "Maintainer", "Description")}
    assert (fields["Package"], fields["Version"], fields["Architecture"]) == ("pgcourier", VERSION, arch), fields
    for dependency in ("adduser", "libpqxx-6.4", "libcurl4", "libidn2-0", "libssl3", "libsystemd0", "libc6"):
        assert re.search(rf"(^|, ){re.escape(dependency)}\b", fields["Depends"]), (dependency, fields["Depends"])
    assert fields["Maintainer"] and fields["Description"].startswith("durable webhook")


def test_the_file_list_holds_the_binaries_unit_sql_policies_settings_docs_and_manual_pages():
    listing = run("dpkg-deb", "-c", DEB).stdout.splitlines()
    entries = {}
    for line in listing:
        parts = line.split()
        entries[parts[5].lstrip(".")] = (parts[0], parts[1])
    files = {path for path, (mode, _) in entries.items() if not mode.startswith("d")}
    expected = {"/usr/bin/pgcourierd", "/usr/bin/pgcourierctl", "/lib/systemd/system/pgcourierd.service",
                "/usr/bin/pgcourier-gateway", "/lib/systemd/system/pgcourier-gateway.service",
                "/usr/share/man/man8/pgcourier-gateway.8.gz",
                "/etc/pgcourier/pgcourierd.yaml", "/etc/pgcourier/policies.yaml",
                "/usr/share/pgcourier/policies/default.yaml", "/usr/share/pgcourier/policies/local.yaml",
                "/usr/share/pgcourier/examples/pgcourierd.yaml", "/usr/share/pgcourier/sql/schema.snapshot.sql",
                "/usr/share/doc/pgcourier/README.md", "/usr/share/doc/pgcourier/copyright",
                "/usr/share/doc/pgcourier/changelog.gz", "/usr/share/doc/pgcourier/prometheus-alerts.yaml",
                "/usr/share/doc/pgcourier/grafana-dashboard.json", "/usr/share/man/man1/pgcourierctl.1.gz",
                "/usr/share/man/man8/pgcourierd.8.gz"}
    expected |= {f"/usr/share/pgcourier/sql/schema/{n}" for n in os.listdir(os.path.join(ROOT, "sql", "schema"))}
    expected |= {f"/usr/share/pgcourier/sql/migrations/{n}"
                 for n in os.listdir(os.path.join(ROOT, "sql", "migrations")) if n.endswith(".up.sql")}
    assert expected - files == set(), f"missing: {sorted(expected - files)}"
    assert files - expected == set(), f"not expected: {sorted(files - expected)}"
    # No secret in the package: the key and the password file are made per machine by postinst.
    assert "/etc/pgcourier/master.key" not in files and "/etc/pgcourier/pgpass" not in files
    for path, (mode, owner) in entries.items():
        assert owner == "root/root", (path, owner)
        want = "drwxr-xr-x" if mode.startswith("d") else ("-rwxr-xr-x" if path.startswith("/usr/bin/") else "-rw-r--r--")
        assert mode == want, (path, mode)


def test_the_settings_are_conffiles_and_the_maintainer_scripts_parse(extracted):
    control = os.path.join(extracted, "DEBIAN")
    assert open(os.path.join(control, "conffiles")).read().split() == ["/etc/pgcourier/pgcourierd.yaml",
                                                                      "/etc/pgcourier/policies.yaml"]
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(control, script)
        assert os.access(path, os.X_OK), script
        assert run("sh", "-n", path).returncode == 0, script
    postinst = open(os.path.join(control, "postinst")).read()
    assert "adduser --quiet --system --group" in postinst and "keygen --out /etc/pgcourier/master.key" in postinst


def test_the_binaries_run_from_the_extracted_root(extracted):
    ctl = os.path.join(extracted, "usr", "bin", "pgcourierctl")
    daemon = os.path.join(extracted, "usr", "bin", "pgcourierd")
    assert run(ctl, "--version").stdout == f"pgcourierctl {VERSION}\n"
    assert run(daemon, "--version").stdout == f"pgcourierd {VERSION}\n"
    assert run(ctl, "--help").stdout.startswith("usage: pgcourierctl ")
    assert run(ctl, "subscription", "create", "--help").stdout.startswith("usage: pgcourierctl subscription create")
    assert run(daemon, "--help").stdout.startswith("usage: pgcourierd ")
    assert "not stripped" not in run("file", daemon).stdout
    gateway = os.path.join(extracted, "usr", "bin", "pgcourier-gateway")
    assert run(gateway, "--version").stdout == f"pgcourier-gateway {VERSION}\n"
    assert run(gateway, "--help").stdout.startswith("usage: pgcourier-gateway ")
    assert "not stripped" not in run("file", gateway).stdout


def test_the_packaged_settings_and_unit_work_together(extracted):
    etc = os.path.join(extracted, "etc", "pgcourier")
    daemon = os.path.join(extracted, "usr", "bin", "pgcourierd")
    check = run(daemon, "--check-config", "--config", os.path.join(etc, "pgcourierd.yaml"),
                "--policies", os.path.join(etc, "policies.yaml"), env={**os.environ, "DATABASE_URL": ""})
    assert check.returncode == 0 and "configuration OK" in check.stdout, check
    unit = open(os.path.join(extracted, "lib", "systemd", "system", "pgcourierd.service")).read()
    assert "ExecStart=/usr/bin/pgcourierd --config /etc/pgcourier/pgcourierd.yaml" in unit
    assert "LoadCredential=master-key:/etc/pgcourier/master.key" in unit
    assert "LoadCredential=pgpass:/etc/pgcourier/pgpass" in unit
    assert "User=pgcourier" in unit and "DynamicUser=yes" in unit
    assert "Documentation=file:///usr/share/doc/pgcourier/README.md" in unit
    gateway_unit = open(os.path.join(extracted, "lib", "systemd", "system", "pgcourier-gateway.service")).read()
    assert ("ExecStart=/usr/bin/pgcourier-gateway --listen 127.0.0.1:8080 --config /etc/pgcourier/pgcourierd.yaml"
            in gateway_unit)
    assert "LoadCredential=master-key:/etc/pgcourier/master.key" in gateway_unit and "DynamicUser=yes" in gateway_unit
    settings = open(os.path.join(etc, "pgcourierd.yaml")).read()
    assert "policies_file: /etc/pgcourier/policies.yaml" in settings
    assert open(os.path.join(etc, "policies.yaml")).read() == open(os.path.join(ROOT, "policies", "default.yaml")).read()


def test_the_packaged_pgcourierctl_migrates_a_database(extracted, cluster):
    admin = psycopg2.connect(cluster)
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE deb_migrate")
    admin.close()
    url = cluster.rsplit("/", 1)[0] + "/deb_migrate"
    ctl = os.path.join(extracted, "usr", "bin", "pgcourierctl")
    first = run(ctl, "--database-url", url, "migrate")
    migrations = sorted(n[: -len(".up.sql")] for n in os.listdir(os.path.join(ROOT, "sql", "migrations"))
                        if n.endswith(".up.sql"))
    want = "".join(f"applied {m}\n" for m in ["001_baseline", *migrations])
    assert (first.returncode, first.stdout) == (0, want), first
    schema = run(ctl, "--database-url", url, "schema", "--json")
    assert schema.returncode == 0 and '"up_to_date": true' in schema.stdout, schema


def test_lintian_finds_no_error_or_warning():
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (make deb installs it)")
    result = run("lintian", "--pedantic", "--info", DEB)
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert [t for t in tags if t.startswith(("E:", "W:"))] == [], "\n".join(tags)
    print("\n".join(tags) or "lintian: no tags")
