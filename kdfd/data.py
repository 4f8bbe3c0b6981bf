"""Task data: one loader over three sources, tokenization, and dynamically padded batches.

Sources, in the order `source="auto"` tries them:
1. `synthetic` for the embedded synthetic tasks;
2. `tsv`: a local directory in the original GLUE layout (`glue_dir`, or the `GLUE_DIR` environment variable, or
   the `shared/data/glue` folder beside the repository's own folder: `resolve_glue_dir`);
3. `hf`: Hugging Face `datasets` by name (`nyu-mll/glue`), where a hub is reachable; `KDFD_HF_DATASET` names
   another dataset (a hub id, or a local copy of the hub repository: its parquet files and README, read offline).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import synthetic
from .data_types import Example
from .errors import ConfigError, DataError
from .tasks import Task, TsvLayout
from .token_cache import encode

SOURCES = ("auto", "tsv", "hf", "synthetic")
HF_DATASET = "nyu-mll/glue"
HF_DATASET_ENV = "KDFD_HF_DATASET"


def hf_dataset() -> str:
    """The `datasets` path the `hf` source loads: `KDFD_HF_DATASET` (a hub id or a local folder), else nyu-mll/glue."""
    name = os.environ.get(HF_DATASET_ENV) or HF_DATASET
    if name.startswith(("/", ".", "~")):  # a folder, not a hub id: never looked for on the hub
        if not Path(name).expanduser().is_dir():
            raise DataError(f"{HF_DATASET_ENV} folder {name!r} does not exist (expected a local copy of the "
                            f"{HF_DATASET} dataset repository: its parquet files and README)")
        return str(Path(name).expanduser())
    return name


# ----------------------------------------------------------------------------------------------------------- TSV


def read_tsv(path: Path, layout: TsvLayout, labels: tuple[str, ...] | None, with_labels: bool = True) -> list[Example]:
    """Read one GLUE TSV file strictly: tab-separated, never quoted, one row per line.

    Every defect is a `DataError` naming the file (and line): missing file, empty file, bytes that are not UTF-8,
    a missing column, a row with the wrong number of fields, a label outside the task's label set.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing data file {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: bytes at offset {e.start} are not UTF-8") from None
    lines = text.lstrip("\ufeff").split("\n")  # MRPC headers begin with a byte-order mark
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file (expected a GLUE TSV)")

    if layout.header:
        header = lines[0].split("\t")
        n_cols, start = len(header), 1

        def col(name):
            if name is None:
                return None
            if name not in header:
                raise DataError(f"{path}: missing column {name!r} (header has: {', '.join(header)})")
            return header.index(name)
    else:
        n_cols, start = layout.n_columns, 0

        def col(index):
            return index

    ia, ib = col(layout.text_a), col(layout.text_b)
    il = col(layout.label) if with_labels else None
    out = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        fields = line.split("\t")
        if len(fields) != n_cols:
            raise DataError(f"{path}:{lineno}: expected {n_cols} tab-separated fields, found {len(fields)}")
        label = None if il is None else _check_label(fields[il], labels, path, lineno)
        out.append(Example(fields[ia], None if ib is None else fields[ib], label))
    if not out:
        raise DataError(f"{path}: no data rows")
    return out


def _check_label(value: str, labels: tuple[str, ...] | None, path, lineno) -> str:
    if labels is None:
        try:
            float(value)
        except ValueError:
            raise DataError(f"{path}:{lineno}: regression score {value!r} is not a number") from None
    elif value not in labels:
        raise DataError(f"{path}:{lineno}: label {value!r} is not in the task's label set ({', '.join(labels)})")
    return value


# Where a GLUE folder is found when none is named: beside the repository, as the project's machines keep it
SHARED_GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def resolve_glue_dir(glue_dir: str | os.PathLike | None) -> Path | None:
    """The GLUE directory: the option, else `GLUE_DIR` (either must exist), else the `shared/data/glue` folder
    beside the repository (SHARED_GLUE) where there is one, else None. The one rule, for `bench` and the tests."""
    chosen = glue_dir if glue_dir else os.environ.get("GLUE_DIR")
    if not chosen:
        return SHARED_GLUE if SHARED_GLUE.is_dir() else None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataError(
            f"GLUE dir {str(path)!r} does not exist (pass --glue-dir or set GLUE_DIR to a folder in the original "
            "GLUE layout: CoLA/, SST-2/, MRPC/, ...)"
        )
    return path


def _task_dir(root: Path, task: Task) -> Path:
    d = root / task.glue_dir
    if not d.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"{root}: no folder {task.glue_dir}/ for task {task.name!r} (found: {', '.join(found)})")
    return d


