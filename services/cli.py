"""`aietl`: one command for every process of the platform."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.types import ASGIApp

from aietl.services.runtime import WORKERS, Runtime, create_worker_router
from aietl.shared.bus import ensure_topics
from aietl.shared.embedded_broker import EmbeddedBroker
from aietl.shared.logs import configure_logging
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: the CLI decides when everything stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_stop_signals(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, callback)


async def serve_until_stopped(
    app: ASGIApp, host: str, port: int, banner: Callable[[], str], ready: Awaitable[None] | None = None
) -> None:
    """Serve `app` until SIGINT or SIGTERM; print `banner()` once it accepts connections and
    `ready` (the workers' start) has completed."""
    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from 127.0.0.1 as the client;
    # the gateway trusts it only from AIETL_TRUSTED_PROXIES (services.gateway.throttle).
    server = _Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", proxy_headers=False)
    )
    _on_stop_signals(lambda: setattr(server, "should_exit", True))  # finish requests in flight
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        if ready is not None:
            await ready
        click.echo(banner(), err=True)
    await task
    if not server.started:
        raise click.ClickException(f"could not serve on {host}:{port}")


def _freeze_startup_objects() -> None:
    """Move what start-up allocated (modules, models, clients) out of the garbage collector's
    sight: walking those objects again and again cost a busy worker 15-30% of its CPU."""
    gc.collect()
    gc.freeze()


