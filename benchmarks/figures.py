"""The report's figures, drawn from saved records and representation files only (nothing is trained here).

- Fig. 3: covariance matrices of the first 16 dimensions of the student's raw feature and of its z_mu, side by side.
- Fig. 4: t-SNE (a fixed random state) of the raw feature and of z_mu on the fixed dev sample, coloured by gold label
  (the task's class names); each embedding is cached beside the .npz it comes from (`<record stem>.tsne.npz`).
- Fig. 5: the task score against a swept method parameter (the paper's `swept`, `benchmarks.paper`): every seed, the
  mean and a band of one std over seeds, for each such parameter with several values among the report's runs.
- Learning curves: every loss term of the teacher and the student, and the dev score, against steps.
Each is written as .png and .pdf.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kdfd.metrics import score  # noqa: E402
from kdfd.tasks import get_task  # noqa: E402

if TYPE_CHECKING:
    from .store import Record


def save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:  # no creation date in the PDF: a regenerated report changes only where its figures do
        fig.savefig(p, dpi=120, bbox_inches="tight", metadata={"CreationDate": None} if p.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def covariance(reps: dict[str, np.ndarray], title: str, out: Path, stem: str, dims: int = 16) -> list[Path]:
    """Fig. 3: the covariance of the first `dims` dimensions of the raw feature h and of z_mu ([N, D] each, the fixed
    dev sample), as heatmaps on a colour scale symmetric about zero (seaborn)."""
    import seaborn as sns

    names = [n for n in ("features", "z_mu") if n in reps]
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.6), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes[0], names):
        x = reps[name][:, :dims].astype(np.float64)
        cov = np.cov(x, rowvar=False)
        off = cov[~np.eye(len(cov), dtype=bool)]
        sns.heatmap(cov, ax=ax, cmap="RdBu_r", center=0.0, vmin=-(np.abs(cov).max() or 1.0), square=True,
                    vmax=np.abs(cov).max() or 1.0, xticklabels=2, yticklabels=2, cbar_kws={"fraction": 0.046})
        ax.tick_params(axis="y", rotation=0)
        ax.set_title(f"{'raw feature' if name == 'features' else 'z_mu'}: first {x.shape[1]} dims\n"
                     f"mean |off-diagonal| / mean diagonal = {np.abs(off).mean() / np.abs(np.diag(cov)).mean():.2f}")
        ax.set_xlabel("dimension")
        ax.set_ylabel("dimension")
    fig.suptitle(f"Covariance of the student's representation, {title}")
    return save(fig, out, stem)


TSNE_CACHE = ".tsne.npz"  # beside the representations' .npz: `<record stem>.tsne.npz`
TSNE_VERSION = 1  # bump when the embedding's settings below change: cached ones are then recomputed


def embed(x: np.ndarray) -> np.ndarray:
    """The 2-D t-SNE of [N, D] (a fixed random state, PCA init: the same representations, the same picture)."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=0,
                init="pca").fit_transform(x.astype(np.float32))


def embeddings(reps: dict[str, np.ndarray], names: list[str], source: Path | None,
               digest: str | None = None) -> dict[str, np.ndarray]:
    """The t-SNE of each named representation, read from the cache beside `source` (the representations' .npz)
    when it was made from that very file, else computed and kept there (t-SNE is most of a report's time). A cache
    that does not read whole (a disk fault) is computed again and replaced: a cache, never a result, it is not named
    as damaged. A cache that cannot be written (a read-only results root) is skipped. `digest`: the SHA-256 of
    `source`, where the caller has it (then `source` is not read)."""
    import hashlib
    import io

    from kdfd.files import atomic_write, damage

    if source is None:
        return {n: embed(reps[n]) for n in names}
    digest = (digest or hashlib.sha256(Path(source).read_bytes()).hexdigest())[:16]
    cache = Path(source).with_suffix(TSNE_CACHE)
    key = f"{TSNE_VERSION}-{digest}"
    try:
        data = cache.read_bytes() if cache.is_file() else b""
        if damage(cache, data=data) is None:  # its members' CRCs: a changed byte in an embedding loads without a word
            with np.load(io.BytesIO(data)) as z:
                if str(z["key"]) == key and all(n in z.files for n in names):
                    return {n: z[n] for n in names}
    except Exception:  # a zip whose CRCs hold and whose content is no array file: computed again, replaced
        pass
    out = {n: embed(reps[n]) for n in names}
    try:
        atomic_write(cache, lambda f: np.savez_compressed(f, key=np.array(key), **out))
    except OSError:
        pass
    return out