# ----------------------------------------------------------------------------------------------------- the loader


@dataclass
class TaskData:
    """Raw examples of one task: `train`, and dev examples per split (MNLI: dev_matched, dev_mismatched)."""

    task: Task
    train: list[Example]
    dev: dict[str, list[Example]]
    source: str


def examples_hash(data: TaskData) -> str:
    """A hash of the examples themselves (whatever their source): two records with equal hashes trained and
    evaluated on the same text and labels."""
    h = hashlib.sha256()
    for split, examples in [("train", data.train), *sorted(data.dev.items())]:
        h.update(split.encode())
        for ex in examples:
            h.update(json.dumps(ex, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def load_task(task: Task, source: str = "auto", glue_dir: str | None = None) -> TaskData:
    if source not in SOURCES:
        raise ConfigError(f"unknown data source {source!r} (allowed: {', '.join(SOURCES)})")
    if task.synthetic:
        if source not in ("auto", "synthetic"):
            raise ConfigError(f"task {task.name!r} is synthetic; data source {source!r} does not provide it")
        return TaskData(task, list(synthetic.generate(task.name, "train")),
                        {"dev": list(synthetic.generate(task.name, "dev"))}, "synthetic")
    if source == "synthetic":
        raise ConfigError(f"task {task.name!r} is not synthetic (synthetic tasks: synth-single, synth-pair, synth-reg)")
    root = resolve_glue_dir(glue_dir)
    if source == "tsv" or (source == "auto" and root is not None):
        if root is None:
            raise DataError(f"data source 'tsv' for task {task.name!r} needs --glue-dir or GLUE_DIR")
        d = _task_dir(root, task)
        read = lambda name: read_tsv(d / name, task.layout, task.labels)  # noqa: E731
        return TaskData(task, read(task.train_file), {s: read(f) for s, f in task.dev_files.items()}, "tsv")
    return _load_hf(task)


def load_test(task: Task, glue_dir: str | None = None) -> dict[str, list[Example]]:
    """The task's GLUE test files (labels hidden: `label` is None), split -> examples in file order."""
    if not task.test_files:
        raise ConfigError(f"task {task.name!r} has no test set to predict (GLUE tasks have)")
    root = resolve_glue_dir(glue_dir)
    if root is None:
        raise DataError(f"test predictions for task {task.name!r} are read from GLUE test TSV files: pass --glue-dir "
                        "or set GLUE_DIR")
    d = _task_dir(root, task)
    return {s: read_tsv(d / f, task.test_tsv_layout, task.labels, with_labels=False)
            for s, f in task.test_files.items()}


def _load_hf(task: Task) -> TaskData:
    name = hf_dataset()
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"task {task.name!r} needs data: pass --glue-dir (or set GLUE_DIR) to a GLUE folder, or install "
            f"kdfd-bench[hub] to load {name} with Hugging Face datasets"
        ) from None
    from .models import hub_unreachable, in_hf_cache

    # offline, load_dataset retries for half a minute before failing: one short look at the hub first
    why = None if Path(name).exists() or in_hf_cache(name, "dataset") else hub_unreachable()
    if why is not None:
        raise DataError(f"could not load {name}/{task.hf_config}: it is not in the Hugging Face cache and {why}; "
                        "pass --glue-dir or set GLUE_DIR to a local GLUE folder")
    try:
        ds = datasets.load_dataset(name, task.hf_config)
    except Exception as e:  # offline, hub unreachable, ...: name the way out
        raise DataError(
            f"could not load {name}/{task.hf_config} with Hugging Face datasets ({type(e).__name__}); "
            "pass --glue-dir or set GLUE_DIR to a local GLUE folder"
        ) from None
    a, b = task.hf_text

    def convert(split):
        rows = ds[split]
        names = getattr(rows.features["label"], "names", None)
        # Class ids index the dataset's own label names where those are the task's label strings (the NLI tasks),
        # so a copy that orders its classes differently still reads right; the 0/1 tasks' names (negative,
        # positive, ...) are not TSV labels, and their ids are the TSV's own.
        labels = names if task.labels is not None and sorted(names or ()) == sorted(task.labels) else task.labels
        text_b = rows[b] if b else [None] * len(rows)
        # regression scores are float32 in the dataset: written as such ("3.8", not "3.799999952316284")
        return [Example(x, y, str(np.float32(label)) if labels is None else labels[label])
                for x, y, label in zip(rows[a], text_b, rows["label"])]

    return TaskData(task, convert("train"), {s: convert(hs) for s, hs in task.hf_dev_splits.items()}, "hf")


def subset(examples: list[Example], n: int | None, seed: int = 0) -> list[Example]:
    """A fixed random subset of n examples in their original order (the same for every run seed and method)."""
    if n is None or n >= len(examples):
        return list(examples)
    keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:n])
    return [examples[i] for i in keep]


