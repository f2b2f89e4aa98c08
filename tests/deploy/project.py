"""What the code defines, read from the code itself: settings' environment names, workers, the topics
each worker consumes, the CLI, extras and registered metrics. Deploy files are checked against these."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

import click
from prometheus_client.metrics import MetricWrapperBase
from pydantic import AliasChoices

from aietl.services.cli import cli
from aietl.services.runtime import WORKERS
from aietl.shared import metrics
from aietl.shared.events import Topic
from aietl.shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
EXTRAS_ONLY_FOR_TESTS = {"test", "bench"}
# Settings whose default is a file under the data dir or an embedded broker: replicas would not share it,
# so every deployment must point them at a server.
SHARED_STORE_SETTINGS = (
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
    "CLICKHOUSE_HOST",
    "MILVUS_HOST",
    "AIETL_FEATURES_ONLINE_STORE",
)


@cache
def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def service_extras() -> set[str]:
    extras = pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    return set(extras) - EXTRAS_ONLY_FOR_TESTS


@cache
def settings_env_names() -> frozenset[str]:
    """Every environment variable `Settings` reads (aliases, else AIETL_<FIELD>)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{field_name}".upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
    return frozenset(names)


def topic_values() -> set[str]:
    return {value for name, value in vars(Topic).items() if name.isupper() and isinstance(value, str)}


def all_topics() -> set[str]:
    topics = topic_values()
    return topics | {Topic.dlq(topic) for topic in topics}


@cache
def consumed_topics(worker: str) -> frozenset[str]:
    """Topics the worker's consumer group subscribes, from its router as `aietl worker` builds it."""
    from aietl.services.runtime import Runtime, create_worker_router
    from aietl.shared.settings import Settings

    runtime = Runtime(Settings(kafka_bootstrap_servers="kafka:9092"))
    runtime.broker.include_router(create_worker_router(worker, runtime))
    return frozenset(
        topic
        for subscriber in runtime.broker.subscribers
        if getattr(subscriber, "group_id") == worker
        for topic in getattr(subscriber.specification, "topics")
    )


def check_cli_args(args: list[str]) -> None:
    """Parse `aietl <args>` with the real click CLI (no command runs); raises click.UsageError."""
    if not args:
        raise click.UsageError("no command")
    command = cli.commands.get(args[0])
    if command is None:
        raise click.UsageError(f"aietl has no command {args[0]!r}")
    command.make_context(f"aietl {args[0]}", list(args[1:]), resilient_parsing=False)


def image_extra(image: str) -> str:
    """`registry/aietl-vector-sink:tag` -> `vector_sink`: the extra an image was built with."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    match = re.fullmatch(r"aietl-([a-z-]+)", name)
    if match is None:
        raise ValueError(f"image {image!r} is not named aietl-<extra>")
    return match.group(1).replace("-", "_")


def extra_for_worker_ok(worker: str, extra: str) -> bool:
    """A worker runs from its own image or the `all` image."""
    return extra in (worker, "all")


@cache
def registered_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Sample name -> (metric family, label names) for every metric in shared/metrics.py."""
    samples: dict[str, tuple[str, frozenset[str]]] = {}
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "summary": ("", "_count", "_sum", "_created"),
    }
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = frozenset(value._labelnames)
        for suffix in suffixes[str(value._type)]:
            sample_labels = labels | {"le"} if suffix == "_bucket" else labels
            samples[f"{value._name}{suffix}"] = (value._name, sample_labels)
    return samples


WORKER_NAMES = tuple(WORKERS)
