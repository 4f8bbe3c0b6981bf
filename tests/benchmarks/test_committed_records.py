"""The committed records still belong to the suites that made them: a change that moved their jobs' ids (a config
field added into the id, a default changed) would silently orphan them, and `bench run` would redo them."""

import json
from pathlib import Path

import pytest

from benchmarks import runner  # noqa: F401  (registers the methods)
from benchmarks import suite as suites

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
SUITES = ["glue-cpu", "sweep-dim-cpu", "sweep-lambda-cpu", *sorted(p.stem for p in suites.SUITES_DIR.glob("protocol-*.toml"))]


def committed_records() -> list[Path]:
    return sorted(p for p in REPORTS.glob("*/results/*/*/s*-*.json"))


@pytest.mark.skipif(not committed_records(), reason="no committed records in this checkout")
def test_every_committed_record_is_a_job_of_a_committed_suite():
    ids = set()
    for name in SUITES:
        ids |= {j.id for j in suites.load(name).jobs}
    orphans = []
    for path in committed_records():
        record = json.loads(path.read_text())
        if record["id"] not in ids or path.stem.split("-", 1)[1] != record["id"]:
            orphans.append(f"{path.relative_to(ROOT)} ({record.get('suite')})")
    assert not orphans, f"records no suite expands to any more: {orphans}"