def tsne(reps: dict[str, np.ndarray], title: str, out: Path, stem: str, regression: bool,
         class_names: tuple[str, ...] | None = None, source: Path | None = None, digest: str | None = None
         ) -> list[Path]:
    """Fig. 4: the t-SNE of the raw feature and of z_mu, coloured by gold label (named by `class_names`) or score.
    `source`: the .npz the representations came from, beside which the embedding is cached; `digest`: its SHA-256,
    where the caller has it."""
    names = [n for n in ("features", "z_mu") if n in reps]
    labels = reps["labels"]
    emb_of = embeddings(reps, names, source, digest)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.8), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes[0], names):
        emb = emb_of[name]
        if regression:
            sc = ax.scatter(emb[:, 0], emb[:, 1], c=labels, cmap="viridis", s=8)
            fig.colorbar(sc, ax=ax, fraction=0.046, label="gold score")
        else:
            for lab in np.unique(labels):
                m = labels == lab
                named = class_names[int(lab)] if class_names and int(lab) < len(class_names) else f"label {int(lab)}"
                ax.scatter(emb[m, 0], emb[m, 1], s=8, label=named)
            ax.legend(markerscale=2, fontsize=8, title="gold label", title_fontsize=8)
        ax.set_title(f"{'raw feature' if name == 'features' else 'z_mu'} ({reps[name].shape[1]} dims)")
        ax.set_xticks([])
        ax.set_yticks([])
    # the run's seed is in `title`; t-SNE's own random state is fixed (embed) and not a seed of the run
    fig.suptitle(f"t-SNE of the student's representation, {title}")
    return save(fig, out, stem)


def learning_curves(record: Record, out: Path, stem: str) -> list[Path]:
    """Loss terms and dev score against training steps: every `eval_every` steps when the record has step curves
    (window means of the loss terms), else at epoch ends (epoch means). The dev panel marks the majority class's
    score; a student on that line has learned nothing."""
    task, result = get_task(record.task), record.result
    points = result.step_curves or result.curves
    by_step = bool(result.step_curves)
    xs = [c["steps"] if not by_step else c["step"] for c in points]
    roles = sorted({k.split("/")[0] for c in points for k in c["loss"]})
    fig, axes = plt.subplots(1, len(roles) + 1, figsize=(4.8 * (len(roles) + 1), 4.0), squeeze=False,
                             layout="constrained")
    for ax, role in zip(axes[0], roles):
        terms = sorted({k for c in points for k in c["loss"] if k.startswith(role + "/")})
        for term in terms:
            ys = [c["loss"].get(term, np.nan) for c in points]
            ys = [y if y > 0 else np.nan for y in ys]
            if by_step:
                ax.plot(xs, ys, marker="o", label=term.split("/")[1])
            else:  # an epoch mean covers the epoch's steps: a level over them (one epoch: a segment, not a dot)
                ax.step([0, *xs], [ys[0], *ys], where="pre", label=term.split("/")[1])
        ax.set_yscale("log")  # the VAE terms are orders of magnitude above CE and KD
        ax.set_title(f"{role} loss terms ({'window' if by_step else 'epoch'} means, log scale)")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    ax = axes[0][-1]
    for role in ("student", "teacher"):
        if all(role in c["dev"] for c in points):
            dev_x, dev_y = xs, [100 * score(task, c["dev"][role]) for c in points]
            start = result.teacher_metrics_start if role == "teacher" else None
            if start:  # where the teacher began (step 0): one epoch still draws a line
                dev_x, dev_y = [0, *dev_x], [100 * score(task, start), *dev_y]
            ax.plot(dev_x, dev_y, marker="o", label=role)
            if len(dev_x) == 1:  # a single evaluation: its value said, not only a dot
                ax.annotate(f"{dev_y[0]:.1f}", (dev_x[0], dev_y[0]), textcoords="offset points", xytext=(6, 4),
                            fontsize=8)
    if result.majority_metrics:
        ax.axhline(100 * score(task, result.majority_metrics), color="grey", ls="--", label="majority class")
    ax.set_title(f"dev score ({', '.join(task.metrics)})")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    fig.suptitle(f"Learning curves: {record.label} on {record.task}, seed {record.seed}")
    return save(fig, out, stem)