async def _stopped_by_signals(main: Coroutine[Any, Any, None]) -> None:
    """Run `main`; SIGINT or SIGTERM before it serves cancels it, so that its `finally` blocks stop
    what it has started (the embedded broker above all) instead of the process dying around them.
    Once serving, `serve_until_stopped` takes the signals over and stops gracefully."""
    task = asyncio.current_task()
    assert task is not None
    _on_stop_signals(task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main


def _run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived process on uvloop (installed with uvicorn[standard]) where it exists: the
    same code on a faster event loop for HTTP, Kafka and Redis I/O; asyncio's own loop elsewhere."""
    guarded = _stopped_by_signals(main)
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        asyncio.run(guarded)
        return
    uvloop.run(guarded)


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {key: value for key, value in overrides.items() if value is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    settings = Settings(**values)
    configure_logging(settings.log_level, settings.log_format)
    return settings


@click.group()
def cli() -> None:
    """AI-ETL: keep data pipelines healthy and feed ML/RAG systems."""


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Where embedded data lives.")
@click.option("--host", default=None, help="Gateway host (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Gateway port (default 8000).")
@click.option("--broker-port", type=int, default=None, help="Embedded broker port (default 9092).")
def up(data_dir: Path | None, host: str | None, port: int | None, broker_port: int | None) -> None:
    """Everything in one process: broker, migrations, the five workers and the gateway."""
    settings = _settings(data_dir, gateway_host=host, gateway_port=port, broker_port=broker_port)
    _run_service(_up(settings, time.perf_counter()))


async def _up(settings: Settings, started: float) -> None:
    settings.ensure_data_dir()
    broker = EmbeddedBroker(settings.broker_port).start() if settings.embedded_broker else None
    try:
        await _up_on_broker(settings, started)
    finally:  # whatever happened (a failed start, a second signal), tansu must not outlive us
        if broker is not None:
            broker.stop()
        click.echo("AI-ETL stopped.", err=True)


async def _up_on_broker(settings: Settings, started: float) -> None:
    from aietl.services.gateway.app import create_app

    runtime = Runtime(settings)
    try:
        await upgrade_async(settings.resolved_database_url)
        for name in WORKERS:
            runtime.broker.include_router(create_worker_router(name, runtime))
        await ensure_topics(settings)
        app = create_app(runtime, owns_runtime=False)
        _freeze_startup_objects()
        # The gateway answers while the consumer groups join (that takes a few seconds on any
        # Kafka); /ready reports the workers once they consume.
        workers = asyncio.create_task(runtime.start_consuming())
        runtime.readiness["workers"] = lambda: asyncio.shield(workers)
        url = f"http://{settings.gateway_host}:{settings.gateway_port}"
        await serve_until_stopped(
            app,
            settings.gateway_host,
            settings.gateway_port,
            lambda: f"AI-ETL ready in {time.perf_counter() - started:.1f}s: {url} (API docs at {url}/docs)",
            ready=workers,
        )
    finally:
        await runtime.broker.stop()
        await runtime.close()


@cli.command()
@click.argument("name", type=click.Choice(WORKERS))
@click.option("--metrics-port", type=int, default=None, help="Port of /health, /ready and /metrics.")
def worker(name: str, metrics_port: int | None) -> None:
    """Run one worker (one Deployment per worker on Kubernetes)."""
    settings = _settings(None, metrics_port=metrics_port)
    _run_service(_worker(settings, name))


async def _worker(settings: Settings, name: str) -> None:
    from aietl.services.operations import operations_app

    runtime = Runtime(settings, client_id=f"aietl-{name}")
    try:
        runtime.broker.include_router(create_worker_router(name, runtime))
        await ensure_topics(settings)
        await runtime.start_consuming()
        app = operations_app(runtime)
        _freeze_startup_objects()
        await serve_until_stopped(
            app,
            "0.0.0.0",  # noqa: S104 - probes and scrapers reach the pod from outside
            settings.metrics_port,
            lambda: f"worker {name} consuming; metrics on :{settings.metrics_port}",
        )
    finally:
        await runtime.broker.stop()
        await runtime.close()


@cli.command()
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def gateway(host: str | None, port: int | None) -> None:
    """Run the REST gateway alone (workers run elsewhere)."""
    from aietl.services.gateway.app import create_app

    settings = _settings(None, gateway_host=host, gateway_port=port)
    app = create_app(Runtime(settings, client_id="aietl-gateway"))
    _freeze_startup_objects()  # as `aietl up` and `aietl worker` do
    url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    _run_service(
        serve_until_stopped(app, settings.gateway_host, settings.gateway_port, lambda: f"gateway at {url}")
    )


@cli.group("jwt-keys")
def jwt_keys() -> None:
    """The embedded signing key ring (`jwt-keys` in the data dir; a running gateway reads it again
    when it changes). With AIETL_JWT_SECRETS or AIETL_JWT_SECRET the ring is the environment's."""


def _key_ring_file(data_dir: Path | None) -> Path:
    from aietl.services.gateway.security import KeyRing

    settings = _settings(data_dir)
    ring = KeyRing.from_settings(settings)
    if ring.path is None:
        raise click.ClickException(
            "the key ring is set by AIETL_JWT_SECRETS / AIETL_JWT_SECRET: change it there"
        )
    return ring.path


@jwt_keys.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def jwt_keys_list(data_dir: Path | None) -> None:
    """The key ids, the signing one first."""
    from aietl.services.gateway.security import KeyRing, read_key_ring

    for position, key in enumerate(read_key_ring(_key_ring_file(data_dir))):
        click.echo(f"{KeyRing.key_id(key)}{'  (signs)' if position == 0 else ''}")


@jwt_keys.command("rotate")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def jwt_keys_rotate(data_dir: Path | None) -> None:
    """A new key signs from now on; the others still verify the tokens they signed."""
    from aietl.services.gateway.security import KeyRing, new_secret, read_key_ring, write_key_ring

    path = _key_ring_file(data_dir)
    key = new_secret()
    write_key_ring(path, [key, *read_key_ring(path)])
    click.echo(f"new signing key {KeyRing.key_id(key)}; retire the others after AIETL_JWT_TTL_SECONDS")


@jwt_keys.command("retire")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def jwt_keys_retire(data_dir: Path | None) -> None:
    """Keep only the signing key: tokens signed by the others stop working."""
    from aietl.services.gateway.security import KeyRing, read_key_ring, write_key_ring

    path = _key_ring_file(data_dir)
    current, *retired = read_key_ring(path)
    write_key_ring(path, [current])
    click.echo(f"retired {len(retired)} key(s); {KeyRing.key_id(current)} signs")


@cli.command()
def migrate() -> None:
    """Apply every service's migrations to DATABASE_URL (SQLite or PostgreSQL)."""
    settings = _settings(None)
    settings.ensure_data_dir()
    asyncio.run(upgrade_async(settings.resolved_database_url))
    click.echo("migrations applied", err=True)


@cli.command()
@click.option("--port", type=int, default=None, help="Port to listen on (default 9092).")
def broker(port: int | None) -> None:
    """Run the embedded Kafka-protocol broker (tansu, memory storage) until Ctrl-C."""
    settings = _settings(None, broker_port=port)
    _run_service(_broker(settings.broker_port))


async def _broker(port: int) -> None:
    with EmbeddedBroker(port) as embedded:
        click.echo(f"tansu listening on {embedded.bootstrap_servers}; Ctrl-C stops it", err=True)
        await embedded.wait()


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/contracts"), show_default=True)
def contracts(out: Path) -> None:
    """Write the AsyncAPI document and one JSON Schema per topic, for producers in any language."""
    from aietl.services.contracts import write_contracts

    for path in write_contracts(out):
        click.echo(path)


@cli.command("predict-eval")
@click.option("--seeds", default="1,2,3", show_default=True, help="Simulated histories (comma-separated).")
@click.option("--pipelines", type=click.IntRange(4, 500), default=60, show_default=True)
@click.option("--days", type=click.IntRange(21, 365), default=22, show_default=True)
@click.option("--compare", is_flag=True, help="Also gradient boosting and the survival view.")
@click.option("--json", "as_json", is_flag=True, help="Every figure of every seed as JSON.")
def predict_eval(seeds: str, pipelines: int, days: int, compare: bool, as_json: bool) -> None:
    """Score the predict service on simulated held-out time, beside baselines, and on real series."""
    from aietl.services.predict.evaluate import main as evaluate

    arguments = ["--seeds", seeds, "--pipelines", str(pipelines), "--days", str(days)]
    evaluate(arguments + (["--compare"] if compare else []) + (["--json"] if as_json else []))


@cli.command("drift-eval")
@click.option(
    "--history",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Real schema changes (default: tests/data/drift_history.jsonl.gz of the checkout).",
)
@click.option(
    "--synthetic",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The synthetic corpus (default: tests/data/drift_corpus.jsonl of the checkout).",
)
@click.option("--no-lopo", is_flag=True, help="Skip leave-one-project-out (it re-fits once per project).")
def drift_eval(history: Path | None, synthetic: Path | None, no_lopo: bool) -> None:
    """Score drift detection on labelled corpora: per-type P/R/F1, renames, exact cases, leave-one-
    project-out, beside the plain name diff that infers no renames (needs scikit-learn to re-fit)."""
    from aietl.services.drift import evaluate

    history = history or evaluate.HISTORY
    synthetic = synthetic or evaluate.SYNTHETIC
    for path in (history, synthetic):
        if not path.exists():
            raise click.ClickException(f"{path} not found: pass --history/--synthetic")
    click.echo(evaluate.report(history, synthetic, lopo=not no_lopo))


@cli.command()
@click.option("--url", default=None, help="A running platform (default: start one in a temporary folder).")
@click.option("--username", default="admin", show_default=True, help="With --url.")
@click.option(
    "--password",
    envvar="AIETL_DEMO_PASSWORD",
    show_envvar=True,
    default=None,
    help="With --url (else prompted).",
)
def demo(url: str | None, username: str, password: str | None) -> None:
    """Show the whole loop working: drift, features, templates, predictions, vectors, over REST.

    With --url the demo writes into that platform (project `demo` for an administrator); its
    simulated runs also feed the shared failure model there.
    """
    from aietl.services.demo.client import DemoFailed
    from aietl.services.demo.launcher import run

    if url is not None and password is None:
        password = click.prompt("Password", hide_input=True)
    try:
        run(url, username, password, click.echo)
    except DemoFailed as error:
        raise click.ClickException(str(error)) from None


@cli.command()
@click.option("--url", required=True, help="postgresql://, sqlite:///, clickhouse:// or chdb:// URL to read.")
@click.option(
    "--tables", required=True, help="Comma-separated table names (schema.table or db.table allowed)."
)
@click.option(
    "--connector-id", default=None, help="Connector the tables belong to (default: the URL's scheme)."
)
@click.option("--project", "project_id", default=None, help="Project id (default: AIETL_DEFAULT_PROJECT).")
@click.option("--samples", type=click.IntRange(0, 100), default=0, help="Distinct sample values per column.")
@click.option("--interval", type=click.FloatRange(min=1), default=None, help="Seconds between observations.")
def observe(
    url: str,
    tables: str,
    connector_id: str | None,
    project_id: str | None,
    samples: int,
    interval: float | None,
) -> None:
    """Publish the live schema of tables as schema.observed (once, or every --interval seconds)."""
    from aietl.services.drift import observer

    settings = _settings(None)
    names = [name.strip() for name in tables.split(",") if name.strip()]
    try:
        coroutine = observer.run(
            settings,
            url=url,
            tables=names,
            project_id=project_id or settings.default_project,
            connector_id=connector_id or observer.dialect_of(url),
            samples=samples,
            interval_seconds=interval,
            report=lambda line: click.echo(line, err=True),
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(coroutine)
    except observer.ObserveError as error:
        raise click.ClickException(str(error)) from None


@cli.group()
def connections() -> None:
    """A project's pipeline run targets (the templates' connections), in this data dir's database.

    The URL of a new connection is read from AIETL_CONNECTION_URL or prompted for (hidden), never
    taken from the command line; it is stored sealed and never shown again.
    """


def _with_connections(project_id: str | None, action: Callable[[Any, str], Awaitable[Any]]) -> Any:
    """Run `action(connections, project)` with the templates service of a short-lived runtime."""
    from aietl.services.templates.service import service_of

    settings = _settings(None)

    async def run() -> Any:
        runtime = Runtime(settings)
        try:
            return await action(service_of(runtime).connections, project_id or settings.default_project)
        finally:
            await runtime.close()

    return asyncio.run(run())


_project_option = click.option(
    "--project", "project_id", default=None, help="Default: AIETL_DEFAULT_PROJECT."
)


@connections.command("list")
@_project_option
def connections_list(project_id: str | None) -> None:
    """Name, kind, origin and where it points (no password)."""
    for info in _with_connections(project_id, lambda registry, project: registry.list(project)):
        click.echo(f"{info.name}\t{info.kind}\t{info.origin}\t{info.summary}")


@connections.command("add")
@click.argument("name")
@_project_option
@click.option(
    "--url", envvar="AIETL_CONNECTION_URL", prompt=True, hide_input=True, help="Prompted when unset."
)
def connections_add(name: str, project_id: str | None, url: str) -> None:
    """Add a connection (postgresql://, clickhouse:// or sqlite:///<file name>)."""
    from aietl.services.templates.connections import BadConnection

    try:
        info = _with_connections(project_id, lambda registry, project: registry.create(project, name, url))
    except BadConnection as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"added {info.name} ({info.kind}: {info.summary})")


@connections.command("test")
@click.argument("name")
@_project_option
def connections_test(name: str, project_id: str | None) -> None:
    """Run SELECT 1 on it; a failure says only what kind of failure."""
    from aietl.services.templates.connections import ConnectionFailed, UnknownConnection

    try:
        seconds = _with_connections(project_id, lambda registry, project: registry.test(project, name))
    except (ConnectionFailed, UnknownConnection) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{name}: ok in {seconds:.3f} s")


@connections.command("delete")
@click.argument("name")
@_project_option
def connections_delete(name: str, project_id: str | None) -> None:
    from aietl.services.templates.connections import UnknownConnection

    try:
        _with_connections(project_id, lambda registry, project: registry.delete(project, name))
    except UnknownConnection as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"deleted {name}")


def main() -> None:
    cli(prog_name="aietl")


if __name__ == "__main__":
    main()
