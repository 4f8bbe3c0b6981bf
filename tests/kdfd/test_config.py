"""Job ids: switches added after records existed leave the ids of runs that do not turn them on unchanged."""

import dataclasses
import hashlib
import json

import pytest

from kdfd.config import RunConfig, TrainConfig, build, derived, nonempty
from kdfd.errors import ConfigError
from kdfd.models import ModelSpec

LATER = {"predict_test": True, "batching": "grouped", "group_size": 8, "teacher_cache": True, "compile": True,
         "eval_every": 23, "teacher_seed": 1, "module_lr": 1e-3, "holdout": 0.1, "teacher_holdout": 0.2}
# what a run shows or keeps, never what it computes: out of the id at every value
OBSERVED = {"tensorboard": True, "save_model": True}


def config(**train) -> RunConfig:
    return RunConfig(task="rte", method="vanilla-kd", seed=1, student=ModelSpec("tiny"), teacher=ModelSpec("tiny"),
                     train=TrainConfig(**train))


def test_later_switches_at_their_defaults_leave_the_id_as_it_was():
    earlier = dataclasses.asdict(config())
    for name in [*LATER, *OBSERVED]:
        del earlier["train"][name]  # what a job's config held before these switches existed
    for role in ("student", "teacher"):
        del earlier[role]["finetuned"]
    blob = json.dumps(earlier, sort_keys=True, separators=(",", ":"), default=str)
    assert config().hash() == hashlib.sha256(blob.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name,value", sorted(LATER.items()))
def test_turning_a_later_switch_on_gives_a_new_id(name, value):
    assert config(**{name: value}).hash() != config().hash()
    assert config(**{name: value}).to_dict()["train"][name] == value


def test_a_finetuned_teacher_gives_a_new_id_and_needs_a_checkpoint_used_whole():
    finetuned = dataclasses.replace(config(), teacher=ModelSpec("some/bert-mrpc", finetuned=True))
    assert finetuned.hash() != dataclasses.replace(config(), teacher=ModelSpec("some/bert-mrpc")).hash()
    assert finetuned.to_dict()["teacher"]["finetuned"] is True
    for spec in ({"name": "tiny", "finetuned": True}, {"name": "some/bert-mrpc", "layers": 3, "finetuned": True}):
        with pytest.raises(ConfigError, match="finetuned = true needs a fine-tuned checkpoint, used whole"):
            build(ModelSpec, spec, "[teacher]")


@pytest.mark.parametrize("name,value", sorted(OBSERVED.items()))
def test_an_observing_switch_changes_neither_the_id_nor_the_recorded_config(name, value):
    assert config(**{name: value}).hash() == config().hash()
    assert config(**{name: value}).to_dict() == config().to_dict()
    assert name not in config().to_dict()["train"]


@pytest.mark.parametrize("raw,message", [
    ({"batching": "sorted"}, "batching 'sorted' is not allowed (allowed: shuffle, grouped)"),
    ({"group_size": 0}, "group_size = 0 is not allowed (must be >= 1)"),
    ({"eval_every": -1}, "eval_every = -1 is not allowed (must be >= 0; 0: at epoch ends only)"),
    ({"module_lr": 0.0}, "module_lr = 0.0 is not allowed (must be > 0 or unset)"),
    ({"teacher_cache": "yes"}, "teacher_cache = 'yes' has type str, expected bool"),
])
def test_bad_batching_and_cache_settings_name_the_value_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as e:
        build(TrainConfig, raw, "suite x.toml [train]")
    assert message in str(e.value)


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str = nonempty()
    note: str = ""


@dataclasses.dataclass(frozen=True)
class File:
    title: str
    entries: tuple[Entry, ...] = ()
    where: str = derived("")


@pytest.mark.parametrize("raw,message", [
    ({}, "f.toml: missing key 'title' (needs: title)"),
    ({"title": "t", "where": "x"}, "f.toml: unknown key 'where' (allowed: title, entries)"),
    ({"title": "t", "entries": [{"name": "a"}, {"nam": "b"}]},
     "f.toml: entries #2: unknown key 'nam' (allowed: name, note)"),
    ({"title": "t", "entries": [{"name": ""}]}, "f.toml: entries #1: name must be a non-empty string, not ''"),
    ({"title": "t", "entries": ["a"]}, "f.toml: entries #1 = 'a' has type str, expected a table"),
    ({"title": 1}, "f.toml: title = 1 has type int, expected str"),
])
def test_build_checks_a_files_tables_as_dataclasses(raw, message):
    """The one validator of the TOML files (suites, a paper's tables and claims, paper.toml): required keys, keys a
    reader fills in refused, lists of tables built alike and counted from 1, empty names refused; one line each."""
    with pytest.raises(ConfigError) as e:
        build(File, raw, "f.toml")
    assert str(e.value) == message
    assert build(File, {"title": "t", "entries": [{"name": "a"}]}, "f.toml").entries == (Entry("a"),)
