"""Fixtures for the Python API tests: a running Switchyard, OpenAI and gRPC clients.

When SWITCHYARD_HTTP_URL and SWITCHYARD_GRPC_ADDR are set (the e2e harness started
`switchyard up`), the tests use that system and SWITCHYARD_API_TOKEN (empty = no auth).
Otherwise this file starts the real binary itself (SWITCHYARD_BIN, else
$CARGO_TARGET_DIR or target/{debug,release}/switchyard) with a temporary config that sets
`[api] tokens = ["test-token"]`, reads the addresses from its first stdout line
(`switchyard up: controller grpc=ADDR http=ADDR agent NAME data=ADDR`), waits for
`/ready`, and kills it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_TOKEN = "test-token"
START_TIMEOUT_S = 120.0


@dataclass
class System:
    """Where the system under test listens."""

    http_url: str
    grpc_addr: str
    token: str
    proc: subprocess.Popen | None = None
    stderr_path: Path | None = None

    def stderr_tail(self, n: int = 4000) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-n:]


def http_json(url: str, *, token: str = "", body: object = None, timeout: float = 60.0):
    """(status, parsed JSON body, headers (case-insensitive)) of one HTTP request; never raises
    on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null"), resp.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, parsed, e.headers


def binary_path() -> Path:
    if os.environ.get("SWITCHYARD_BIN"):
        return Path(os.environ["SWITCHYARD_BIN"])
    roots = []
    if os.environ.get("CARGO_TARGET_DIR"):
        roots.append(Path(os.environ["CARGO_TARGET_DIR"]))
    roots.append(REPO / "target")
    for root in roots:
        for profile in ("debug", "release"):
            p = root / profile / "switchyard"
            if p.is_file():
                return p
    pytest.exit(
        "switchyard binary not found: build it (cargo build -p switchyard) or set SWITCHYARD_BIN",
        returncode=2,
    )


def setup_env() -> dict[str, str]:
    """The environment for the binary: ours plus <cache>/env.sh (library and model paths)."""
    env = dict(os.environ)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "switchyard"
    env_sh = cache / "env.sh"
    if env_sh.is_file():
        for line in env_sh.read_text().splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].partition("=")
                parts = shlex.split(value)
                env.setdefault(key, parts[0] if parts else "")
    env.setdefault("SWITCHYARD_LOG", "info")
    return env


def wait_ready(system: System, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if system.proc is not None and system.proc.poll() is not None:
            raise RuntimeError(
                f"switchyard exited with {system.proc.returncode}; stderr:\n{system.stderr_tail()}"
            )
        try:
            last = http_json(f"{system.http_url}/ready", timeout=5)
            if last[0] == 200:
                return
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"/ready not 200 after {timeout}s (last: {last}); stderr:\n{system.stderr_tail()}")


def start_binary(tmp: Path, extra_config: str = "") -> System:
    """Starts `switchyard up` with the test token and `extra_config` (TOML) in its config."""
    config = tmp / "switchyard.toml"
    config.write_text(f'[api]\ntokens = ["{TEST_TOKEN}"]\n' + extra_config)
    stderr_path = tmp / "stderr.log"
    cmd = [
        str(binary_path()),
        "--config",
        str(config),
        "up",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        # A fresh document store: the tests never share (or touch) the user's.
        "--data-dir",
        str(tmp / "data"),
    ]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=setup_env()
        )
    first: list[str] = []

    def read_first_line() -> None:
        assert proc.stdout is not None
        first.append(proc.stdout.readline().decode(errors="replace"))
        for _ in proc.stdout:  # keep draining so the child never blocks on a full pipe
            pass

    threading.Thread(target=read_first_line, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not first and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    line = first[0].strip() if first else ""
    fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
    if "grpc" not in fields or "http" not in fields:
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"unexpected first line {line!r} from {' '.join(cmd)}; stderr:\n"
            + stderr_path.read_text(errors="replace")[-4000:]
        )
    return System(
        http_url=f"http://{fields['http']}",
        grpc_addr=fields["grpc"],
        token=TEST_TOKEN,
        proc=proc,
        stderr_path=stderr_path,
    )


@contextlib.contextmanager
def own_system(tmp: Path, extra_config: str = ""):
    """A `switchyard up` of a test module's own: started with `extra_config`, ready, killed
    at the end."""
    system = start_binary(tmp, extra_config)
    try:
        wait_ready(system)
        yield system
    finally:
        system.proc.kill()
        system.proc.wait()


@pytest.fixture(scope="session")
def system():
    """The running Switchyard (from the environment, or started here)."""
    if os.environ.get("SWITCHYARD_HTTP_URL") and os.environ.get("SWITCHYARD_GRPC_ADDR"):
        s = System(
            http_url=os.environ["SWITCHYARD_HTTP_URL"].rstrip("/"),
            grpc_addr=os.environ["SWITCHYARD_GRPC_ADDR"],
            token=os.environ.get("SWITCHYARD_API_TOKEN", ""),
        )
        wait_ready(s)
        yield s
        return
    with tempfile.TemporaryDirectory(prefix="switchyard-pytest-") as tmp:
        s = start_binary(Path(tmp))
        try:
            wait_ready(s)
            yield s
        finally:
            if s.proc is not None:
                s.proc.terminate()
                try:
                    s.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()


@pytest.fixture(scope="session")
def models(system):
    """`/v1/models` entries by id."""
    status, body, _ = http_json(f"{system.http_url}/v1/models", token=system.token)
    assert status == 200, body
    return {m["id"]: m for m in body["data"]}


def _pick(models: dict, stage: str, tier: str | None = None) -> str:
    for name, m in models.items():
        sy = m["switchyard"]
        if sy["stage"] == stage and name != "auto" and (tier is None or sy["tier"] == tier):
            return name
    pytest.fail(f"no registered {stage} model (tier {tier}) in /v1/models: {sorted(models)}")


@pytest.fixture(scope="session")
def embed_model(models) -> str:
    return os.environ.get("SWITCHYARD_EMBED_MODEL") or _pick(models, "embed")


@pytest.fixture(scope="session")
def chat_model(models) -> str:
    return os.environ.get("SWITCHYARD_CHAT_MODEL") or _pick(models, "generate", "fast")


@pytest.fixture(scope="session")
def client(system):
    """The official OpenAI client pointed at Switchyard."""
    import openai

    return openai.OpenAI(
        base_url=f"{system.http_url}/v1",
        api_key=system.token or "unused",
        timeout=120.0,
        max_retries=0,
    )


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """Python gRPC modules generated from proto/ with grpc_tools.protoc into a temp dir."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("switchyard_pb")
    proto_root = REPO / "proto"
    files = sorted(str(p.relative_to(proto_root)) for p in (proto_root / "switchyard" / "v1").glob("*.proto"))
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *files,
        ]
    )
    assert rc == 0, f"protoc failed for {files}"
    sys.path.insert(0, str(out))
    import importlib

    class Modules:
        inference_pb2 = importlib.import_module("switchyard.v1.inference_pb2")
        inference_pb2_grpc = importlib.import_module("switchyard.v1.inference_pb2_grpc")
        agent_pb2 = importlib.import_module("switchyard.v1.agent_pb2")

    return Modules


@pytest.fixture(scope="session")
def grpc_channel(system):
    import grpc

    channel = grpc.insecure_channel(system.grpc_addr)
    grpc.channel_ready_future(channel).result(timeout=30)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def grpc_auth(system):
    """Call metadata carrying the bearer token (empty when auth is off)."""
    return [("authorization", f"Bearer {system.token}")] if system.token else []
