"""End to end: pgcourierctl api-token and ingress-source: help from the tables, exit codes, JSON shapes,
and what is printed once."""
import json
import subprocess

from conftest import PGCOURIERCTL


def test_api_token_help_and_usage_errors(ctl):
    out = subprocess.run([PGCOURIERCTL, "api-token", "create", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--operator" in out.stdout and "--tenant TENANT" in out.stdout
    both = ctl("api-token", "create", "--tenant", "acme", "--operator", check=False)
    assert both.returncode == 2 and "--tenant TENANT" in both.stderr
    neither = ctl("api-token", "create", check=False)
    assert neither.returncode == 2
    bad_tenant = ctl("api-token", "create", "--tenant", "ac me", check=False)
    assert bad_tenant.returncode == 2
    assert ctl("api-token", "revoke", "tok_nothing", check=False).returncode == 1
    assert "api-token" in subprocess.run([PGCOURIERCTL, "--help"], capture_output=True, text=True).stdout


def test_api_token_create_prints_it_once_and_list_and_revoke_say_what_happened(ctl):
    created = ctl("api-token", "create", "--tenant", "acme", "--name", "ci")
    token_id, token = created.stdout.split()
    assert token.startswith("pgc_") and "shown only now" in created.stderr
    op = json.loads(ctl("api-token", "create", "--operator", "--json").stdout)
    assert set(op) == {"id", "token"}
    listed = json.loads(ctl("api-token", "list", "--json").stdout)["tokens"]
    assert [(t["id"], t["tenant_id"], t["name"], t["revoked_at"]) for t in listed] == \
        [(token_id, "acme", "ci", None), (op["id"], None, "", None)]
    assert all(set(t) == {"id", "tenant_id", "name", "created_at", "revoked_at", "last_used_at"} for t in listed)
    text = ctl("api-token", "list").stdout
    assert "(operator)" in text and token not in text and op["token"] not in text
    assert ctl("api-token", "revoke", token_id).stdout == f"revoked {token_id}\n"
    assert ctl("api-token", "revoke", token_id).stdout == f"already revoked: {token_id}\n"
    assert json.loads(ctl("api-token", "list", "--json").stdout)["tokens"][0]["revoked_at"] is not None


def test_ingress_source_create_refuses_what_it_cannot_use(ctl, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    assert ctl("ingress-source", "create", "--tenant", "acme", "--scheme", "github", "--secret-file", str(empty),
               check=False).returncode == 1
    secret = tmp_path / "s"
    secret.write_text("abc\n")
    assert ctl("ingress-source", "create", "--tenant", "acme", "--scheme", "gitlab", "--secret-file", str(secret),
               check=False).returncode == 2
    source = ctl("ingress-source", "create", "--tenant", "acme", "--scheme", "github", "--secret-file",
                 str(secret)).stdout.strip()
    assert source.startswith("src_")
    listed = json.loads(ctl("ingress-source", "list", "--json").stdout)["sources"]
    assert [(s["id"], s["tenant_id"], s["event_type"], s["tolerance_seconds"]) for s in listed] == \
        [(source, "acme", None, 300)]