def quiz_split(examples: list[Example], fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(training examples, quiz examples): round(fraction * n) of the examples (at least 1) held out at random by the
    data seed, the same for every run seed and method; both parts keep the file order. Meta-learning methods train the
    student on the first and give the teacher the student's loss on the second (Needs.quiz_fraction)."""
    n_quiz = max(1, round(fraction * len(examples)))
    if n_quiz >= len(examples):
        raise ConfigError(f"a quiz split of {fraction} leaves no training examples out of {len(examples)}")
    held = set(np.random.default_rng(seed).permutation(len(examples))[:n_quiz].tolist())
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def holdout_split(examples: list[Example], task: Task, fraction: float, seed: int = 0
                  ) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples): round(fraction * n) examples held out, stratified by label (by score
    quintile for regression) with scikit-learn's splitter at the data seed, so every run seed, method and teacher of
    a task sees the same split; both parts keep the file order."""
    from sklearn.model_selection import train_test_split

    if fraction <= 0:
        return list(examples), []
    n_held = max(1, round(fraction * len(examples)))
    if n_held >= len(examples):
        raise ConfigError(f"a held-out share of {fraction} leaves no training examples out of {len(examples)}")
    if task.is_regression:
        scores = np.array([float(e.label) for e in examples])
        strata = np.searchsorted(np.quantile(scores, [0.2, 0.4, 0.6, 0.8]), scores, side="right")
    else:
        strata = np.array([e.label for e in examples])
    _, held = train_test_split(np.arange(len(examples)), test_size=n_held, random_state=seed, stratify=strata)
    held = set(held.tolist())
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


# ------------------------------------------------------------------------------------------- tokenized batches


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenized examples, unpadded: each item holds its own-length id lists and a label tensor value. With
    `token_cache`, a folder, the token ids are shared with the other jobs of the task (kdfd.token_cache)."""

    def __init__(self, examples: list[Example], task: Task, tokenizer, max_length: int,
                 token_cache: Path | None = None):
        a = [e.text_a for e in examples]
        b = [e.text_b for e in examples] if task.is_pair else None
        enc = encode(tokenizer, a, b, max_length, token_cache)
        self.input_ids = enc["input_ids"]
        self.token_type_ids = enc.get("token_type_ids")
        # unlabelled (test) examples get -1, or NaN for regression: never a valid class id or score
        if task.labels is None:
            self.labels = [float("nan") if e.label is None else float(e.label) for e in examples]
        else:
            index = {s: i for i, s in enumerate(task.labels)}
            self.labels = [-1 if e.label is None else index[e.label] for e in examples]
        self.regression = task.is_regression
        self.pad_id = tokenizer.pad_token_id

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, i):
        item = {"input_ids": self.input_ids[i], "label": self.labels[i], "index": i}
        if self.token_type_ids is not None:
            item["token_type_ids"] = self.token_type_ids[i]
        return item

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


