"""The real `bench` command in a subprocess, and small suite files for the runner's tests."""

import json
import subprocess
import sys
from pathlib import Path

# KDFD: the method with the most state to resume (online teacher, VAE sampling, two optimizers)
RESUMABLE_SUITE = """
description = "resume test"
tasks = ["synth-single"]
seeds = [1]
methods = ["kdfd"]
data_source = "synthetic"
[teacher]
name = "tiny"
layers = 2
hidden = 32
[student]
name = "tiny"
layers = 1
hidden = 16
[train]
epochs = 2
teacher_epochs = 1
batch_size = 32
max_length = 32
lr = 1e-3
teacher_lr = 1e-3
max_train_examples = 320
max_eval_examples = 64
[method.kdfd]
latent_dim = 8
"""


def bench(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def records(results: Path, method: str | None = None) -> list[dict]:
    """Every job record under a results root (the runner's state files under .slurm/ left out)."""
    out = [json.loads(p.read_text()) for p in sorted(Path(results).rglob("s[0-9]*-*.json"))]
    return [r for r in out if method is None or r["method"] == method and r["role"] != "teacher"]


def same_training(a: dict, b: dict) -> bool:
    """Two records trained alike: equal metrics and equal per-epoch curves (losses, dev metrics), timings aside."""
    def strip(curves):
        return [{k: v for k, v in c.items() if not k.endswith("seconds")} for c in curves]

    return a["metrics"] == b["metrics"] and strip(a["curves"]) == strip(b["curves"])
