"""The real `bench` command in a subprocess, and small suite files for the runner's tests."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import store
from benchmarks.store import Record


def tiny_suite(methods=("kdfd",), seeds=(1,), train: dict | None = None, description: str | None = None,
               methods_tables: str = "[method.kdfd]\nlatent_dim = 8\n") -> str:
    """A suite file on synthetic data with tiny BERTs (teacher 2 x 32, student 1 x 16). The method tables come
    last, so a test can append a key to the last one."""
    head = f"description = {json.dumps(description)}\n" if description else ""
    head += (f"tasks = [\"synth-single\"]\nseeds = {json.dumps(list(seeds))}\nmethods = {json.dumps(list(methods))}\n"
             'data_source = "synthetic"\n[teacher]\nname = "tiny"\nlayers = 2\nhidden = 32\n'
             '[student]\nname = "tiny"\nlayers = 1\nhidden = 16\n')
    if train:
        head += "[train]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in train.items())  # TOML values
    return head + methods_tables


def tiny_train(**changes) -> dict:
    """The `[train]` table of the runner's tests: a few steps each, 2 epochs for the student."""
    return {"epochs": 2, "teacher_epochs": 1, "batch_size": 32, "max_length": 32, "lr": 1e-3, "teacher_lr": 1e-3,
            "max_train_examples": 320, "max_eval_examples": 64, **changes}


# KDFD: the method with the most state to resume (online teacher, VAE sampling, two optimizers)
RESUMABLE_SUITE = tiny_suite(description="resume test", train=tiny_train())


def bench(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def records(results: Path, method: str | None = None) -> list[Record]:
    """Every job record under a results root (the runner's state files under .slurm/ left out), read by the store;
    `method`: its students' only."""
    out = [store.read(p) for p in sorted(Path(results).rglob("s[0-9]*-*.json"))]
    return [r for r in out if method is None or r.method == method and r.role != "teacher"]


def same_training(a: Record, b: Record) -> bool:
    """Two records trained alike: equal metrics and equal per-epoch curves (losses, dev metrics), timings aside."""
    def strip(curves):
        return [{k: v for k, v in c.items() if not k.endswith("seconds")} for c in curves]

    return a.result.metrics == b.result.metrics and strip(a.result.curves) == strip(b.result.curves)


# The start of a `python -c` program in which torch cannot be imported: a finder that refuses it
# (sys.modules['torch'] = None would also break scipy's probe of it).
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("no torch here")
sys.meta_path.insert(0, NoTorch())
"""
