"""Template and query safety: SSTI against the Jinja2 sandbox, SQL injection through configs, and code
execution through on-demand feature expressions, via the services' public functions and REST.

A canary file proves that nothing ran: every payload that would execute code tries to create it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import sqlglot
from sqlglot import exp

from aietl.services.features.domain import FeatureError
from aietl.services.features.on_demand import compile_expression
from aietl.services.templates.domain.model import InvalidConfig, SqlDialect, TemplateError
from aietl.services.templates.domain.rendering import compile_template, render

CANARY = Path(f"/tmp/aietl-canary-{uuid.uuid4().hex}")
SHELL = f"touch {CANARY}"

SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__()[0].__init__.__globals__ }}",
    f"{{{{ cycler.__init__.__globals__.os.popen('{SHELL}').read() }}}}",
    f"{{{{ lipsum.__globals__['os'].popen('{SHELL}').read() }}}}",
    f"{{{{ joiner.__init__.__globals__.os.system('{SHELL}') }}}}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config.__class__.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['sys'].modules['os'].system('id') }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ range.__class__.__subclasses__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set x = config.update({'a': 1}) %}{{ x }}",
    "{{ [].append(1) }}",
    "{{ config.items().__iter__().__reduce_ex__(2) }}",
    "{{ '%s'.format.__globals__ }}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
]
# Legal template arithmetic that asks for more than the process can give.
TEMPLATE_BOMBS = [
    "{{ 9999999999999999999 * 'x' }}",
    "{{ 'x' * 400000000 }}",
    "{{ 9 ** (9 ** 9) }}",
    "{{ '%999999999s' % 'x' }}",
]

INJECTIONS = [
    'users"; DROP TABLE users; --',
    "users'; DROP TABLE users; --",
    "users` ; DROP TABLE users; --",
    "x\\'; DELETE FROM t; --",
    "a/*comment*/b",
    "1; SELECT pg_sleep(10)",
    "$$; DROP TABLE t; $$",
    "name\nUNION SELECT password FROM users",
]

ON_DEMAND_PAYLOADS = [
    f"__import__('os').system('{SHELL}')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "(lambda: 1)()",
    "[x for x in range(10)]",
    "amount.__class__",
    "eval('1+1')",
    "exec('import os')",
    "getattr(amount, '__class__')",
    "globals()",
    "amount[0]",
    "{'a': 1}",
    "f'{amount}'",
    "(x := 1)",
]
# Expressions that are legal but try to exhaust CPU or memory while being evaluated.
ON_DEMAND_BOMBS = ["9 ** 9 ** 9", "10 ** 100000", "2 ** 64 ** 64", "amount ** 99999999"]
STRING_BOMBS = ["'x' * 10 ** 12", "'x' * 400000000", "'%999999999s' % amount"]


@pytest.mark.parametrize("payload", SSTI)
def test_the_template_sandbox_blocks_ssti(payload: str) -> None:
    try:
        compile_template(payload)
        rendered = render(payload, "postgres", {"a": 1})
    except (TemplateError, InvalidConfig) as refused:
        assert "Traceback" not in str(refused)
    else:
        text = rendered.code
        for leak in ("<class", "__globals__", "builtins", "function", "root:", "uid="):
            assert leak not in text, (payload, text[:300])
    assert not CANARY.exists(), f"{payload!r} ran a shell command"


def test_template_arithmetic_cannot_exhaust_the_process() -> None:
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from aietl.services.templates.domain.model import InvalidConfig, TemplateError\n"
        "from aietl.services.templates.domain.rendering import render\n"
        "for code in sys.argv[1:]:\n"
        "    try:\n"
        "        render(code, 'postgres', {})\n"
        "    except (TemplateError, InvalidConfig):\n"
        "        continue\n"
        "    raise SystemExit(f'rendered {code}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *TEMPLATE_BOMBS],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr[-1_000:]


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "clickhouse"])
@pytest.mark.parametrize("value", INJECTIONS)
def test_config_values_cannot_inject_sql(dialect: SqlDialect, value: str) -> None:
    """Identifiers and literals from a config stay one identifier and one literal whatever they hold."""
    code = (
        "SELECT {{ config.column | ident }} FROM {{ config.table | qualified }} "
        "WHERE {{ config.column | ident }} = {{ config.value | literal }}"
    )
    config = {"column": value, "table": {"schema": value, "name": value}, "value": value}
    try:
        rendered = render(code, dialect, config)
    except InvalidConfig:
        return  # refused outright (e.g. NUL): also safe
    assert len(rendered.statements) == 1, rendered.code
    dialect_name = "postgres" if dialect == "postgres" else dialect
    [tree] = sqlglot.parse(rendered.code, read=dialect_name)
    assert isinstance(tree, exp.Select), rendered.code
    assert not list(tree.find_all(exp.Drop, exp.Delete, exp.Union, exp.Command)), rendered.code
    assert {column.name for column in tree.find_all(exp.Column)} == {value}
    table = tree.find(exp.Table)
    assert table is not None and table.name == value and table.db == value
    literals = [literal.this for literal in tree.find_all(exp.Literal) if literal.is_string]
    assert literals == [value], rendered.code


@pytest.mark.parametrize("payload", ON_DEMAND_PAYLOADS)
def test_on_demand_expressions_cannot_run_code(payload: str) -> None:
    with pytest.raises(FeatureError):
        compile_expression(payload)
    assert not CANARY.exists()


@pytest.mark.parametrize("bombs", [ON_DEMAND_BOMBS, STRING_BOMBS], ids=["numbers", "strings"])
def test_on_demand_expressions_cannot_exhaust_the_process(bombs: list[str]) -> None:
    """Evaluated in a child with 1 GiB of address space and 20 s: each must answer or refuse fast."""
    script = (
        "import resource, sys, time\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from aietl.services.features.domain import FeatureError\n"
        "from aietl.services.features.on_demand import compile_expression\n"
        "for source in sys.argv[1:]:\n"
        "    started = time.perf_counter()\n"
        "    try:\n"
        "        result = compile_expression(source).evaluate({'amount': 10})\n"
        "    except FeatureError:\n"
        "        result = 'refused'\n"
        "    assert time.perf_counter() - started < 2, source\n"
        "    print(source, '->', str(result)[:40])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *bombs],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr[-2_000:]


async def test_rest_refuses_ssti_templates_and_code_in_on_demand_views(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]], project_maintainer: dict[str, str]
) -> None:
    project, headers = project_user
    for payload in SSTI[:6]:
        created = await client.post(
            "/api/v1/advanced/templates/create",
            json={
                "template_id": f"ssti_{uuid.uuid4().hex[:8]}",
                "pattern": "full_load",
                "category": "transformation",
                "dialect": "postgres",
                "config_schema": {"type": "object"},
                "code": payload,
                "project_id": project,
            },
            headers=project_maintainer,  # template code needs a maintainer
        )
        assert created.status_code in (201, 422), created.text
        if created.status_code == 201:
            instantiated = await client.post(
                "/api/v1/advanced/templates/instantiate",
                json={
                    "template_id": created.json()["template_id"],
                    "config": {},
                    "project_id": project,
                    "pipeline_name": f"p_{uuid.uuid4().hex[:8]}",
                    "connection": "warehouse",
                },
                headers=headers,
            )
            assert 400 <= instantiated.status_code < 500, (
                payload,
                instantiated.status_code,
                instantiated.text,
            )
    for payload in ON_DEMAND_PAYLOADS[:5]:
        response = await client.post(
            "/api/v1/advanced/features/on-demand-views",
            params={"project_id": project},
            json={
                "name": f"odv_{uuid.uuid4().hex[:8]}",
                "outputs": {"y": {"feature_type": "float64", "expression": payload}},
            },
            headers=headers,
        )
        assert response.status_code == 422, (payload, response.text)
    unknown = await client.post(
        "/api/v1/advanced/features/on-demand-views",
        params={"project_id": project},
        json={
            "name": f"odv_{uuid.uuid4().hex[:8]}",
            "outputs": {"y": {"feature_type": "float64"}},
            "transform": "os.system",
        },
        headers=headers,
    )
    assert 400 <= unknown.status_code < 500, unknown.text
    assert not await asyncio.to_thread(CANARY.exists)
