"""The run context: one frozen object for everything about a run that is not a job, checked where it is made, and
the same object in a SLURM task as in the process that submitted it."""

import json
import pickle
import subprocess
import sys

import pytest

from benchmarks import store
from benchmarks.options import RunContext, SlurmOptions
from kdfd.errors import ConfigError

from ..conftest import ROOT
from .helpers import tiny_suite, tiny_train


@pytest.mark.parametrize("changes,message", [
    ({"checkpoint_every": 0}, "--checkpoint-every 0 is not allowed (must be >= 1 step)"),
    ({"executor": "pbs"}, "unknown executor 'pbs' (allowed: local, slurm)"),
    ({"jobs_per_task": 0}, "--jobs-per-task 0 is not allowed (must be >= 1)"),
])
def test_a_bad_run_setting_is_one_line_naming_it(tmp_path, changes, message):
    with pytest.raises(ConfigError) as e:
        RunContext(tmp_path, **changes)
    assert str(e.value) == message


def test_the_context_is_frozen_and_survives_pickling_whole(tmp_path):
    ctx = RunContext(str(tmp_path), glue_dir="/glue", checkpoint_every=7, deterministic=True, tensorboard=True,
                     executor="slurm", slurm=SlurmOptions(cpus=2, time=5, signal_delay_s=30), jobs_per_task=3)
    assert ctx.results == tmp_path  # a str becomes a Path
    with pytest.raises(AttributeError):
        ctx.checkpoint_every = 1
    assert pickle.loads(pickle.dumps(ctx)) == ctx
    assert ctx.replace(progress=False) == RunContext(
        tmp_path, glue_dir="/glue", checkpoint_every=7, deterministic=True, progress=False, tensorboard=True,
        executor="slurm", slurm=SlurmOptions(cpus=2, time=5, signal_delay_s=30), jobs_per_task=3)


TASK = """
import json, pickle, os, sys
from benchmarks import slurm, suite as suites
from benchmarks.options import RunContext
suite = suites.load(sys.argv[1])
ctx = RunContext(sys.argv[2], checkpoint_every=3, deterministic=True, progress=False)
task, name, jobs, ctx = pickle.loads(pickle.dumps((slurm.TaskRunner(), suite.name, suite.jobs, ctx)))  # as submitit
print(json.dumps({"statuses": task(name, jobs, ctx), "env": sorted(k for k in os.environ if "DETERMINISTIC" in k)}))
"""


def test_a_slurm_task_runs_its_jobs_with_the_runs_context_as_submitit_hands_it_over(tmp_path):
    """The task function SLURM runs, called with its pickled arguments in a fresh process (no cluster needed):
    determinism reaches the job through the context, not the environment, and the record says where it ran."""
    suite = tmp_path / "task.toml"
    suite.write_text(tiny_suite(methods=("finetune",), methods_tables="",
                                train=tiny_train(epochs=1, max_train_examples=64)))
    results = tmp_path / "results"
    out = subprocess.run([sys.executable, "-c", TASK, str(suite), str(results)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    told = json.loads(out.stdout.strip().splitlines()[-1])
    assert told == {"statuses": ["done"], "env": []}
    (path,) = results.rglob("s1-*.json")
    record = store.read(path)
    assert record.result.deterministic is True and record.executor["kind"] == "slurm"
