"""docker-compose.yml: valid against the Compose Specification and consistent with the code."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy import project

COMPOSE_FILE = project.ROOT / "docker-compose.yml"
AIETL_IMAGE = re.compile(r"aietl-[a-z-]+:local")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def aietl_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if AIETL_IMAGE.fullmatch(svc["image"])}


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft202012Validator)


def test_has_the_real_servers(compose: dict[str, Any]) -> None:
    images = {svc["image"].split(":")[0].rsplit("/", 1)[-1] for svc in compose["services"].values()}
    assert {
        "kafka",
        "postgres",
        "redis",
        "clickhouse-server",
        "milvus",
        "etcd",
        "minio",
        "weaviate",
    } <= images
    kafka = compose["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "Kafka runs in KRaft mode (no ZooKeeper)"
    assert "zookeeper" not in compose["services"]


def test_every_worker_and_the_gateway_run_with_the_right_image(
    aietl_services: dict[str, dict[str, Any]],
) -> None:
    commands = {name: svc["command"] for name, svc in aietl_services.items()}
    workers = {
        svc["command"][1]: name for name, svc in aietl_services.items() if svc["command"][0] == "worker"
    }
    assert set(workers) == set(project.WORKER_NAMES)
    assert ["gateway"] in commands.values()
    assert ["migrate"] in commands.values()
    for name, svc in aietl_services.items():
        project.check_cli_args(svc["command"])
        extra = svc["build"]["args"]["SERVICE_EXTRA"]
        assert extra in project.service_extras(), f"{name}: SERVICE_EXTRA {extra} is no extra of pyproject"
        assert project.image_extra(svc["image"]) == extra, f"{name}: image name does not say its extra"
        assert svc["build"]["context"] == "."
        if svc["command"][0] == "worker":
            assert project.extra_for_worker_ok(svc["command"][1], extra)
            assert "ports" not in svc, f"{name}: a worker publishes no host port, so it can be scaled"
        else:
            assert extra == "all", f"{name} imports every service's tables or routes"


def test_environment_names_are_settings(aietl_services: dict[str, dict[str, Any]]) -> None:
    for name, svc in aietl_services.items():
        unknown = set(svc["environment"]) - project.settings_env_names()
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"
        embedded = [key for key in project.SHARED_STORE_SETTINGS if not svc["environment"].get(key)]
        assert not embedded, f"{name} would use per-container embedded stores for {embedded}"


def test_start_order_waits_for_health_and_migrations(
    compose: dict[str, Any], aietl_services: dict[str, dict[str, Any]]
) -> None:
    services = compose["services"]
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {key: {"condition": "service_started"} for key in depends}
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency] or AIETL_IMAGE.fullmatch(
                    services[dependency]["image"]
                ), f"{name} waits for {dependency} to be healthy but it has no health check"
    for name, svc in aietl_services.items():
        if svc["command"] == ["migrate"]:
            assert svc["restart"] == "no"
            assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
            continue
        depends = svc["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_stores_are_wired_to_the_services_that_use_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["gateway"]["environment"]
    assert env["AIETL_GATEWAY_HOST"] == "0.0.0.0", "the gateway must listen beyond the container"
    host_ports = {port.split(":")[1] for port in services["gateway"]["ports"]}
    assert env["AIETL_GATEWAY_PORT"] in host_ports
    for variable, service in (
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka"),
        ("REDIS_URL", "redis"),
        ("CLICKHOUSE_HOST", "clickhouse"),
        ("MILVUS_HOST", "milvus"),
        ("WEAVIATE_URL", "weaviate"),
        ("DATABASE_URL", "postgres"),
    ):
        assert re.search(rf"(^|[/@]){service}(:|$)", env[variable]), f"{variable} does not point at {service}"
    assert env["DATABASE_URL"].startswith("postgresql://")


def test_processes_share_one_data_volume(aietl_services: dict[str, dict[str, Any]]) -> None:
    """Key files generated under the data dir (JWT secret, connector-secret key) must be the same file
    for the gateway and every vector_sink replica."""
    for name, svc in aietl_services.items():
        assert "aietl-data:/var/lib/aietl" in svc["volumes"], name


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (project.ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_process(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((project.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets.update(f"{name}:{dns['port']}" for name in dns["names"])
    services = compose["services"]
    expected = {f"{worker}:9100" for worker in project.WORKER_NAMES} | {"gateway:8000"}
    assert targets == expected
    for target in targets:
        assert target.split(":")[0] in services


def test_grafana_provisioning_matches_dashboards() -> None:
    grafana = project.DEPLOY / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    for path in Path(grafana / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] in uids, f"{path.name}: {panel['title']}"
