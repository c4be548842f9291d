"""The Kubernetes manifests (deploy/kubernetes/): parsed with PyYAML and checked for the fields
that make them work — agents scheduled by the NFD/GFD labels and asking the device plugins for
their accelerator, the controller Deployment behind a Service that the agents point at, and
the ConfigMap's configuration accepted by the real binary."""

from __future__ import annotations

import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO, binary_path

K8S = REPO / "deploy" / "kubernetes"

# DaemonSet suffix -> (a node label its affinity requires, the device-plugin resource it asks for)
AGENTS = {
    "nvidia": ("nvidia.com/gpu.product", "nvidia.com/gpu"),
    "intel-i915": ("intel.feature.node.kubernetes.io/gpu", "gpu.intel.com/i915"),
    "intel-xe": ("intel.feature.node.kubernetes.io/gpu", "gpu.intel.com/xe"),
    "npu": ("intel.feature.node.kubernetes.io/npu", "npu.intel.com/accel"),
}


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    docs = []
    for f in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def one(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"exactly one {kind} {name}: {[o['metadata']['name'] for o in objects]}"
    return found[0]


def test_every_object_is_namespaced_in_switchyard(objects):
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "DaemonSet"} <= kinds
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "switchyard", o["metadata"]


@pytest.mark.parametrize("suffix", sorted(AGENTS))
def test_agent_daemonsets_are_scheduled_by_labels_and_ask_for_their_device(objects, suffix):
    label, resource = AGENTS[suffix]
    ds = one(objects, "DaemonSet", f"switchyard-agent-{suffix}")
    spec = ds["spec"]["template"]["spec"]
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    keys = {e["key"] for t in terms for e in t["matchExpressions"]}
    assert label in keys, keys
    (container,) = spec["containers"]
    assert container["resources"]["limits"] == {resource: 1}
    args = container["args"]
    assert args[0] == "agent"
    controller = args[args.index("--controller") + 1]
    # mTLS to the controller, joined with the token from the switchyard-join Secret.
    assert controller == "https://switchyard-controller.switchyard.svc:50051"
    assert args[args.index("--agent-listen") + 1] == "0.0.0.0:50061"
    assert args[args.index("--advertise") + 1] == "http://$(POD_IP):50061"
    assert args[args.index("--node-name") + 1] == f"$(NODE_NAME)-{suffix}"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["XDG_CACHE_HOME"]["value"] == "/var/cache"
    token = env["SWITCHYARD_JOIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "switchyard-join", "key": "token"}
    assert {p["containerPort"] for p in container["ports"]} == {50061}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["cache"] == "/var/cache/switchyard"
    assert volumes["cache"]["hostPath"]["path"] == "/var/cache/switchyard"
    assert container["securityContext"].get("privileged") is not True, "devices come from the plugin"


def test_xe_and_i915_agents_never_share_a_node(objects):
    def exprs(name):
        ds = one(objects, "DaemonSet", name)
        (term,) = ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        return {e["key"]: (e["operator"], e.get("values")) for e in term["matchExpressions"]}

    i915, xe = exprs("switchyard-agent-intel-i915"), exprs("switchyard-agent-intel-xe")
    key = "switchyard.io/intel-gpu-driver"
    assert i915[key] == ("NotIn", ["xe"]) and xe[key] == ("In", ["xe"])


def test_the_controller_service_selects_its_pods_on_named_ports(objects):
    dep = one(objects, "Deployment", "switchyard-controller")
    svc = one(objects, "Service", "switchyard-controller")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["controller", "--config", "/etc/switchyard/switchyard.toml"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == {"grpc": 50051, "http": 8080}
    for port in svc["spec"]["ports"]:
        assert port["targetPort"] in named, port
        assert port["port"] == named[port["targetPort"]]
    # The readiness probe must not wait for agents (they reach the controller through the
    # Service, which only routes to ready pods).
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["config"]
    assert mount == "/etc/switchyard"
    (vol,) = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    assert one(objects, "ConfigMap", vol["configMap"]["name"])
    # The CA, certificates and tokens live on a claim: a restarted pod keeps the cluster's
    # identity, which joined agents pin.
    env = {e["name"]: e["value"] for e in container["env"]}
    data = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["data"]
    assert env["SWITCHYARD_DATA_DIR"] == data
    (vol,) = [v for v in pod["spec"]["volumes"] if v["name"] == "data"]
    assert one(objects, "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"])


def test_the_configmap_is_a_valid_cluster_controller_configuration(objects):
    cm = one(objects, "ConfigMap", "switchyard-config")
    text = cm["data"]["switchyard.toml"]
    config = tomllib.loads(text)
    assert config["controller"]["cluster"] is True
    assert config["controller"]["listen"] == "0.0.0.0:50051"
    # The client API needs a token, from the Secret mounted at api.tokens_file.
    secret_path = config["api"]["tokens_file"]
    assert secret_path.startswith("/run/secrets/"), secret_path
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "switchyard.toml"
        path.write_text(text)
        # Without the Secret the controller refuses to start, saying which file is missing.
        missing = subprocess.run(
            [str(binary_path()), "controller", "--config", str(path), "--listen", "0.0.0.0:0",
             "--http-listen", "127.0.0.1:0", "--data-dir", str(Path(d) / "data0")],
            capture_output=True, text=True, timeout=60,
        )
        assert missing.returncode != 0 and secret_path in missing.stderr, missing.stderr
        # With it (here a file standing in for the mounted Secret) it starts.
        secret = Path(d) / "tokens"
        secret.write_text("k8s-secret-token\n")
        path.write_text(text.replace(secret_path, str(secret)))
        # The real binary accepts the file (unknown keys would be refused) and starts with it.
        proc = subprocess.Popen(
            [str(binary_path()), "controller", "--config", str(path), "--listen", "0.0.0.0:0",
             "--http-listen", "127.0.0.1:0", "--data-dir", str(Path(d) / "data")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = proc.stdout.readline()
            assert "grpc=" in line, proc.stderr.read() if proc.poll() is not None else line
        finally:
            proc.kill()
            proc.wait()
        # Its `cluster = true` is in force: a loopback listen address is refused.
        refused = subprocess.run(
            [str(binary_path()), "controller", "--config", str(path), "--listen", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode != 0
        assert "--listen 0.0.0.0:0" in refused.stderr, refused.stderr
