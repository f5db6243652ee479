"""The upgrade example runs end to end (synthetic data) and prints every step's outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "upgrade.py"


def test_upgrade_example_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert "model v2: COMPATIBLE" in out
    assert "model learnable: INCOMPATIBLE" in out and "promotion refused: INCOMPATIBLE_MODEL" in out
    assert "with a procrustes query adapter" in out
    assert "switched: items -> items_learnable" in out and "rolled back: items -> items_v1" in out
