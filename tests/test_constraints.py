"""constraints.txt pins the versions the committed records were made with (their provenance.packages)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PINNED = {"kdfd-bench", "python"}  # the project itself; Python is named in the file's comment


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return dict(ln.split("==") for ln in (ln.split("#")[0].strip() for ln in lines) if ln)


def newest_record(folder: Path) -> dict:
    records = [json.loads(p.read_text()) for p in folder.rglob("s*-*.json")]
    return max((r for r in records if r.get("status") == "done"), key=lambda r: r["finished"])


def test_the_constraints_pin_what_the_newest_committed_glue_cpu_record_was_made_with():
    record = newest_record(ROOT / "reports" / "glue-cpu" / "results")
    made_with = {name: version.split("+")[0]  # torch's +cpu: a build of the pinned version (PEP 440 local label)
                 for name, version in record["provenance"]["packages"].items()
                 if name not in NOT_PINNED and version is not None}
    assert pins() == made_with
    assert f"Python was {record['provenance']['packages']['python']}" in (ROOT / "constraints.txt").read_text()
