"""The package stays ruff- and mypy-clean (it ships py.typed): a regression fails here, naming the
file and line, rather than in a reviewer's terminal."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:  # pragma: no cover - the dev extra installs both
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return str(path)


def test_ruff_clean():
    out = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-5000:]


def test_mypy_clean():
    out = subprocess.run([_tool("mypy"), "src/vlmrec"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-5000:]
