"""Issue 13, client side: the HTTP API over TLS with an operator-supplied certificate
(`[api.tls] cert/key`) and `/metrics` behind `[api] metrics_token`, against the real
`switchyard up`, through the official `openai` and `ollama` clients verifying the
certificate. `/health` stays open; plain HTTP on the TLS port gets no answer; the metrics
token never reaches the log."""

from __future__ import annotations

import http.client
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from conftest import TEST_TOKEN, start_binary

METRICS_TOKEN = "scrape-4f1c9a0e7b"


def _certificate(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "api.pem", tmp / "api.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _get(port: int, ctx: ssl.SSLContext, path: str, token: str = "") -> tuple[int, str]:
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read().decode(errors="replace")


@pytest.fixture(scope="module")
def tls_system(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = _certificate(tmp)
    s = start_binary(
        tmp,
        f'metrics_token = "{METRICS_TOKEN}"\n[api.tls]\ncert = "{cert}"\nkey = "{key}"\n',
    )
    port = int(s.http_url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 120
    while True:
        try:
            if _get(port, ctx, "/ready")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or s.proc.poll() is not None:
            s.proc.kill()
            raise RuntimeError("HTTPS /ready never answered 200:\n" + s.stderr_tail())
        time.sleep(0.2)
    yield s, port, cert, ctx
    s.proc.terminate()
    try:
        s.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        s.proc.kill()


def test_openai_and_ollama_clients_work_over_https_verifying_the_certificate(tls_system, embed_model):
    s, port, cert, _ = tls_system
    client = openai.OpenAI(
        base_url=f"https://localhost:{port}/v1",
        api_key=TEST_TOKEN,
        http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=60),
    )
    r = client.embeddings.create(model=embed_model, input="The cat sat on the mat.")
    assert len(r.data[0].embedding) == 384
    o = ollama.Client(
        host=f"https://localhost:{port}",
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
        verify=ssl.create_default_context(cafile=str(cert)),
        timeout=60,
    )
    e = o.embed(model=embed_model, input="The cat sat on the mat.")
    assert len(e["embeddings"][0]) == 384
    # A client that does not trust the certificate is refused at the handshake.
    untrusting = openai.OpenAI(base_url=f"https://localhost:{port}/v1", api_key=TEST_TOKEN, max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        untrusting.embeddings.create(model=embed_model, input="x")


def test_plain_http_on_the_tls_port_gets_no_answer_and_the_server_keeps_serving(tls_system):
    _, port, _, ctx = tls_system
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/health")
        conn.getresponse()
    assert _get(port, ctx, "/health")[0] == 200


def test_metrics_needs_its_token_and_health_stays_open(tls_system):
    s, port, _, ctx = tls_system
    assert _get(port, ctx, "/health") == (200, '{"status":"ok"}')
    status, body = _get(port, ctx, "/metrics")
    assert status == 401 and "metrics_token" in body
    assert _get(port, ctx, "/metrics", token=TEST_TOKEN)[0] == 401  # an API token is not it
    status, body = _get(port, ctx, "/metrics", token=METRICS_TOKEN)
    assert status == 200 and "switchyard_build_info" in body
    assert METRICS_TOKEN not in s.stderr_tail(200_000)


def test_a_real_prometheus_scrapes_over_https_with_the_token_and_is_refused_without(tls_system, tmp_path):
    from test_metrics import free_port, need, wait_for

    _, port, cert, _ = tls_system
    config = tmp_path / "prometheus.yml"
    job = (
        "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n"
        "{auth}    static_configs:\n      - targets: ['localhost:{port}']\n"
    )
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n"
        + job.format(name="with_token", ca=cert, port=port,
                     auth=f"    authorization:\n      credentials: {METRICS_TOKEN}\n")
        + job.format(name="without_token", ca=cert, port=port, auth="")
    )
    web = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [need("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{web}"
        assert wait_for(base, 'up{job="with_token"} == 1', timeout=60), (tmp_path / "prometheus.log").read_text()[-3000:]
        assert wait_for(base, 'switchyard_build_info{job="with_token"} == 1')
        assert wait_for(base, 'up{job="without_token"} == 0', timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