class Collator:
    """Pads a batch to its own longest sequence (never to max_length).

    Returns input_ids, attention_mask (and token_type_ids when the tokenizer makes them): LongTensor [B, T_batch];
    labels: LongTensor [B], or FloatTensor [B] for regression; index: LongTensor [B], each example's position in
    its dataset (evaluation restores the file order with it; the teacher cache looks examples up by it).
    """

    def __init__(self, pad_id: int, regression: bool):
        self.pad_id, self.regression = pad_id, regression

    def __call__(self, items):
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        types = torch.zeros((len(items), width), dtype=torch.long) if "token_type_ids" in items[0] else None
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = torch.tensor(it["input_ids"])
            mask[i, :n] = 1
            if types is not None:
                types[i, :n] = torch.tensor(it["token_type_ids"])
        dtype = torch.float if self.regression else torch.long
        batch = {"input_ids": ids, "attention_mask": mask,
                 "labels": torch.tensor([it["label"] for it in items], dtype=dtype),
                 "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        if types is not None:
            batch["token_type_ids"] = types
        return batch


class EpochSampler(torch.utils.data.Sampler):
    """A shuffled order that depends only on (seed, epoch), so a run stopped mid-epoch can take up its data order
    at the same example: `set_epoch(epoch, start)` yields that epoch's permutation from position `start` on."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        """The whole epoch's order."""
        return torch.randperm(self.n, generator=self._generator()).tolist()

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(0, self.n - self.start)


class GroupedEpochSampler(EpochSampler):
    """Length-grouped order: the epoch's permutation (as `EpochSampler`) cut into mega-batches of `group_size`
    batches, each sorted by length (longest first), cut into batches, and the batches shuffled, all from the
    (seed, epoch) generator. A batch then holds examples of similar length, so dynamic padding adds few padded
    tokens, while which examples meet still changes every epoch. A short last batch stays last, so the loader's
    consecutive cuts of `batch_size` are exactly these batches and a resume at batch k starts at k * batch_size."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_size: int = 50):
        super().__init__(len(lengths), seed)
        self.lengths, self.batch_size, self.group = lengths, batch_size, batch_size * group_size

    def order(self) -> list[int]:
        g = self._generator()
        perm = torch.randperm(self.n, generator=g).tolist()
        batches = []
        for at in range(0, self.n, self.group):
            mega = sorted(perm[at:at + self.group], key=lambda i: -self.lengths[i])  # stable: ties keep the shuffle
            batches += [mega[k:k + self.batch_size] for k in range(0, len(mega), self.batch_size)]
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return [i for b in batches + ([last] if last else []) for i in b]


def share(size: int, rank: int, world: int) -> int:
    """How many examples of a batch of `size` process `rank` of `world` takes: an even split, the first size % world
    processes one more (batch_size / world each of a full batch, which must divide it)."""
    return size // world + (rank < size % world)


class ShardedSampler(torch.utils.data.Sampler):
    """One process's share of a training order, for a job trained data-parallel over `world` processes (`bench run
    --nproc`): `base`'s seeded order (an EpochSampler or GroupedEpochSampler, the one a single process would follow)
    cut into the global batches of `batch_size` a single process would take, process `rank` taking its contiguous
    part of each (`share`). Its loader's batch size is batch_size / world, so each of its batches is its part of one
    global batch. A process whose part of a short last batch is empty (fewer examples than processes) takes the
    batch's first example instead, which the engine weights 0 (`local_count`): every process steps alike.
    `set_epoch(epoch, start)`: `start` counts examples of the global order, as a single process's does."""

    def __init__(self, base: EpochSampler, batch_size: int, rank: int, world: int):
        if batch_size % world:
            raise ValueError(f"a batch of {batch_size} does not split over {world} processes")
        self.base, self.global_batch_size, self.rank, self.world = base, batch_size, rank, world
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.base.set_epoch(epoch, 0)
        self.start = start

    def local_count(self, k: int) -> int:
        """The examples this process really takes of global batch k of the epoch (0-based; 0 for a placeholder)."""
        return share(min(self.global_batch_size, self.base.n - k * self.global_batch_size), self.rank, self.world)

    def __iter__(self):
        order = self.base.order()
        for at in range(self.start, len(order), self.global_batch_size):
            batch = order[at:at + self.global_batch_size]
            first = sum(share(len(batch), r, self.world) for r in range(self.rank))
            yield from batch[first:first + share(len(batch), self.rank, self.world)] or batch[:1]

    def __len__(self) -> int:
        left = max(0, self.base.n - self.start)
        full, last = divmod(left, self.global_batch_size)
        return full * (self.global_batch_size // self.world) + (max(1, share(last, self.rank, self.world))
                                                                 if last else 0)


def make_loader(ds: EncodedDataset, batch_size: int, shuffle: bool, seed: int = 0, pin_memory: bool = False,
                batching: str = "shuffle", group_size: int = 50, workers: int = 0,
                shard: tuple[int, int] | None = None):
    """Training loaders (`shuffle`) take their order from an EpochSampler (`batching` shuffle) or a
    GroupedEpochSampler (`batching` grouped). Evaluation loaders go through the examples longest first, so each
    batch pads little; `Engine.predict` puts the outputs back in file order by the batches' `index`. `workers`
    processes collate batches off the main process (the order and the batches stay the same: the sampler runs in
    the main process and collating draws no random numbers). `shard` (rank, world): a training loader of one of
    `world` data-parallel processes, its part of each batch (ShardedSampler)."""
    if not shuffle:
        lengths = ds.lengths()
        sampler = sorted(range(len(ds)), key=lambda i: -lengths[i])
    elif batching == "grouped":
        sampler = GroupedEpochSampler(ds.lengths(), batch_size, seed, group_size)
    else:
        sampler = EpochSampler(len(ds), seed)
    if shard is not None and shuffle:
        sampler = ShardedSampler(sampler, batch_size, *shard)
        batch_size //= sampler.world
    # The loader gets its own generator: without one, every new iterator draws its base seed from the global RNG,
    # which would make the dropout stream depend on where a resumed run re-created its iterator.
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, sampler=sampler, generator=torch.Generator().manual_seed(seed),
        collate_fn=Collator(ds.pad_id, ds.regression), num_workers=workers, pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )
