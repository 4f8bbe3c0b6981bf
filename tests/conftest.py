"""Shared fixtures: the real GLUE folder (../shared/data/glue or $GLUE_DIR) and tiny real models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def glue_dir() -> Path | None:
    for candidate in (os.environ.get("GLUE_DIR"), ROOT.parent / "shared" / "data" / "glue"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def glue():
    d = glue_dir()
    if d is None:
        pytest.skip("no GLUE folder: set GLUE_DIR or place it at ../shared/data/glue")
    return d
