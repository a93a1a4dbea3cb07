"""Layer contracts: import-linter checks that imports only point down (see STYLE.md).

The contracts live in pyproject.toml ([tool.importlinter]); this test runs them and fails on
any broken contract, and checks once that the gate really catches a violation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def write_config(path: Path) -> None:
    """Write pyproject's [tool.importlinter] to ``path``, with external packages included.

    A forbidden contract naming packages outside citychain (httpx, sqlite3...) needs
    ``include_external_packages = true``; without it import-linter refuses to run at all.
    """
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"]
    lines = ["[tool.importlinter]"]
    settings = {key: value for key, value in config.items() if key != "contracts"}
    settings["include_external_packages"] = True
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    for contract in config["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in contract.items()]
    path.write_text("\n".join(lines) + "\n")


def run_lint_imports(config: Path, cwd: Path, pythonpath: Path | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, done.stdout + done.stderr


def test_import_contracts_are_kept(tmp_path: Path) -> None:
    config = tmp_path / "importlinter.toml"
    write_config(config)
    code, output = run_lint_imports(config, cwd=ROOT)
    assert code == 0, output
    assert "0 broken" in output, output


def test_the_gate_catches_a_violation(tmp_path: Path) -> None:
    # A copy of the package where core imports sqlite3 and reaches up into the application.
    shutil.copytree(ROOT / "src" / "citychain", tmp_path / "src" / "citychain",
                    ignore=shutil.ignore_patterns("__pycache__"))
    hashing = tmp_path / "src" / "citychain" / "core" / "hashing.py"
    hashing.write_text(hashing.read_text() + "\nimport sqlite3\nimport citychain.app\n")
    config = tmp_path / "importlinter.toml"
    write_config(config)
    code, output = run_lint_imports(config, cwd=tmp_path, pythonpath=tmp_path / "src")
    assert code != 0, output
    assert "Layers point one way BROKEN" in output, output
    assert "Core imports only the standard library and crypto BROKEN" in output, output
    assert "citychain.core.hashing -> sqlite3" in output, output
