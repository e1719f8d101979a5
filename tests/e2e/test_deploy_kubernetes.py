"""deploy/kubernetes: every overlay, rendered by kustomize (built from the Go module proxy by
`make backends`), validates against the Kubernetes JSON schemas (kubernetes-validate ships
them: no network needed); the cert-manager resources pass a schema check of their own; the
pieces agree with each other, with the sidecar's settings and with the handler's; the container
recipe names files that exist; the systemd unit passes `systemd-analyze verify`."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import REPO
from vigie.cli.main import main
from vigie.settings import load_settings

K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = ("dc1", "dc2", "single", "channels/main", "channels/sale")
CHANNELS = ("main", "sale", "preparation", "delivery")
# OpenShift 4.16 is Kubernetes 1.29; the newest the package knows is checked too
VERSIONS = ("1.29.0", "1.33.0")

Doc = dict[str, Any]


@functools.cache
def kustomize() -> Path:
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "kustomize-path"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Path(out[-1])


@functools.cache
def render(overlay: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [str(kustomize()), "build", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def of_kind(overlay: str, kind: str) -> list[Doc]:
    return [d for d in render(overlay) if d["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> Doc:
    (doc,) = [d for d in of_kind(overlay, kind) if d["metadata"]["name"] == name]
    return doc


def env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def containers(workload: Doc) -> dict[str, Doc]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


def config_file(overlay: str, prefix: str, key: str) -> str:
    (cm,) = [
        d
        for d in of_kind(overlay, "ConfigMap")
        if d["metadata"]["name"].startswith(prefix) and key in d["data"]
    ]
    return str(cm["data"][key])


# ---- cert-manager: its CRDs are not in kubernetes-validate; the fields used here, checked
# against cert-manager.io/v1's schema (names and types from its CRDs: additional fields refused)
_CERT_SPEC: Doc = {
    "secretName": str,
    "issuerRef": {"name": str, "kind": str, "group": str},
    "commonName": str,
    "dnsNames": [str],
    "duration": str,
    "renewBefore": str,
    "privateKey": {"algorithm": str, "size": int, "encoding": str, "rotationPolicy": str},
    "usages": [str],
}
_ISSUER_SPEC: Doc = {"ca": {"secretName": str}}
_USAGES = {"server auth", "client auth", "digital signature", "key encipherment"}


def _check_shape(value: Any, shape: Any, where: str) -> None:
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: not an object"
        unknown = set(value) - set(shape)
        assert not unknown, f"{where}: unknown fields {sorted(unknown)}"
        for k, v in value.items():
            _check_shape(v, shape[k], f"{where}.{k}")
    elif isinstance(shape, list):
        assert isinstance(value, list) and value, f"{where}: not a non-empty list"
        for k, v in enumerate(value):
            _check_shape(v, shape[0], f"{where}[{k}]")
    else:
        assert isinstance(value, shape) and not isinstance(value, bool), f"{where}: not {shape}"


def check_cert_manager(doc: Doc) -> None:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    assert doc["apiVersion"] == "cert-manager.io/v1", name
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, name
    if doc["kind"] == "Issuer":
        _check_shape(doc["spec"], _ISSUER_SPEC, name)
        return
    assert doc["kind"] == "Certificate", name
    spec = doc["spec"]
    _check_shape(spec, _CERT_SPEC, name)
    assert spec["secretName"] and spec["issuerRef"]["name"], name
    assert spec["issuerRef"].get("kind", "Issuer") in {"Issuer", "ClusterIssuer"}, name
    assert set(spec["usages"]) <= _USAGES, name
    key = spec["privateKey"]
    assert key["algorithm"] in {"RSA", "ECDSA", "Ed25519"} and key["encoding"] == "PKCS8", name
    assert key.get("rotationPolicy", "Never") in {"Never", "Always"}, name
    for d in ("duration", "renewBefore"):
        assert re.fullmatch(r"\d+h", spec[d]), f"{name}.{d}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_overlay_renders_into_manifests_that_validate(overlay: str, version: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Service"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("cert-manager.io/"):
            check_cert_manager(doc)
        else:
            kubernetes_validate.validate(doc, version, strict=True)  # raises on any error
        assert doc["metadata"]["name"]


def test_the_checks_are_not_rubber_stamps() -> None:
    """A misspelt field and a wrong type both fail, for Kubernetes and cert-manager kinds."""
    sts = of_kind("dc1", "StatefulSet")[0]
    bad = yaml.safe_load(yaml.safe_dump(sts))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(sts))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)
    cert = named("dc1", "Certificate", "vigie")
    for path, value in ((("spec", "secretNam"), "x"), (("spec", "privateKey", "size"), "256")):
        bad = yaml.safe_load(yaml.safe_dump(cert))
        node = bad
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        with pytest.raises(AssertionError):
            check_cert_manager(bad)


def test_each_data_centre_runs_its_instance_on_a_claim_and_every_gateway_streams_to_both() -> None:
    addresses = {}
    for dc, other in (("dc1", "dc2"), ("dc2", "dc1")):
        sts = named(dc, "StatefulSet", "vigie")
        assert sts["spec"]["replicas"] == 1 and sts["metadata"]["namespace"] == "apim"
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in containers(sts)["vigie"]["volumeMounts"]}
        s = tomllib.loads(config_file(dc, "vigie-config", "vigie.toml"))
        assert mounts[claim["metadata"]["name"]] == s["state_dir"]
        volumes = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
        assert claim["metadata"]["name"] not in volumes, "the state is on the claim, not emptyDir"
        assert env(containers(sts)["vigie"])["OTEL_RESOURCE_ATTRIBUTES"] == f"cloud.region={dc}"
        gateways = of_kind(dc, "Deployment")
        assert sorted(env(containers(g)["gateway"])["VIGIE_CHANNEL"] for g in gateways) == sorted(
            CHANNELS
        )
        seen = {env(containers(g)["gateway"])["VIGIE_SIDECAR_ADDRESSES"] for g in gateways}
        assert {env(containers(g)["gateway"])["VIGIE_REGION"] for g in gateways} == {dc}
        (line,) = seen
        local, remote = line.split(",")
        assert local == f"vigie-0.vigie.apim.svc:{s['listen'].rsplit(':', 1)[1]}"
        assert remote.startswith(f"vigie-0.vigie.{other}.")
        addresses[dc] = (local, remote)
        # each name a gateway dials is in the instance's certificate (dc's own, and the other's)
        names = named(dc, "Certificate", "vigie")["spec"]["dnsNames"]
        assert local.rsplit(":", 1)[0] in names
        published = f"vigie-0.vigie.{dc}.apim.example.net"
        assert published in names
        assert named(dc, "Service", "vigie-0-published")["spec"]["type"] == "LoadBalancer"
    assert (
        addresses["dc1"][1].rsplit(":", 1)[0]
        in named("dc2", "Certificate", "vigie")["spec"]["dnsNames"]
    )
    assert (
        addresses["dc2"][1].rsplit(":", 1)[0]
        in named("dc1", "Certificate", "vigie")["spec"]["dnsNames"]
    )


def test_a_fleet_of_one() -> None:
    (gw,) = of_kind("single", "Deployment")
    e = env(containers(gw)["gateway"])
    assert e["VIGIE_SIDECAR_ADDRESSES"] == "vigie-0.vigie.apim.svc:7355"
    assert e["VIGIE_CHANNEL"] == "main"
    assert [d["metadata"]["name"] for d in of_kind("single", "StatefulSet")] == ["vigie"]


@pytest.mark.parametrize("overlay", ("dc1", "single"))
def test_the_sidecar_settings_are_valid(overlay: str, tmp_path: Path) -> None:
    text = config_file(overlay, "vigie-config", "vigie.toml")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "inventory.json").write_text(
        config_file(overlay, "vigie-inventory", "inventory.json")
    )
    # the one change: where this machine has the inventory the pod mounts
    cfg = tmp_path / "vigie.toml"
    cfg.write_text(text.replace("/etc/vigie/inventory", str(inventory)))
    r = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "warning:" not in r.output, r.output
    s = load_settings(cfg, env={})
    assert s.admin_auth == "both" and s.admin_tls_client_ca_file and s.tls_client_ca_file
    assert s.otel_export == "on"
    json.loads((inventory / "inventory.json").read_text())
    example = tmp_path / "example.toml"
    example.write_text((K8S / "vigie.toml.example").read_text())
    r = CliRunner().invoke(main, ["check-config", str(example)])
    assert r.exit_code == 0 and "warning:" not in r.output, r.output


def _handler_settings_known() -> set[str]:
    """The handler's settings: those deploy/wso2/vigie.properties lists, and the multi-target
    one the handler README names."""
    text = (REPO / "deploy/wso2/vigie.properties").read_text()
    return set(re.findall(r"^#?(vigie\.[a-z.-]+)=", text, re.M))


def _env_name(key: str) -> str:
    return key.upper().replace(".", "_").replace("-", "_")


@pytest.mark.parametrize("overlay", ("dc1", "single"))
def test_pod_wiring_agrees_with_the_settings(overlay: str) -> None:
    sts = named(overlay, "StatefulSet", "vigie")
    pod = sts["spec"]["template"]["spec"]
    sidecar = containers(sts)["vigie"]
    s = tomllib.loads(config_file(overlay, "vigie-config", "vigie.toml"))
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["gateway-stream"] == int(s["listen"].rsplit(":", 1)[1])
    assert ports["admin"] == int(s["admin_listen"].rsplit(":", 1)[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sidecar[probe]["tcpSocket"]["port"] in ports.values(), probe
    # files the settings name are mounted where they say, from the Secrets the certificates fill
    mounts = {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]}
    for key in (
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "admin_tls_cert_file",
        "admin_tls_key_file",
        "admin_tls_client_ca_file",
        "admin_token_file",
        "inventory",
    ):
        assert str(Path(s[key]).parent) in mounts, key
    volumes = {v["name"]: v for v in pod["volumes"]}
    tls_secret = volumes[mounts[str(Path(s["tls_cert_file"]).parent)]]["secret"]["secretName"]
    assert tls_secret == named(overlay, "Certificate", "vigie")["spec"]["secretName"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env(sidecar)
    # the gateways: handler settings that exist, files where they say
    known = _handler_settings_known()
    for gw in of_kind(overlay, "Deployment"):
        gpod = gw["spec"]["template"]["spec"]
        gateway = containers(gw)["gateway"]
        gvolumes = {v["name"]: v for v in gpod["volumes"]}
        gmounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
        # the files of the ConfigMap the gateway really mounts (its channel's)
        files = named(
            overlay,
            "ConfigMap",
            gvolumes[gmounts["/etc/vigie/vigie.properties"]]["configMap"]["name"],
        )["data"]
        props = dict(
            line.split("=", 1)
            for line in files["vigie.properties"].splitlines()
            if line and not line.startswith("#")
        )
        assert set(props) <= known, set(props) - known
        by_env = {_env_name(k): k for k in known}
        for name in env(gateway):
            if name.startswith("VIGIE_"):
                assert name in by_env, name
        assert "-Dvigie.config=/etc/vigie/vigie.properties" in env(gateway)["JAVA_OPTS"]
        for key in ("vigie.tls.ca-file", "vigie.tls.cert-file", "vigie.tls.key-file"):
            vol = gvolumes[gmounts[str(Path(props[key]).parent)]]
            assert (
                vol["secret"]["secretName"]
                == (named(overlay, "Certificate", "wso2am-gateway-vigie")["spec"]["secretName"])
            )
        # the deployment.toml the gateway reads holds the handler block WSO2 needs
        toml = tomllib.loads(files["deployment.toml"])
        reference = tomllib.loads((REPO / "deploy/wso2/deployment.toml").read_text())
        assert toml["synapse_handlers"]["vigie"] == reference["synapse_handlers"]["vigie"]
        assert any(p.endswith("/repository/conf/deployment.toml") for p in gmounts)
        # hardening; the handler jar the init container copies is the one the image holds
        (init,) = gpod["initContainers"]
        for c in (sidecar, init):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"]["drop"] == ["ALL"]
        assert gpod["securityContext"]["runAsNonRoot"]
        image_jar = re.search(r"COPY --from=handler \S+ (\S+)", _containerfile())
        assert image_jar and image_jar.group(1) in init["command"]
    assert pod["securityContext"]["runAsNonRoot"]
    # the gateways' certificate is a client one, the instance's both (peers: coming)
    assert named(overlay, "Certificate", "wso2am-gateway-vigie")["spec"]["usages"] == [
        "client auth"
    ]
    assert {"server auth", "client auth"} <= set(
        named(overlay, "Certificate", "vigie")["spec"]["usages"]
    )


@pytest.mark.parametrize("overlay", ("dc1", "single"))
def test_selectors_match_their_pods_only(overlay: str) -> None:
    workloads = [*of_kind(overlay, "Deployment"), *of_kind(overlay, "StatefulSet")]
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in workloads]
    for svc in of_kind(overlay, "Service"):
        sel = {
            k: v
            for k, v in svc["spec"]["selector"].items()
            if k != "statefulset.kubernetes.io/pod-name"
        }
        matched = [p for p in pods if sel.items() <= p.items()]
        assert len(matched) == 1, svc["metadata"]["name"]
    for w in workloads:
        sel = w["spec"]["selector"]["matchLabels"]
        assert [p for p in pods if sel.items() <= p.items()] == [
            w["spec"]["template"]["metadata"]["labels"]
        ]
    (np,) = of_kind(overlay, "NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pods[-1].items()
    allowed = {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == {7355, 7356}
    stream_from = np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    gateways = [w for w in workloads if w["kind"] == "Deployment"]
    assert all(
        stream_from.items() <= g["spec"]["template"]["metadata"]["labels"].items() for g in gateways
    )


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
