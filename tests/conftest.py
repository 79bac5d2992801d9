from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
REAL = ROOT.parent / "shared" / "real-exports"
sys.path.insert(0, str(ROOT))  # bench/ (the synthetic generator) for property tests


@pytest.fixture
def write(tmp_path: Path):
    """Write bytes (or text) to a file in tmp_path and return its path."""

    def _write(name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        return path

    return _write
