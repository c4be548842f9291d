"""Prometheus metrics of a real Switchyard, scraped by a real Prometheus server.

`promtool check metrics` lints the exposition (names, units, `_total` counters, HELP/TYPE),
then a throw-away Prometheus instance (Debian's `prometheus`, installed by scripts/setup.sh)
scrapes the controller every second and the test asks Prometheus' HTTP API for what
operators would graph in Grafana: ready nodes, device memory, stage latency histograms,
generated tokens and HTTP requests.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import http_json


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed: the metrics tests use a real Prometheus "
            "(as root: apt-get install --no-install-recommends prometheus; scripts/setup.sh does it)"
        )
    return path


def scrape(system) -> str:
    with urllib.request.urlopen(f"{system.http_url}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def one_chat(system, chat_model: str) -> None:
    status, body, _ = http_json(
        f"{system.http_url}/v1/chat/completions",
        token=system.token,
        body={
            "model": chat_model,
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 3,
        },
    )
    assert status == 200, body


def embed_batch_buckets(text: str) -> dict[str, float]:
    """The embed stage's batch-size histogram buckets (le → count), summed over devices."""
    out: dict[str, float] = {}
    for le, n in re.findall(
        r'switchyard_stage_batch_size_bucket\{[^}]*stage="embed"[^}]*le="([^"]+)"\} (\S+)', text
    ):
        out[le] = out.get(le, 0.0) + float(n)
    return out


def test_exposition_passes_promtool_lint(system, chat_model, embed_model):
    one_chat(system, chat_model)
    before = embed_batch_buckets(scrape(system))
    status, body, _ = http_json(
        f"{system.http_url}/v1/embeddings",
        token=system.token,
        body={"model": embed_model, "input": ["one", "two", "three"]},
    )
    assert status == 200, body
    text = scrape(system)
    promtool = need("promtool")
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, f"promtool:\n{lint.stdout}{lint.stderr}"
    for family in (
        "switchyard_build_info",
        "switchyard_nodes",
        "switchyard_device_memory_total_bytes",
        "switchyard_stage_duration_seconds",
        "switchyard_stage_batch_size",
        "switchyard_generated_tokens_total",
        "switchyard_http_requests_total",
    ):
        assert f"# TYPE {family} " in text, family
    # Which precision ran is part of the stage series.
    assert re.search(r'switchyard_stage_duration_seconds_count\{[^}]*precision="f32"', text), text
    # The request's three inputs went as one runtime call of three: one new sample in the
    # le="4" bucket, none at or below le="2".
    after = embed_batch_buckets(text)
    grew = {le: after[le] - before.get(le, 0.0) for le in after}
    assert grew.get("2") == 0 and grew.get("4") == 1, grew


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(base: str, promql: str, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(base, promql)
        except OSError:
            result = []
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture
def prometheus(system, tmp_path: Path):
    binary = need("prometheus")
    target = system.http_url.removeprefix("http://").rstrip("/")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: switchyard\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        up = wait_for(base, 'up{job="switchyard"} == 1', timeout=60)
        assert up, "Prometheus never scraped Switchyard:\n" + (tmp_path / "prometheus.log").read_text()[-3000:]
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_real_prometheus_scrapes_cluster_state_and_request_metrics(system, chat_model, prometheus):
    one_chat(system, chat_model)
    ready = wait_for(prometheus, 'switchyard_nodes{state="ready"} >= 1')
    assert ready, "no ready node in Prometheus"

    memory = wait_for(prometheus, 'switchyard_device_memory_total_bytes{kind="cpu"} > 0')
    assert memory and memory[0]["metric"]["node"], memory

    generate = wait_for(
        prometheus, 'sum by (backend) (switchyard_stage_duration_seconds_count{stage="generate"}) > 0'
    )
    assert generate and generate[0]["metric"]["backend"] in {"ort-cpu", "openvino"}, generate

    tokens = wait_for(prometheus, f'switchyard_generated_tokens_total{{model="{chat_model}"}} >= 3')
    assert tokens, "generated tokens not counted"

    requests = wait_for(
        prometheus,
        'switchyard_http_requests_total{route="/v1/chat/completions",method="POST",status="200"} >= 1',
    )
    assert requests, "chat requests not counted"

    # A latency quantile computes from the histogram buckets (what a Grafana panel does).
    p95 = wait_for(
        prometheus,
        'histogram_quantile(0.95, sum by (le) (switchyard_stage_duration_seconds_bucket{stage="generate"}))',
    )
    assert p95 and float(p95[0]["value"][1]) > 0, p95


def test_grafana_dashboard_queries_run_and_name_real_metrics(system, chat_model, prometheus):
    """Every PromQL expression of deploy/grafana/switchyard-dashboard.json is valid for the
    real Prometheus, and every switchyard_* series it names is one the controller defines
    (controller/src/metrics.rs) and, unless it counts events that have not happened yet
    (failures), exports right now."""
    import re

    repo = Path(__file__).resolve().parents[2]
    dashboard = json.loads((repo / "deploy/grafana/switchyard-dashboard.json").read_text())
    source = (repo / "controller/src/metrics.rs").read_text()
    defined = set(re.findall(r'"(switchyard_[a-z0-9_]+)"', source))
    one_chat(system, chat_model)
    exported = scrape(system)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        for name in set(re.findall(r"\bswitchyard_[a-z0-9_]+", expr)):
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert family in defined, f"{name} (in {expr!r}) is not a Switchyard metric"
            if family not in {"switchyard_stage_failures_total", "switchyard_stage_retries_total"}:
                # Telemetry gauges a device does not report (a VM's CPU temperature) have a
                # family header and no samples.
                assert f"# TYPE {family} " in exported, f"{family} is not exported"
        query(prometheus, expr)  # asserts status == success: the expression parses and runs
