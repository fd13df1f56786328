"""The package type-checks: mypy, configured in pyproject.toml ([tool.mypy]), is clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)  # a cold cache (a clean clone, CI) takes a minute or so
def test_mypy_clean() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy"],  # files, strictness and cache dir: pyproject.toml
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"mypy found problems:\n{out.stdout}{out.stderr}"
