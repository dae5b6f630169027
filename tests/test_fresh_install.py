"""A user's install, not the test venv: the package alone in a new virtualenv imports every module.

The test extras (hypothesis ...) pull in packages fswl itself imports, so the
suite's own .venv hides an undeclared runtime dependency: this builds a new
virtualenv with `pip install CHECKOUT` and no extras, and imports every module
of fswl there. pip reuses its wheel cache, so nothing is fetched twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

#: A fresh venv, an isolated build and every dependency from pip's cache: well under this.
INSTALL_SECONDS = 600

#: Run inside the new venv: import each module of the installed fswl, name those that fail.
IMPORT_ALL = """
import importlib, importlib.util, pkgutil, sys
import fswl
failed = []
def unwalkable(name):
    failed.append(f"{name}: cannot walk: {sys.exc_info()[1]!r}")
for module in pkgutil.walk_packages(fswl.__path__, "fswl.", onerror=unwalkable):
    if module.name.endswith(".__main__"):
        continue  # it runs the CLI; its one import, fswl.cli.main, is walked anyway
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
print("FILE", fswl.__file__)
print("EXTRAS", importlib.util.find_spec("hypothesis") is not None)
for line in failed:
    print("FAILED", line)
"""


def package_copy(target: Path) -> Path:
    """What pip needs to build fswl, copied: an in-tree build/ could keep modules deleted since."""
    target.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / "fswl", target / "fswl", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def clean_env() -> dict[str, str]:
    """The caller's environment without whatever points Python at the test venv."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


def test_the_package_alone_imports_every_module(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(package_copy(tmp_path / "src"))],
        capture_output=True, text=True, env=env, timeout=INSTALL_SECONDS, cwd=tmp_path,
    )
    assert install.returncode == 0, f"pip install of the checkout failed:\n{install.stdout}{install.stderr}"
    # -I: not the checkout's fswl from the working directory, no user site packages.
    run = subprocess.run([str(python), "-I", "-c", IMPORT_ALL], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"FILE {venv}"), f"imported fswl from elsewhere: {lines[0]}"
    # Without this the check means nothing: the test extras are what hid sortedcontainers.
    assert "EXTRAS False" in lines, "the new virtualenv has the test extras (hypothesis)"
    failed = [line.removeprefix("FAILED ") for line in lines if line.startswith("FAILED ")]
    assert not failed, ("modules that do not import from a plain install (declare their imports "
                        "in setup.cfg install_requires):\n" + "\n".join(failed))

