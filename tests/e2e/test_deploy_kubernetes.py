"""deploy/: the Kubernetes/OpenShift manifests validate against the Kubernetes JSON schemas
(kubernetes-validate from PyPI ships them: no network needed), agree with each other and with
the sidecar's settings; the container recipe names files that exist; the systemd unit passes
`systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import REPO, SidecarProcess
from vigie.cli.main import main
from vigie.settings import load_settings

K8S = REPO / "deploy" / "kubernetes"
# OpenShift 4.16 is Kubernetes 1.29; the newest the package knows is checked too
VERSIONS = ("1.29.0", "1.33.0")


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _docs() if d["kind"] == kind]


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    docs = _docs()
    assert {d["kind"] for _, d in docs} >= {
        "Deployment",
        "ConfigMap",
        "Secret",
        "Service",
        "NetworkPolicy",
    }
    for name, doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error
        assert doc["metadata"]["name"], name


def test_a_broken_manifest_is_caught() -> None:
    """The validator is not a rubber stamp: a misspelt field and a wrong type both fail."""
    dep = _kind("Deployment")[0]
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["template"]["spec"]["containers"][1]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(k["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def _sidecar_toml() -> str:
    cm = _kind("ConfigMap")[0]
    return str(cm["data"]["vigie.toml"])


def test_the_sidecar_settings_in_the_configmap_are_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "vigie.toml"
    cfg.write_text(_sidecar_toml())
    r = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert r.exit_code == 0, r.output
    # the one expected warning: the plaintext stream port listens for the kubelet's probes
    warnings = [ln for ln in r.output.splitlines() if "warning:" in ln]
    assert len(warnings) == 1 and "listen: 0.0.0.0:7355" in warnings[0]
    s = load_settings(cfg, env={})
    assert s.admin_auth == "both" and s.admin_tls_client_ca_file
    example = tmp_path / "example.toml"
    example.write_text((K8S / "vigie.toml.example").read_text())
    r = CliRunner().invoke(main, ["check-config", str(example)])
    assert r.exit_code == 0 and "warning:" not in r.output, r.output


def test_pod_wiring_agrees_with_the_settings() -> None:
    dep = _kind("Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    sidecar, gateway = containers["vigie"], containers["gateway"]
    s = tomllib.loads(_sidecar_toml())
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["gateway-stream"] == int(s["listen"].rsplit(":", 1)[1])
    assert ports["admin"] == int(s["admin_listen"].rsplit(":", 1)[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sidecar[probe]["grpc"]["port"] == ports["gateway-stream"], probe
    props = dict(
        line.split("=", 1)
        for line in _kind("ConfigMap")[0]["data"]["vigie.properties"].splitlines()
        if line and not line.startswith("#")
    )
    assert props["vigie.sidecar.address"] == f"127.0.0.1:{ports['gateway-stream']}"
    known = set(
        re.findall(
            r"^#?(vigie\.[a-z.-]+)=", (REPO / "deploy/wso2/vigie.properties").read_text(), re.M
        )
    )
    assert set(props) <= known, set(props) - known
    # files the settings name are mounted where they say
    mounts = {m["mountPath"] for m in sidecar["volumeMounts"]}
    for key in (
        "admin_tls_cert_file",
        "admin_tls_key_file",
        "admin_tls_client_ca_file",
        "admin_token_file",
    ):
        assert str(Path(s[key]).parent) in mounts, key
    assert s["state_dir"] in mounts
    assert "-Dvigie.config=/etc/vigie/vigie.properties" in gateway["env"][0]["value"]
    assert any(m["mountPath"] == "/etc/vigie/vigie.properties" for m in gateway["volumeMounts"])
    # hardening
    for c in (sidecar, *pod["initContainers"]):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"]
    # the handler jar the init container copies is the one the image holds
    image_jar = re.search(r"COPY --from=handler \S+ (\S+)", _containerfile())
    assert image_jar and image_jar.group(1) in pod["initContainers"][0]["command"]


def test_selectors_match_the_pods() -> None:
    labels = _kind("Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    for svc in _kind("Service"):
        assert svc["spec"]["selector"].items() <= labels.items()
    np = _kind("NetworkPolicy")[0]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    allowed = {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {8243, 8280, 7356}, "7355 (the gateway stream) is open to no pod"


def _containerfile() -> str:
    return (REPO / "deploy" / "container" / "Containerfile").read_text()


def test_the_container_recipe_names_what_exists() -> None:
    text = _containerfile()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for part in src.split():
            assert (REPO / part).exists(), part
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "vigie" in pyproject["project"]["scripts"]
    assert 'ENTRYPOINT ["/opt/vigie/bin/vigie"]' in text
    assert set(re.findall(r"^EXPOSE (.+)$", text, re.M)[0].split()) == {"7355", "7356"}
    assert re.search(r"^USER 1001$", text, re.M), "runs as a non-root user"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    unit = (REPO / "deploy" / "systemd" / "vigie-sidecar.service").read_text()
    vigie = shutil.which("vigie") or str(REPO / ".venv" / "bin" / "vigie")
    # the one change: where this machine has the program (the unit names /opt/vigie)
    copy = tmp_path / "vigie-sidecar.service"
    copy.write_text(unit.replace("/opt/vigie/bin/vigie", vigie))
    r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    assert "ExecStart=/opt/vigie/bin/vigie serve --config /etc/vigie/vigie.toml" in unit


@pytest.mark.slow
def test_the_probes_ask_what_a_real_sidecar_answers(sidecar: SidecarProcess) -> None:
    """The kubelet's gRPC probes name services: a real `vigie serve` serves each of them on the
    gateway-stream port."""
    dep = _kind("Deployment")[0]
    c = {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}["vigie"]
    services = {
        c[p]["grpc"].get("service", "") for p in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert "vigie.v1.Telemetry" in services
    with grpc.insecure_channel(sidecar.telemetry) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in services:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name
