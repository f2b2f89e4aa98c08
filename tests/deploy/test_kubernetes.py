"""deploy/k8s: every overlay renders, validates against the Kubernetes schemas, and agrees with the code."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import project
from tests.deploy.kustomize import build, image_name, load_kustomization, pod_spec
from tests.deploy.test_dockerfile import image_uid

KUBERNETES_VERSION = "1.30"
OVERLAYS = ("dev", "prod")
AUTOSCALING_COMPONENTS = {"keda", "hpa"}
Resource = dict[str, Any]

# KEDA's CRD is not in kubernetes-validate: the part of ScaledObject we use, from KEDA's documentation
# (trigger metadata is a map of strings; a number there is rejected by the API server).
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {k: {"type": "string"} for k in ("apiVersion", "kind", "name")},
                },
                **{
                    key: {"type": "integer", "minimum": 0}
                    for key in (
                        "pollingInterval",
                        "cooldownPeriod",
                        "idleReplicaCount",
                        "minReplicaCount",
                        "maxReplicaCount",
                    )
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "kafka"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                                "additionalProperties": False,
                                "properties": {
                                    key: {"type": "string"}
                                    for key in (
                                        "bootstrapServers",
                                        "consumerGroup",
                                        "topic",
                                        "lagThreshold",
                                        "activationLagThreshold",
                                        "offsetResetPolicy",
                                        "allowIdleConsumers",
                                        "scaleToZeroOnInvalidOffset",
                                        "excludePersistentLag",
                                        "limitToPartitionsWithLag",
                                    )
                                }
                                | {
                                    "sasl": {"enum": ["plaintext", "scram_sha256", "scram_sha512"]},
                                    "tls": {"enum": ["enable", "disable"]},
                                },
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
# KEDA's TriggerAuthentication: credentials for a scaler, each a key of a Secret.
TRIGGER_AUTHENTICATION_SCHEMA = {
    **SCALED_OBJECT_SCHEMA,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["secretTargetRef"],
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {k: {"type": "string"} for k in ("parameter", "name", "key")},
                    },
                }
            },
        },
    },
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    return {overlay: build(project.K8S / "overlays" / overlay) for overlay in OVERLAYS}


def by_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def worker_deployments(resources: list[Resource]) -> dict[str, Resource]:
    """Worker name (as `aietl worker NAME` says) -> its Deployment."""
    result = {}
    for deployment in by_kind(resources, "Deployment").values():
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] == "worker":
            result[args[1]] = deployment
    return result


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in project.K8S.rglob("kustomization.yaml"))


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(project.K8S)))
def test_every_listed_file_exists(directory: Path) -> None:
    kustomization = load_kustomization(directory)
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        assert (directory / entry).exists(), f"{directory}: {entry} does not exist"
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            assert (directory / patch["path"]).is_file()


def test_every_manifest_file_is_used() -> None:
    used: set[Path] = set()
    for directory in kustomization_dirs():
        used.add(directory / "kustomization.yaml")
        kustomization = load_kustomization(directory)
        used.update((directory / entry).resolve() for entry in kustomization.get("resources", []))
        used.update(
            (directory / p["path"]).resolve() for p in kustomization.get("patches", []) if "path" in p
        )
    files = {path.resolve() for path in project.K8S.rglob("*.yaml")}
    assert files - used == set(), "manifest files no kustomization lists"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_on_the_base_with_one_autoscaler(overlay: str) -> None:
    kustomization = load_kustomization(project.K8S / "overlays" / overlay)
    assert "../../base" in kustomization["resources"]
    components = {Path(c).name for c in kustomization.get("components", [])}
    assert len(components & AUTOSCALING_COMPONENTS) == 1, "exactly one of KEDA or the HPA fallback"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_validate_against_kubernetes_schemas(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    kinds: Counter[str] = Counter()
    for resource in rendered[overlay]:
        kinds[resource["kind"]] += 1
        if resource["kind"] == "ScaledObject":
            jsonschema.validate(resource, SCALED_OBJECT_SCHEMA)
        elif resource["kind"] == "TriggerAuthentication":
            jsonschema.validate(resource, TRIGGER_AUTHENTICATION_SCHEMA)
        else:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert kinds["Deployment"] == len(project.WORKER_NAMES) + 1
    assert kinds["Job"] == kinds["Service"] == kinds["Ingress"] == 1
    assert kinds["PodDisruptionBudget"] == kinds["Deployment"]
    assert {"ConfigMap", "Secret"} <= set(kinds)


def test_names_are_unique(rendered: dict[str, list[Resource]]) -> None:
    for resources in rendered.values():
        keys = Counter((r["kind"], r["metadata"]["name"]) for r in resources)
        assert [key for key, count in keys.items() if count > 1] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_match_their_pods(rendered: dict[str, list[Resource]], overlay: str) -> None:
    resources = rendered[overlay]
    pods = {
        name: r["spec"]["template"]["metadata"]["labels"]
        for name, r in by_kind(resources, "Deployment").items()
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    for name, deployment in by_kind(resources, "Deployment").items():
        assert selected(deployment["spec"]["selector"]["matchLabels"]) == {name}, f"{name} selects other pods"
    for name, pdb in by_kind(resources, "PodDisruptionBudget").items():
        assert selected(pdb["spec"]["selector"]["matchLabels"]) == {name}
    services = by_kind(resources, "Service")
    for name, service in services.items():
        assert selected(service["spec"]["selector"]) == {name}
        target_ports = {p["targetPort"] for p in service["spec"]["ports"]}
        container = by_kind(resources, "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
        container_ports = {p["name"] for p in container["ports"]}
        assert target_ports <= container_ports
    for ingress in by_kind(resources, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for name, scaler in by_kind(resources, kind).items():
            target = scaler["spec"]["scaleTargetRef"]
            assert target["name"] in worker_names_of(resources), f"{kind} {name} scales no worker"


def worker_names_of(resources: list[Resource]) -> set[str]:
    return {d["metadata"]["name"] for d in worker_deployments(resources).values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_worker_is_deployed_scaled_and_protected(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    workers = worker_deployments(resources)
    assert set(workers) == set(project.WORKER_NAMES)
    scalers = {
        s["spec"]["scaleTargetRef"]["name"]
        for s in resources
        if s["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
    }
    pdbs = set(by_kind(resources, "PodDisruptionBudget"))
    for worker, deployment in workers.items():
        name = deployment["metadata"]["name"]
        assert name in scalers, f"{worker} has no autoscaler"
        assert name in pdbs, f"{worker} has no PodDisruptionBudget"
        assert "replicas" not in deployment["spec"], f"{worker}: the autoscaler owns replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_on_the_lag_of_each_workers_group(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    config = next(iter(by_kind(resources, "ConfigMap").values()))["data"]
    partitions = int(config["AIETL_KAFKA_PARTITIONS"])
    deployments = {d["metadata"]["name"]: worker for worker, d in worker_deployments(resources).items()}
    for scaled in by_kind(resources, "ScaledObject").values():
        worker = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        assert scaled["spec"]["maxReplicaCount"] <= partitions, "replicas beyond partitions idle"
        for trigger in scaled["spec"]["triggers"]:
            metadata = trigger["metadata"]
            assert metadata["consumerGroup"] == worker, "consumer group = worker name (shared/bus.py)"
            assert metadata["topic"] in project.topic_values()
            assert metadata["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    for hpa in by_kind(resources, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["maxReplicas"] <= partitions


@pytest.mark.parametrize("worker", project.WORKER_NAMES)
def test_keda_triggers_are_the_topics_the_worker_consumes(worker: str) -> None:
    consumed = project.consumed_topics(worker)
    if not consumed:
        pytest.skip(f"services/{worker} subscribes no topic yet")
    resources = build(project.K8S / "overlays" / "prod")
    name = worker_deployments(resources)[worker]["metadata"]["name"]
    scaled = by_kind(resources, "ScaledObject")[name]
    assert {t["metadata"]["topic"] for t in scaled["spec"]["triggers"]} == consumed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(rendered: dict[str, list[Resource]], overlay: str) -> None:
    for resource in rendered[overlay]:
        spec = pod_spec(resource)
        if spec is None:
            continue
        name = f"{resource['kind']} {resource['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == image_uid(), f"{name}: the image's user"
        assert spec["automountServiceAccountToken"] is False, name
        mounts_needed = {"/tmp", "/var/lib/aietl"}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert mounts_needed <= mounts, f"{name}: writable paths on a read-only root"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_have_probes_on_the_served_port(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    for deployment in by_kind(rendered[overlay], "Deployment").values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports
        env = environment(rendered[overlay], container)
        served = int(env["AIETL_GATEWAY_PORT" if container["args"] == ["gateway"] else "AIETL_METRICS_PORT"])
        assert served in ports.values()
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == served


def environment(resources: list[Resource], container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: envFrom ConfigMaps/Secrets, then env (which wins)."""
    configmaps = by_kind(resources, "ConfigMap")
    secrets = by_kind(resources, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_commands_images_and_environment_exist_in_the_code(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    resources = rendered[overlay]
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        for container in spec["containers"]:
            name = f"{resource['kind']} {resource['metadata']['name']}"
            project.check_cli_args(container["args"])
            extra = project.image_extra(image_name(container["image"]))
            assert extra in project.service_extras(), name
            if container["args"][0] == "worker":
                assert project.extra_for_worker_ok(container["args"][1], extra), name
            else:
                assert extra == "all", f"{name} imports every service"
            env = environment(resources, container)  # KeyError: a missing ConfigMap, Secret or key
            unknown = set(env) - project.settings_env_names()
            assert not unknown, f"{name}: variables no setting reads: {sorted(unknown)}"
            embedded = [key for key in project.SHARED_STORE_SETTINGS if not env.get(key)]
            assert not embedded, f"{name} would use per-pod embedded stores for {embedded}"
            assert env["AIETL_ENVIRONMENT"] == "production"
            assert env["AIETL_DATA_DIR"] == "/var/lib/aietl"
            if container["args"] == ["gateway"]:
                assert env["AIETL_GATEWAY_HOST"] == "0.0.0.0"
                assert {"AIETL_JWT_SECRET", "AIETL_ADMIN_PASSWORD"} <= set(env), "production requires both"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_and_vector_sink_share_the_connector_secret_key(
    rendered: dict[str, list[Resource]], overlay: str
) -> None:
    """Replicas have no shared disk: the key that seals connector secrets must come from one Secret."""
    deployments = by_kind(rendered[overlay], "Deployment")
    sink = worker_deployments(rendered[overlay])["vector_sink"]
    refs = []
    for deployment in (deployments["aietl-gateway"], sink):
        env = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        refs.append(env["AIETL_VECTOR_SINK_SECRET_KEY"]["valueFrom"]["secretKeyRef"])
    assert refs[0] == refs[1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_can_run_before_the_rest(rendered: dict[str, list[Resource]], overlay: str) -> None:
    """`kubectl apply -l aietl.io/apply-first=true` must bring everything the migration Job uses."""
    first = [r for r in rendered[overlay] if r["metadata"]["labels"].get("aietl.io/apply-first") == "true"]
    present = {(r["kind"], r["metadata"]["name"]) for r in first}
    job = next(r for r in first if r["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    assert ("ServiceAccount", spec["serviceAccountName"]) in present
    for source in spec["containers"][0]["envFrom"]:
        kind, ref = ("ConfigMap", "configMapRef") if "configMapRef" in source else ("Secret", "secretRef")
        assert (kind, source[ref]["name"]) in present
    assert environment(first, spec["containers"][0])["DATABASE_URL"]


def test_secrets_hold_placeholders_only(rendered: dict[str, list[Resource]]) -> None:
    for resources in rendered.values():
        for secret in by_kind(resources, "Secret").values():
            for key, value in secret["stringData"].items():
                assert "REPLACE_ME" in value or key == "AIETL_ADMIN_USERNAME", (
                    f"{key} looks like a real secret"
                )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renderer_agrees_with_kubectl_kustomize(rendered: dict[str, list[Resource]], overlay: str) -> None:
    output = subprocess.run(
        ["kubectl", "kustomize", str(project.K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = {(r["kind"], r["metadata"]["name"]): r for r in yaml.safe_load_all(output)}
    ours = {(r["kind"], r["metadata"]["name"]): r for r in rendered[overlay]}
    assert ours == theirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_credentials_come_from_secrets(rendered: dict[str, list[Resource]], overlay: str) -> None:
    """Every pod reads the SASL user and password from a Secret, never a ConfigMap; with TLS the CA
    file it is told about is mounted from a Secret that exists, and KEDA authenticates the same way."""
    resources = rendered[overlay]
    for configmap in by_kind(resources, "ConfigMap").values():
        assert not {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} & set(configmap["data"])
    secrets = by_kind(resources, "Secret")
    for deployment in by_kind(resources, "Deployment").values():
        spec = pod_spec(deployment)
        assert spec is not None
        container = spec["containers"][0]
        env = environment(resources, container)
        assert {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= set(env)
        if env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").endswith("SSL"):
            ca_file = Path(env["KAFKA_SSL_CA_FILE"])
            mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(ca_file.parent))
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            assert ca_file.name in secrets[volume["secret"]["secretName"]]["stringData"]
    protocols = {
        c["data"].get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
        for c in by_kind(resources, "ConfigMap").values()
    }
    if protocols == {"SASL_SSL"}:
        auth = by_kind(resources, "TriggerAuthentication")
        for scaled in by_kind(resources, "ScaledObject").values():
            for trigger in scaled["spec"]["triggers"]:
                assert (
                    trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
                )
                refs = auth[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
                assert {r["parameter"] for r in refs} == {"username", "password", "ca"}
                assert all(r["key"] in secrets[r["name"]]["stringData"] for r in refs)
