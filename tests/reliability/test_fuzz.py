"""Schemathesis over every operation of the gateway's OpenAPI, authenticated as the administrator,
with all of schemathesis' default checks.

The gateway app is served by uvicorn on a loopback port inside the session loop, next to the
session runtime; Hypothesis drives it from a thread. Valid and invalid inputs alike must never get
a 5xx; every status an operation answers must be documented (401 without a token, 403/404 of
roles and projects, 400/413/422 of bodies, ...), and every response must match its schema and
content type; requests without the token must be refused. One departure from the defaults:
schema-valid input may get 422, because several rules cannot be said in JSON Schema (a name that
must exist, a type known to the dialect, one field or the other); such a 422 names the problem.
The number of generated cases is printed (run with `-s` to see it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok

from aietl.services.gateway.app import create_app
from aietl.services.runtime import Runtime
from tests.support import served

MAX_EXAMPLES = int(os.environ.get("AIETL_FUZZ_EXAMPLES", "6"))
ONLY = os.environ.get("AIETL_FUZZ_ONLY", "")  # e.g. "/templates/" to fuzz a part of the API
# schemathesis' default list plus 422: see the module's docstring
ACCEPTED_VALID_INPUT = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
ANSWERS_503_BY_DESIGN = {"GET /ready"}  # not ready yet is what it is for


@dataclass
class FuzzReport:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture
async def served_gateway(runtime: Runtime) -> AsyncIterator[tuple[str, dict]]:
    app = create_app(runtime, owns_runtime=False)
    async with served(app, lifespan="off") as url:
        yield url, app.openapi()


def fuzz(base_url: str, openapi: dict, headers: dict[str, str]) -> FuzzReport:
    """Every operation, positive then negative inputs; failures are collected, not stopped at."""
    config = schemathesis.Config.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_VALID_INPUT}}}
    )
    schema = schemathesis.openapi.from_dict(openapi, config=config)
    report = FuzzReport()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if ONLY not in operation.label:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                report.cases += 1
                excluded: list[CheckFunction] = (
                    [not_a_server_error] if operation.label in ANSWERS_503_BY_DESIGN else []
                )
                case.call_and_validate(
                    base_url=base_url, headers=headers, excluded_checks=excluded, timeout=15
                )

            started = time.perf_counter()
            try:
                run()
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
            except (Exception, BaseExceptionGroup) as failure:
                lines = str(failure).splitlines()
                first_lines = "\n".join(lines[:8] + [line for line in lines[8:] if "curl " in line])
                report.failures.append(
                    f"{operation.label} [{mode.value}]: {type(failure).__name__}: {first_lines}"
                )
            report.seconds[f"{operation.label} [{mode.value}]"] = time.perf_counter() - started
    return report


@pytest.mark.timeout(600)
async def test_gateway_openapi_fuzzing(served_gateway: tuple[str, dict], auth: dict[str, str]) -> None:
    base_url, openapi = served_gateway
    report = await asyncio.to_thread(fuzz, base_url, openapi, auth)
    operations = sum(len(methods) for methods in openapi["paths"].values())
    print(
        f"\nschemathesis: {report.cases} cases over {operations} operations, {len(report.failures)} failing"
    )
    for label, seconds in sorted(report.seconds.items(), key=lambda item: -item[1])[:8]:
        print(f"  {seconds:6.1f}s {label}")
    assert report.cases >= operations
    assert not report.failures, "\n\n".join(report.failures)
