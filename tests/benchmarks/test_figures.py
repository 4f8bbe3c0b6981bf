"""The report's figures, drawn by matplotlib from saved arrays: what they show, read off the figure before it is
saved (figures.save runs as it is)."""

import numpy as np
import pytest

from benchmarks import figures
from benchmarks.store import Record
from kdfd.result import JobResult


@pytest.fixture
def drawn(monkeypatch):
    """Every figure `figures.save` writes, kept open for the test to read."""
    kept = []
    real = figures.save

    def keep(fig, out, stem):
        kept.append(fig)
        fig.canvas.draw()
        return real(fig, out, stem)

    monkeypatch.setattr(figures, "save", keep)
    return kept


def one_epoch_record() -> Record:
    result = JobResult(majority_metrics={"dev": {"accuracy": 0.5}}, teacher_metrics_start={"dev": {"accuracy": 0.6}},
                       curves=[{"steps": 40, "loss": {"student/ce": 0.6, "student/kd": 0.1, "teacher/ce": 0.5},
                                "dev": {"student": {"dev": {"accuracy": 0.7}}, "teacher": {"dev": {"accuracy": 0.8}}}}])
    return Record(id="x", label="kdfd", config={"task": "synth-single", "seed": 3}, status="done", result=result)


def test_a_one_epoch_run_draws_its_losses_over_the_epochs_steps_and_its_teacher_from_its_start(tmp_path, drawn):
    figures.learning_curves(one_epoch_record(), tmp_path, "curves")
    (fig,) = drawn
    student_loss, _, dev = fig.axes[:3]
    for line in student_loss.get_lines():
        assert list(line.get_xdata()) == [0, 40]  # a level over the epoch's steps, not a dot at step 40
    lines = {ln.get_label(): ln for ln in dev.get_lines()}
    assert list(lines["teacher"].get_xdata()) == [0, 40] and list(lines["teacher"].get_ydata()) == [60.0, 80.0]
    assert "70.0" in [t.get_text() for t in dev.texts]  # the student's single evaluation, said


def test_tsne_names_the_classes_keeps_one_seed_in_its_title_and_is_cached_beside_its_npz(tmp_path, drawn, monkeypatch):
    rng = np.random.default_rng(0)
    reps = {"features": rng.normal(size=(60, 8)), "z_mu": rng.normal(size=(60, 4)), "labels": np.arange(60) % 2}
    source = tmp_path / "s1-abc.npz"
    np.savez(source, **reps)
    figures.tsne(reps, "synth-single, kdfd, seed 3", tmp_path, "t", False, ("not positive", "positive"), source)
    fig = drawn[-1]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["not positive", "positive"]
    title = fig._suptitle.get_text()
    assert title.count("seed") == 1 and "seed 3" in title
    cache = tmp_path / "s1-abc.tsne.npz"
    assert cache.is_file()

    def never(x):
        raise AssertionError("t-SNE recomputed although its cache is current")

    monkeypatch.setattr(figures, "embed", never)
    figures.tsne(reps, "synth-single, kdfd, seed 3", tmp_path, "t", False, None, source)
    first = drawn[-2].axes[0].collections[0].get_offsets()
    assert np.array_equal(drawn[-1].axes[0].collections[0].get_offsets(), first)  # the same embedding, read back
    assert [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()] == ["label 0", "label 1"]

    np.savez(source, **{**reps, "z_mu": reps["z_mu"] + 1})  # new representations: the cache no longer fits
    with pytest.raises(AssertionError, match="recomputed"):
        figures.tsne(reps, "x", tmp_path, "t", False, None, source)
