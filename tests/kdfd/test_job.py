"""A job resolved once (`kdfd.job.resolve`) and checked against its models in one place (`check_models`)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from kdfd.config import RunConfig, TrainConfig
from kdfd.distiller import FROZEN, NONE, ONLINE, ModelInfo
from kdfd.errors import ConfigError
from kdfd.job import check_models, resolve
from kdfd.models import ModelSpec
from kdfd.registry import get_method

from ..conftest import ROOT

TEACHER = ModelSpec("tiny", layers=2, hidden=32)
STUDENT = ModelSpec("tiny", layers=1, hidden=16)


def _cfg(method: str, **changes) -> RunConfig:
    return RunConfig(**{"task": "synth-pair", "method": method, "seed": 1, "student": STUDENT, "teacher": TEACHER,
                        "train": TrainConfig(teacher_cache=True), **changes})


def test_a_job_resolves_to_its_task_method_typed_params_and_needs_with_its_config_normalised():
    job = resolve(_cfg("vanilla-kd", params={"temperature": 2.0}, method_version="0"))
    assert job.method is get_method("vanilla-kd") and job.task.name == "synth-pair"
    assert job.params == job.method.Params(temperature=2.0) and job.needs.teacher == FROZEN
    assert job.config.params == dataclasses.asdict(job.params)  # every default filled in, as the id hashes it
    assert job.config.method_version == job.method.version  # the method's own, whatever the config said
    assert job.config.train.teacher_cache and job.teacher == TEACHER

    plain = resolve(_cfg("finetune"))  # no teacher: no teacher model, nothing to cache, in the id too
    assert plain.needs.teacher == NONE and plain.teacher is None and not plain.train.teacher_cache
    online = resolve(_cfg("kdfd", params={"latent_dim": 8}))
    assert online.needs.teacher == ONLINE and not online.train.teacher_cache and online.teacher == TEACHER
    assert resolve(online.config) == online  # resolving a resolved config changes nothing


def test_typed_params_given_are_taken_as_they_are():
    params = get_method("vanilla-kd").Params(alpha=0.9)
    job = resolve(_cfg("vanilla-kd"), params)
    assert job.params is params and job.config.params["alpha"] == 0.9


def test_a_method_that_needs_a_teacher_without_one_is_an_error():
    with pytest.raises(ConfigError, match="method 'vanilla-kd' needs a teacher model, and none is configured"):
        resolve(_cfg("vanilla-kd", teacher=None))


def test_the_model_checks_run_in_one_place_on_the_models_shapes():
    job = resolve(_cfg("kdfd", params={"latent_dim": 24}))
    assert isinstance(check_models(job, ModelInfo(32, 2, 2), ModelInfo(32, 4, 2)), job.method)
    with pytest.raises(ConfigError, match="the student has 3 layers, more than its teacher's 2"):
        check_models(job, ModelInfo(32, 3, 2), ModelInfo(32, 2, 2))
    with pytest.raises(ConfigError, match="latent_dim = 24 is larger than the student's hidden size 16"):
        check_models(job, ModelInfo(16, 1, 2), ModelInfo(32, 2, 2))


def _sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for d in ("kdfd", "baselines", "benchmarks")
            for p in sorted((ROOT / d).glob("*.py"))}


def test_needs_and_the_depth_check_are_each_computed_in_one_place():
    """Outside the methods' own `needs`, one function asks a method what it needs (kdfd.distiller.needs_of, which
    kdfd.job.resolve calls once per job), and one raises on a student deeper than its teacher."""
    asks = {f for f, text in _sources().items() for line in text.splitlines()
            if re.search(r"\.needs\(", line) and not line.lstrip().startswith(("def ", "#", "return Needs"))}
    assert asks == {"kdfd/distiller.py"}
    depth = [f for f, text in _sources().items() if "more than its teacher's" in text]
    assert depth == ["kdfd/models.py"] and _sources()["kdfd/models.py"].count("more than its teacher's") == 1
