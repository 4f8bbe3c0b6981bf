"""The teacher-output cache: a cached frozen teacher gives every offline method the same losses as the live teacher,
within float16 rounding; the cache is found again by the teacher's weights and the tokenized examples."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdfd import synthetic
from kdfd.data import EncodedDataset, make_loader
from kdfd.distiller import FROZEN
from kdfd.errors import ConfigError
from kdfd.registry import METHODS, load_methods
from kdfd.tasks import get_task
from kdfd.teacher_cache import example_key, weights_key
from tests.kdfd.helpers import STUDENT, TEACHER, setup

OFFLINE = sorted(name for name, cls in load_methods().items() if cls.needs(cls.Params()).teacher == FROZEN)


def dataset(n=48, task_name="synth-pair"):
    task = get_task(task_name)
    return EncodedDataset(list(synthetic.generate(task_name, "train"))[:n], task, synthetic.build_tokenizer(), 64)


def stage_losses(engine, distiller, b, t) -> list[dict[str, float]]:
    """The student's losses at every stage of the method for one batch and teacher forward."""
    out = []
    for stage in engine.stages:
        distiller.stage = stage
        s = engine.forward(engine.student, b)
        out.append({k: float(v) for k, v in distiller.student_loss(b, s, t).items()})
    return out


@pytest.mark.parametrize("name", OFFLINE)
def test_cached_targets_give_the_live_teachers_losses_within_half_precision(name, tmp_path):
    assert {"vanilla-kd", "bert-pkd", "internal-kd", "tinybert"} <= set(OFFLINE)
    try:
        engine, distiller, student, teacher = setup(METHODS[name])
    except ConfigError as e:  # a method that mixes the two models' layers (theseus) needs the teacher's shapes
        assert "same shapes" in str(e), e
        wide = dataclasses.replace(STUDENT, hidden=TEACHER.hidden, heads=TEACHER.heads,
                                   intermediate=TEACHER.intermediate)
        engine, distiller, student, teacher = setup(METHODS[name], student_spec=wide)
    with torch.no_grad():
        teacher.head.weight.mul_(30.0)  # a random tiny head gives near-equal logits; these differ by example
    ds = dataset()
    engine.use_teacher_cache(tmp_path, ds)
    # a grouped training batch: examples of several lengths, padded to the longest
    b = next(iter(make_loader(ds, 16, shuffle=True, seed=3, batching="grouped", group_size=2)))
    assert len(set(b["attention_mask"].sum(1).tolist())) > 1
    student.eval()  # no dropout: the two passes see the same student
    with torch.no_grad():
        teacher.eval()
        live = engine.forward(teacher, b)
        cached = engine.teacher_targets.forward(b, engine.device)
        mask = b["attention_mask"].bool()
        torch.testing.assert_close(cached.logits, live.logits, rtol=2e-3, atol=2e-3)
        for field in ("hidden_states", "attentions", "attention_scores"):
            if getattr(live, field) is None:
                assert getattr(cached, field) is None, f"{field} cached though {name} did not declare it"
                continue
            for c, lv in zip(getattr(cached, field), getattr(live, field)):
                if field == "hidden_states":
                    c, lv = c[mask], lv[mask]
                else:  # real query and key positions only
                    pair = mask[:, None, :, None] & mask[:, None, None, :]
                    c, lv = c[pair.expand_as(c)], lv[pair.expand_as(lv)]
                torch.testing.assert_close(c, lv, rtol=5e-3, atol=5e-3)
        for got, want in zip(stage_losses(engine, distiller, b, cached), stage_losses(engine, distiller, b, live)):
            assert got.keys() == want.keys()
            for k in want:
                assert got[k] == pytest.approx(want[k], rel=5e-3, abs=1e-4), (name, k)


def test_the_cache_is_found_again_and_keyed_by_weights_and_tokens(tmp_path):
    engine, distiller, student, teacher = setup(METHODS["vanilla-kd"])
    ds = dataset(40)
    first = engine.use_teacher_cache(tmp_path, ds)
    assert first["computed"] == 40 and first["found"] == 0
    again = engine.use_teacher_cache(tmp_path, dataset(48))  # 40 of them seen before
    assert again["file"] == first["file"] and again["found"] == 40 and again["computed"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == [first["file"], first["file"] + ".sha256"]
    key = weights_key(teacher)
    with torch.no_grad():
        teacher.head.bias.add_(1.0)
    assert weights_key(teacher) != key
    changed = engine.use_teacher_cache(tmp_path, ds)
    assert changed["file"] != first["file"] and changed["computed"] == 40
    assert example_key([1, 2, 3], [0, 0, 1]) != example_key([1, 2, 3], [0, 1, 1]) != example_key([1, 2, 3], None)


@pytest.mark.parametrize("damage", ["replaced", "one byte flipped"])
def test_a_damaged_cache_is_moved_aside_and_rebuilt(tmp_path, capsys, damage):
    engine, *_ = setup(METHODS["vanilla-kd"])
    ds = dataset(16)
    first = engine.use_teacher_cache(tmp_path, ds)
    path = tmp_path / first["file"]
    data = bytearray(path.read_bytes())
    if damage == "replaced":
        data = bytearray(b"not a torch file")
    else:  # inside a tensor: torch.load would read it without complaint, the checksum does not
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    again = engine.use_teacher_cache(tmp_path, ds)
    assert again["computed"] == 16
    assert (tmp_path / (first["file"] + ".corrupt")).read_bytes() == data
    assert f"teacher cache {path} is damaged: checksum mismatch" in capsys.readouterr().out
    assert engine.use_teacher_cache(tmp_path, ds)["found"] == 16  # rebuilt with a checksum of its own


def test_only_a_frozen_teacher_is_cached(tmp_path):
    engine, *_ = setup(METHODS["kdfd"], METHODS["kdfd"].Params(latent_dim=8))
    with pytest.raises(ValueError, match="only a frozen teacher"):
        engine.use_teacher_cache(tmp_path, dataset(8))


def test_kd_from_the_cache_trains_the_student_as_kd_from_the_live_teacher(tmp_path):
    """The real CLI twice on a tiny suite, vanilla KD with the live teacher and from the cache: the same student
    metrics; losses within float16 rounding of the teacher's logits."""
    from tests.benchmarks.helpers import bench, records, tiny_suite, tiny_train

    results = tmp_path / "results"  # one root: the second suite finds the first one's teacher (the same job)
    for cache in (False, True):
        suite = tmp_path / f"cache-{cache}.toml"
        suite.write_text(tiny_suite(methods=("vanilla-kd",), train=tiny_train(teacher_cache=cache), methods_tables=""))
        run = bench("run", "--suite", str(suite), "--results", str(results), "--no-progress")
        assert run.returncode == 0, run.stderr
    runs = {r.config["train"].get("teacher_cache", False): r for r in records(results, "vanilla-kd")}
    assert len(records(results)) == 3  # one teacher, two students
    live, cached = runs[False], runs[True]
    assert live.result.teacher_cache is None
    assert cached.result.teacher_cache["computed"] == 320 and cached.result.teacher_cache["found"] == 0
    assert (results / "synth-single" / "teacher-cache" / cached.result.teacher_cache["file"]).is_file()
    assert cached.result.metrics == live.result.metrics
    for a, b in zip(cached.result.curves, live.result.curves):
        for term, value in b["loss"].items():
            assert a["loss"][term] == pytest.approx(value, rel=1e-3, abs=1e-4), term