def sweep(points: dict[float, list[float]], label: str, title: str, out: Path, stem: str,
          floor: float | None = None) -> list[Path]:
    """Fig. 5: the score against a swept parameter (`label`: its axis label). points: parameter value -> task scores
    over seeds (0-1). The values sit evenly spaced, as in the paper (the dimensions halve); each seed is a dot, the
    line the mean over seeds and the band its sample std (seaborn). floor: the majority class's score (points), a
    dashed line."""
    import pandas as pd
    import seaborn as sns

    xs = sorted(points)
    df = pd.DataFrame([{"position": i, "score": 100 * s} for i, x in enumerate(xs) for s in points[x]])
    fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
    sns.lineplot(data=df, x="position", y="score", estimator="mean", errorbar="sd", marker="o", ax=ax)
    state = np.random.get_state()  # seaborn jitters from numpy's global generator: the same records, the same dots
    np.random.seed(0)
    sns.stripplot(data=df, x="position", y="score", native_scale=True, color="0.35", size=4, jitter=0.08, ax=ax)
    np.random.set_state(state)
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", lw=1, label="majority class")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_xlabel(label)
    ax.set_ylabel("dev score (mean ± std over seeds)")
    ax.set_title(title)
    return save(fig, out, stem)


def seed_dots(scores, task: str, order: list[str], out: Path, stem: str, floor: float | None = None,
              interval: str = "t") -> list[Path]:
    """Each method's seeds as dots, with the mean and its 95% interval (seaborn), methods in Table 1's order.
    scores: a DataFrame with columns method, seed, score (points); floor: the majority class's score; interval:
    "t" (Student-t, as the verdicts) or "percentile" (seaborn's bootstrap)."""
    import seaborn as sns

    present = [m for m in order if m in set(scores["method"])]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(present) + 1.5), 3.8), layout="constrained")
    state = np.random.get_state()  # seaborn jitters from numpy's global generator: the same records, the same dots
    np.random.seed(0)
    sns.stripplot(data=scores, x="method", y="score", order=present, color="0.45", size=5, jitter=0.15, ax=ax)
    np.random.set_state(state)
    from .stats import MIN_INTERVAL_SEEDS, check_interval, t_interval

    check_interval(interval)

    def t_bar(v):  # no bar below the seeds an interval needs: a point alone says "no interval"
        return t_interval(v) if len(v) >= MIN_INTERVAL_SEEDS else (np.nan, np.nan)

    errorbar = t_bar if interval == "t" else ("ci", 95)
    sns.pointplot(data=scores, x="method", y="score", order=present, errorbar=errorbar, n_boot=2000, seed=0,
                  linestyle="none", marker="D", color="C3", capsize=0.2, ax=ax)
    if floor is not None:
        ax.axhline(floor, color="grey", ls="--", lw=1, label="majority class")
        ax.legend(fontsize=8, loc="lower right")
    counts = scores.groupby("method")["seed"].nunique()
    ax.set_xticks(range(len(present)), [f"{m}\n(n={counts[m]})" for m in present], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(f"{task} dev score (points)")
    ax.set_title(f"{task}: every seed (dots), mean and 95% interval (diamond)")
    return save(fig, out, stem)


def grid_curves(records: list[Record], task: str, method: str, out: Path, stem: str) -> list[Path]:
    """The student's dev score and CE against steps for every configuration of one method on one task (records
    with step curves, one per configuration, labelled by their grid point): which setting learns, and when."""
    t = get_task(task)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
    for i, r in enumerate(sorted(records, key=lambda r: r.label)):
        pts = r.result.step_curves
        xs = [c["step"] for c in pts]
        label = r.label.split("[", 1)[1].rstrip("]") if "[" in r.label else r.label
        axes[0].plot(xs, [100 * score(t, c["dev"]["student"]) for c in pts], marker="o", ms=3, label=label,
                     color=f"C{i % 10}")
        axes[1].plot(xs, [c["loss"].get("student/ce", np.nan) for c in pts], marker="o", ms=3, color=f"C{i % 10}")
    majority = next((r.result.majority_metrics for r in records if r.result.majority_metrics), None)
    if majority:
        axes[0].axhline(100 * score(t, majority), color="grey", ls="--", label="majority class")
        acc = next(iter(majority.values())).get("accuracy")  # binary tasks: the majority share p
        if acc is not None and t.num_labels == 2:
            from scipy.stats import entropy

            axes[1].axhline(entropy([acc, 1 - acc]), color="grey", ls="--", label="majority entropy")
            axes[1].legend(fontsize=8)
    axes[0].set_title(f"{method} on {task}: student dev score ({', '.join(t.metrics)})")
    axes[1].set_title("student CE (window means)")
    for ax in axes:
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    return save(fig, out, stem)
