"""The distribution installs one import package, `aietl`: a user's own `services` or `shared` package
must not be shadowed (nor shadow ours) when AI-ETL is installed beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy import project


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-qw", str(out), "."],
        cwd=project.ROOT,
        check=True,
        timeout=300,
    )
    (built,) = out.glob("aietl-*.whl")
    return built


def test_the_wheel_holds_only_the_aietl_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"aietl"}
    # the links are followed: the services' and shared code, data files and migrations are inside
    for expected in (
        "aietl/services/cli.py",
        "aietl/services/drift/api.py",
        "aietl/shared/events/__init__.py",
        "aietl/services/drift/domain/rename_model.json",
        "aietl/services/vector_sink/models/minilm-l6-v2-m2v-256/model.safetensors",
    ):
        assert expected in names, expected
    assert any(name.startswith("aietl/shared/migrations/versions/") for name in names)
    assert any(name.startswith("aietl/services/templates/builtin/") for name in names)
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "aietl = aietl.services.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_package_imports_from_the_wheel_beside_a_users_services_package(
    wheel: Path, tmp_path: Path
) -> None:
    """Unpacked first on the path, next to a user's own top-level `services` and `shared` packages."""
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    for name in ("services", "shared"):
        (tmp_path / "site" / name).mkdir()
        (tmp_path / "site" / name / "__init__.py").write_text(f"USERS = {name!r}\n")
    probe = (
        "import aietl.services.cli, aietl.shared.settings, services, shared\n"
        "print(aietl.services.cli.__file__)\n"
        "print(services.USERS, shared.USERS)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    answer = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr
    cli_file, users = answer.stdout.splitlines()
    assert Path(cli_file).is_relative_to(tmp_path / "site")
    assert users == "services shared"


@pytest.mark.parametrize("bare", ["services", "shared"])
def test_the_bare_names_of_a_development_checkout_refuse_to_load(bare: str) -> None:
    """The repository root is on the path of a development install: loading our code under a second
    name would make two copies of every class (an exception of one is not caught as the other)."""
    answer = subprocess.run(
        [sys.executable, "-c", f"import {bare}"], cwd=project.ROOT, capture_output=True, text=True, timeout=60
    )
    assert answer.returncode != 0
    assert f"import aietl.{bare}, not {bare}" in answer.stderr
