"""Shared fixtures: the real GLUE folder (../shared/data/glue or $GLUE_DIR) and tiny real models."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported: the test run's two workers (pytest -n 2) share 2 cores, and two processes with one
# thread each is what 2 cores do best (reports/speed/workers.md); the `bench` processes a test starts inherit it. A
# test that needs other threads says so in its own environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]


def glue_dir() -> Path | None:
    """The GLUE folder `bench run` reads without --glue-dir (kdfd.data.resolve_glue_dir: the one rule)."""
    from kdfd.data import resolve_glue_dir
    from kdfd.errors import DataError

    try:
        return resolve_glue_dir(None)
    except DataError:  # GLUE_DIR names no folder: the GLUE-data tests skip, saying so
        return None


@pytest.fixture
def glue():
    d = glue_dir()
    if d is None:
        pytest.skip("no GLUE folder: set GLUE_DIR or place it at ../shared/data/glue")
    return d
