"""Each image carries what its process imports: the Dockerfile installs `.[<extra>]`, so the
third-party packages a worker imports must come from the base dependencies or its own extra.

Imports are read statically: module-level imports of everything the process loads, plus imports inside
functions of the worker's own package (a store may import its driver lazily, but it still needs it).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy import project

FIRST_PARTY = ("aietl",)
IMAGE_BASE_EXTRAS: tuple[str, ...] = ()  # a worker serves /health through Starlette (services/operations.py)


def module_file(module: str) -> Path | None:
    base = project.ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(module: str, *, inside_functions: bool) -> set[str]:
    path = module_file(module)
    if path is None:
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: Sequence[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(
                    f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")
                )
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not inside_functions:
                continue
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([child for child in getattr(node, field, []) if isinstance(child, ast.AST)])

    visit(ast.parse(path.read_text()).body)
    return found


def third_party_imports(seeds: list[str], own_package: str | None) -> dict[str, str]:
    """Top-level third-party module -> the first-party module that imports it."""
    pending, seen = list(seeds), set()
    external: dict[str, str] = {}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        lazy_ok = own_package is not None and (module == own_package or module.startswith(own_package + "."))
        for name in imports_of(module, inside_functions=lazy_ok):
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                pending.append(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                external.setdefault(top, module)
    return external


@cache
def distributions_of_module() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def aietl_requirements(extras: set[str]) -> list[str]:
    """From pyproject.toml, not the installed metadata (an editable install keeps the extras it had)."""
    project_table = project.pyproject()["project"]
    optional = project_table["optional-dependencies"]  # type: ignore[index]
    return [*project_table["dependencies"], *(text for extra in extras for text in optional[extra])]  # type: ignore[index]


def requirement_closure(requirements: list[str]) -> set[str]:
    """Every distribution installed by `pip install <requirements>` (as far as this venv knows)."""
    installed: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        installed.add(name)
        if name == "aietl":
            dependencies = aietl_requirements(requirement.extras)
        else:
            try:
                dependencies = metadata.requires(requirement.name) or []
            except metadata.PackageNotFoundError:
                continue
        for text in dependencies:
            dependency = Requirement(text)
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append(dependency)
    return installed


def image_distributions(extra: str) -> set[str]:
    return requirement_closure([f"aietl[{','.join((*IMAGE_BASE_EXTRAS, extra))}]"])


def missing(external: dict[str, str], available: set[str]) -> list[str]:
    problems = []
    for module, importer in sorted(external.items()):
        dists = {canonicalize_name(d) for d in distributions_of_module().get(module, [])}
        if not dists:
            problems.append(f"{module} (imported by {importer}) is not installed at all")
        elif not dists & available:
            problems.append(
                f"{module} (imported by {importer}) comes from {sorted(dists)}, in no extra of the image"
            )
    return problems


def test_import_reader_follows_first_party_code() -> None:
    external = third_party_imports(["aietl.services.cli"], None)
    assert {"click", "uvicorn", "starlette"} <= set(external)
    assert "fastapi" not in external
    assert "asyncio" not in external


@pytest.mark.parametrize("worker", project.WORKER_NAMES)
def test_worker_image_has_every_package_its_worker_imports(worker: str) -> None:
    seeds = ["aietl.services.cli", "aietl.services.operations", f"aietl.services.{worker}.worker"]
    external = third_party_imports(seeds, own_package=f"aietl.services.{worker}")
    assert missing(external, image_distributions(worker)) == []


def test_gateway_and_migration_image_has_every_package_they_import() -> None:
    seeds = ["aietl.services.cli", "aietl.services.gateway.app", "aietl.shared.migrate"]
    for worker in project.WORKER_NAMES:
        for module in ("api", "tables", "worker"):
            if module_file(f"aietl.services.{worker}.{module}"):
                seeds.append(f"aietl.services.{worker}.{module}")
    external = third_party_imports(seeds, own_package=None)
    assert missing(external, image_distributions("all")) == []
