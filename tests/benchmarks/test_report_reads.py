"""`bench report` reads each file once: on a copy of the committed glue-cpu records, every record, representations
file and checksum file under the results root is opened at most once (counted by the interpreter's `open` audit
event, which every open raises: builtins.open, io, os.open, numpy and zipfile alike)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

from ..conftest import ROOT

# Runs `bench report` with an audit hook that keeps every path opened; the figures are laid out but not rendered
# (rendering is what takes a report's time, and it reads nothing)
COUNTING = """
import json, os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(os.fsdecode(args[0]))
                 if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) else None)
import matplotlib.pyplot as plt
from benchmarks import cli, figures
figures.save = lambda fig, out, stem: plt.close(fig)
code = cli.main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(opened, f)
sys.exit(code)
"""


def test_bench_report_on_glue_cpu_opens_each_file_once(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "reports" / "glue-cpu" / "results", results)
    log = tmp_path / "opened.json"
    done = subprocess.run([sys.executable, "-c", COUNTING, str(log), "report", "--suite", "glue-cpu", "--results",
                           str(results), "--out", str(tmp_path / "out"), "--tasks", "mrpc", "--seeds", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    opened = Counter(p for p in json.loads(log.read_text()) if p.startswith(str(results)))
    twice = {p: n for p, n in opened.items() if n > 1}
    assert not twice, f"opened more than once: {twice}"
    records = {str(p) for p in results.glob("*/*/s*-*.json")}
    assert records <= set(opened)  # every record is read (the suite widened by what ran on it), each once
    assert any(p.endswith(".npz") and not p.endswith(".tsne.npz") for p in opened)  # and the representations
