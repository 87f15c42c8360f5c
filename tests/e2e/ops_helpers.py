"""Helpers for the operations end-to-end tests (test_ops_*.py): a daemon serving /metrics on an
ephemeral port, scraping and parsing the Prometheus text format, publishing in one transaction."""
import re
import urllib.error
import urllib.request

from conftest import wait_for

METRICS_PORT_LINE = re.compile(r"serving /metrics on 127\.0\.0\.1:0 \(port (\d+)\)")
SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics_daemon(daemon_factory, name="d1", start=True, **settings):
    """A daemon from daemon_factory whose settings file serves /metrics on 127.0.0.1:0 (an ephemeral port).

    The conftest Daemon writes "metrics_address: ''" itself and the settings parser rejects duplicate
    keys, so that line is rewritten in the file before the daemon starts."""
    d = daemon_factory(name, start=False, **settings)
    with open(d.config_path) as f:
        text = f.read()
    assert "metrics_address: ''\n" in text, text
    with open(d.config_path, "w") as f:
        f.write(text.replace("metrics_address: ''\n", "metrics_address: '127.0.0.1:0'\n", 1))
    if start:
        d.start()
    return d


def metrics_port(d, timeout=5):
    """The port a daemon started by metrics_daemon logged for /metrics."""
    match = wait_for(lambda: METRICS_PORT_LINE.search(d.log()), timeout=timeout,
                     what=f"{d.name} to log its /metrics port")
    port = int(match.group(1))
    assert 0 < port < 65536, match.group(0)
    return port


def scrape(port, timeout=5):
    """GET /metrics; returns the body text (asserts 200 and the Prometheus text content type)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        assert response.status == 200
        assert response.headers.get("Content-Type", "").startswith("text/plain"), response.headers
        return response.read().decode()


def probe(port, path, timeout=5):
    """GET a probe (/healthz, /readyz) on the metrics address: (status, body text), 503 included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_samples(text):
    """[(name, {label: value}, float)] for every sample line of a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(LABEL_PAIR.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def family_types(text):
    """{family name: type} from the '# TYPE' lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            out[name] = kind.strip()
    return out


def sample_value(samples, name, **labels):
    """The value of the one sample named `name` whose labels include `labels`; None when absent.
    Fails when several samples match (the caller must be more specific)."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items())]
    assert len(found) <= 1, f"{len(found)} samples of {name} match {labels}"
    return found[0] if found else None


def exact_sample(samples, name, **labels):
    """The value of the sample named `name` whose labels are exactly `labels`; None when absent."""
    found = [v for n, l, v in samples if n == name and l == labels]
    return found[0] if found else None


def publish_together(db, events):
    """events: [(tenant, event_type, payload json text)] in one transaction (one NOTIFY); returns their ids."""
    db.conn.autocommit = False
    try:
        ids = []
        with db.conn.cursor() as cur:
            for tenant, event_type, payload in events:
                cur.execute("SELECT courier.publish(%s, %s, %s::jsonb)", (tenant, event_type, payload))
                ids.append(cur.fetchone()[0])
        db.conn.commit()
    finally:
        db.conn.autocommit = True
    return ids
