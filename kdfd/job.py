"""One job: a `RunConfig` resolved once (`resolve`), checked against its models (`check_models`), then trained
(`run`): build data, models and the method, train with the engine, return the results.

Knows nothing of suites or records (the runner in `benchmarks` owns those).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed

from .checkpoint import Checkpointer
from .config import RunConfig, TrainConfig
from .data import EncodedDataset, examples_hash, holdout_split, load_task, load_test, make_loader, quiz_split, subset
from .distiller import FROZEN, NONE, Distiller, ModelInfo, Needs, needs_of, params_dict, parse_params
from .engine import Engine, resolve_device, save_state, set_determinism, set_seed
from .errors import ConfigError, ModelError
from .files import atomic_write
from .metrics import constant_baseline, predictions
from .models import ModelSpec, build_classifier, check_depth, count_params, load_tokenizer, local_files_hash
from .parallel import Processes, rank_seed, refusal
from .registry import get_method
from .result import JobResult
from .tasks import Task, get_task

LOADER_WORKERS = 2  # collating processes per training loader on a GPU (a tokenized batch pads and stacks in ms)


@dataclass(frozen=True)
class ResolvedJob:
    """A job's config with every fact derived from it, computed once by `resolve`: the task, the method's class, its
    typed parameters and what it needs of the engine. A suite's job makes one at its first use; preflight
    (`check_models`), `run` and the engine take it as it is, never deriving these again."""

    config: RunConfig
    task: Task
    method: type[Distiller]
    params: object  # an instance of method.Params; config.params is its plain form (hashed into the job's id)
    needs: Needs

    @property
    def student(self) -> ModelSpec:
        return self.config.student

    @property
    def teacher(self) -> ModelSpec | None:
        return self.config.teacher

    @property
    def train(self) -> TrainConfig:
        return self.config.train


def resolve(cfg: RunConfig, params=None) -> ResolvedJob:
    """Resolve a config's names and parameters without loading anything. `params`: the method's typed parameters
    when the caller has parsed them already (suite expansion), else parsed from cfg.params.

    The config comes back normalised by what the method needs, as every job id has always been computed: the
    method's own version, no teacher model for a method without a teacher, no teacher cache without a frozen
    teacher. A method that needs a teacher where none is configured is an error."""
    task = get_task(cfg.task)
    method = get_method(cfg.method)
    if params is None:
        params = parse_params(method, cfg.params)
    needs = needs_of(method, params)
    if needs.teacher != NONE and cfg.teacher is None:
        raise ConfigError(f"method {cfg.method!r} needs a teacher model, and none is configured")
    changes = {"method_version": method.version, "params": params_dict(params)}
    if needs.teacher == NONE:
        changes["teacher"] = None
    if needs.teacher != FROZEN and cfg.train.teacher_cache:  # no frozen teacher, nothing to cache (same id)
        changes["train"] = dataclasses.replace(cfg.train, teacher_cache=False)
    return ResolvedJob(dataclasses.replace(cfg, **changes), task, method, params, needs)


def check_models(job: ResolvedJob, student: ModelInfo, teacher: ModelInfo | None) -> Distiller:
    """Every check of a job against its models' shapes, in one place (preflight runs it on the models' configs, a
    job on the models it built): the student no deeper than its teacher, and the method's own checks, made by
    building its modules on these shapes (a latent dimension above a hidden size, head counts that differ).
    Returns the method, built."""
    if teacher is not None:
        check_depth(student.num_layers, teacher.num_layers)
    return job.method(job.params, job.task, student, teacher)


def run(job: ResolvedJob, glue_dir: str | None = None, teacher_checkpoint: Path | None = None,
        save_model_to: Path | None = None, progress: bool = True, checkpointer: Checkpointer | None = None,
        artifacts_to: Path | None = None, predictions_to: Path | None = None,
        teacher_cache_dir: Path | None = None, token_cache_dir: Path | None = None, events_to: Path | None = None,
        deterministic: bool = False, device: str | None = None, export_to: Path | None = None,
        about: dict | None = None, processes: Processes | None = None) -> JobResult | None:
    """Train one job. Returns its `JobResult` (kdfd.result): the student's dev metrics at the last epoch, the
    teacher's, per-epoch curves, parameter counts, timings. With a `checkpointer`, the job saves its state as it
    goes and first takes up a checkpoint left by an interrupted run of the same job. With `artifacts_to`, the student's
    representations on a fixed dev sample are saved there (.npz) for the report's figures. With `train.predict_test`,
    the trained model's predictions on the task's GLUE test files are saved to `predictions_to` (.npz, one array
    per test split: class ids [N] or scores [N], in file order). With `train.teacher_cache`, an offline method's
    teacher targets come from the cache in `teacher_cache_dir` (kdfd.teacher_cache). With `token_cache_dir`, the
    task's token ids are shared with its other jobs there (kdfd.token_cache). With `events_to` (which
    `train.tensorboard` asks for), the training's loss terms, learning rates and dev metrics go there as
    TensorBoard events (kdfd.events), or an opener of the job's trackers (kdfd.events.Events, called with the step
    it resumes from). `deterministic`: PyTorch's deterministic algorithms (`set_determinism`). `device`: where to
    train in place of `train.device` (`bench run --device`; not part of the job's id). With `export_to` (which
    `train.save_model` asks for), the trained model is written there as a transformers folder (kdfd.export;
    `about`: the job, for its kdfd-export.json). `processes`: this process's place among the job's data-parallel
    processes (kdfd.parallel_launch.run starts them): it trains on its part of each batch, on `cuda:<rank>` on CUDA;
    process 0 evaluates, writes and returns the results, the others return None once trained."""
    started = time.perf_counter()
    cfg, task, needs = job.config, job.task, job.needs
    parallel = processes is not None and processes.world > 1
    lead = not parallel or processes.lead
    if parallel and refusal(job, processes.world):
        raise ConfigError(refusal(job, processes.world))
    if cfg.train.save_model and export_to is None and lead:
        raise ConfigError("train.save_model is on, and no folder was given to write the model to")
    if cfg.train.tensorboard and events_to is None and lead:
        raise ConfigError("train.tensorboard is on, and no event folder was given")
    deterministic = set_determinism(deterministic)
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.resolved_tokenizer())
    data = load_task(task, cfg.data_source, glue_dir)
    tc = cfg.train
    test = load_test(task, glue_dir) if tc.predict_test else {}  # read before training: a missing file stops it now
    train_examples, heldout = holdout_split(subset(data.train, tc.max_train_examples), task, tc.holdout)
    quiz_examples = []
    if needs.quiz_fraction:  # out of the training set, never the dev set: the student does not train on it
        if heldout:  # the protocol's held-out split is the quiz: every student trains on the same examples
            quiz_examples = heldout
        else:
            train_examples, quiz_examples = quiz_split(train_examples, needs.quiz_fraction)
    train_ds = EncodedDataset(train_examples, task, tokenizer, tc.max_length, token_cache_dir)
    dev_ds = {s: EncodedDataset(subset(ex, tc.max_eval_examples), task, tokenizer, tc.max_length, token_cache_dir)
              for s, ex in data.dev.items()}
    scored = dict(dev_ds)  # what every evaluation point scores: the dev splits, and the held-out split apart
    if heldout:
        scored[HELDOUT] = EncodedDataset(heldout, task, tokenizer, tc.max_length, token_cache_dir)
    device = resolve_device(device or tc.device)
    if parallel and device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", processes.rank)
    pin = device.type == "cuda"
    # on a GPU the training batches are collated by worker processes while the device computes; on a CPU the
    # cores are the compute, and workers would take them from it
    train_loader = make_loader(train_ds, tc.batch_size, shuffle=True, seed=cfg.seed, pin_memory=pin,
                               batching=tc.batching, group_size=tc.group_size, workers=LOADER_WORKERS if pin else 0,
                               shard=(processes.rank, processes.world) if parallel else None)
    dev_loaders = {s: make_loader(d, tc.eval_batch_size, shuffle=False, pin_memory=pin) for s, d in dev_ds.items()}
    scored_loaders = {s: dev_loaders.get(s) or make_loader(d, tc.eval_batch_size, shuffle=False, pin_memory=pin)
                      for s, d in scored.items()}

    student, teacher, distiller = build_models(job, len(tokenizer))
    if needs.needs_finetuned_teacher and not cfg.teacher.finetuned:  # a fine-tuned checkpoint came with its head
        if teacher_checkpoint is None:
            raise ConfigError(f"method {cfg.method!r} starts from a fine-tuned teacher; no checkpoint was given")
        teacher.load_state_dict(_load_state(teacher_checkpoint))
    distiller.init_models(student, teacher)

    engine = Engine(distiller, student, teacher, task, tc, tc.epochs * len(train_loader), device, progress and lead,
                    needs=needs, processes=processes if parallel else None)
    if parallel and not lead:  # its own dropout and sampling stream (the weights came from process 0)
        set_seed(rank_seed(cfg.seed, processes.rank))
    if quiz_examples:
        quiz_ds = EncodedDataset(quiz_examples, task, tokenizer, tc.max_length, token_cache_dir)
        engine.use_quiz(make_loader(quiz_ds, tc.batch_size, shuffle=True, seed=cfg.seed, pin_memory=pin))
    cache = None
    if tc.teacher_cache and needs.teacher == FROZEN:
        if teacher_cache_dir is None:
            raise ConfigError("train.teacher_cache is on, and no cache folder was given")
        if parallel and not lead:  # process 0 fills the cache, then the others read it
            torch.distributed.barrier()
        cache = engine.use_teacher_cache(Path(teacher_cache_dir), train_ds)
        if parallel and lead:
            torch.distributed.barrier()
    teacher_start = engine.evaluate("teacher", dev_loaders) if teacher is not None and lead else None
    setup_seconds = time.perf_counter() - started
    curves = engine.fit(train_loader, scored_loaders, tc.epochs, desc=f"{cfg.task}/{cfg.method}",
                        checkpointer=checkpointer, events_to=events_to if lead else None, started=started)
    if not lead:
        return None
    if save_model_to is not None:
        save_state(student, save_model_to)
    if export_to is not None:
        from .export import export

        export(student, distiller, "student", task, tokenizer, export_to, about)
    artifacts = None
    if artifacts_to is not None:
        split, examples = next(iter(data.dev.items()))
        examples = subset(subset(examples, tc.max_eval_examples), REPRESENTATION_SAMPLE)
        sample = EncodedDataset(examples, task, tokenizer, tc.max_length, token_cache_dir)
        reps = engine.representations("student", make_loader(sample, tc.eval_batch_size, shuffle=False, pin_memory=pin))
        save_arrays(artifacts_to, reps)
        artifacts = {"representations": Path(artifacts_to).name, "split": split, "examples": len(sample),
                     "names": sorted(k for k in reps if k != "labels")}
    predicted = {}
    if test:
        test_loaders = {s: make_loader(EncodedDataset(ex, task, tokenizer, tc.max_length, token_cache_dir),
                                       tc.eval_batch_size, shuffle=False, pin_memory=pin) for s, ex in test.items()}
        predicted = {s: predictions(engine.predict("student", loader)[0], task) for s, loader in test_loaders.items()}
        if predictions_to is not None:
            atomic_write(predictions_to, lambda f: np.savez_compressed(f, **predicted))
    for point in curves + (engine.step_curve if tc.eval_every else []):
        move_heldout(point)
    last = curves[-1]["dev"]
    return JobResult(
        metrics=last["student"],
        heldout_metrics=curves[-1]["heldout"]["student"] if heldout else None,
        teacher_metrics=last.get("teacher", teacher_start),
        teacher_metrics_start=teacher_start,
        majority_metrics={s: constant_baseline(task, np.array(d.labels)) for s, d in dev_ds.items()},
        curves=curves,
        step_curves=engine.step_curve if tc.eval_every else None,
        data={"source": data.source, "fingerprint": examples_hash(data), "train_examples": len(train_ds),
              **({"quiz_examples": len(quiz_examples)} if quiz_examples else {}),
              **({"heldout_examples": len(heldout)} if heldout else {}),
              "dev_examples": {s: len(d) for s, d in dev_ds.items()}},
        model_fingerprints={"student": local_files_hash(cfg.student),
                            "teacher": local_files_hash(cfg.teacher) if cfg.teacher else None},
        param_counts={"student": count_params(student), "teacher": count_params(teacher),
                      "method_student_modules": count_params(distiller.student_modules),
                      "method_teacher_modules": count_params(distiller.teacher_modules)},
        device=str(device),
        precision=engine.precision,
        deterministic=deterministic,
        resumed_from_step=engine.resumed_from,
        artifacts=artifacts,
        test_predictions={s: len(p) for s, p in predicted.items()} or None,
        teacher_cache=cache,
        timing={"setup_seconds": setup_seconds, "train_seconds": sum(c["train_seconds"] for c in curves),
                "eval_seconds": sum(c["eval_seconds"] for c in curves), "steps": engine.step,
                "wall_seconds": time.perf_counter() - started,
                # a resumed job: what the processes before this one spent up to its checkpoint
                "carried_seconds": engine.carried_seconds},
    )


def build_models(job: ResolvedJob, vocab: int):
    """(student, teacher or None, the method's distiller), freshly initialised, as the job's method needs them
    (eager attention where it reads attention maps; a teacher only if it has one), checked by `check_models` (a hub
    model preflight could not describe is checked here, once built)."""
    attn = "eager" if job.needs.attentions else "sdpa"  # attention maps need the eager implementation
    student = build_classifier(job.student, job.task.num_labels, vocab, attn)
    teacher = None
    if job.needs.teacher != NONE and job.teacher.finetuned:
        from .export import load_classifier

        teacher = load_classifier(job.teacher.name, job.task.num_labels, job.task, attn, job.teacher.dropout)
        if teacher.backbone.config.vocab_size != vocab:
            raise ModelError(f"teacher {job.teacher.name!r} has vocab size {teacher.backbone.config.vocab_size}, the "
                             f"tokenizer {vocab}")
    elif job.needs.teacher != NONE:
        teacher = build_classifier(job.teacher, job.task.num_labels, vocab, attn)
    return student, teacher, check_models(job, ModelInfo.of(student), ModelInfo.of(teacher))


HELDOUT = "heldout"  # the held-out split's name in a record's `heldout_metrics` and curves


def move_heldout(point: dict) -> None:
    """An evaluation point scored the held-out split beside the dev splits: move its scores out of `dev` (which
    selection by dev score and every report table average over) into the point's own `heldout` block, {role:
    {"heldout": metrics}}, the shape of `dev`."""
    held = {role: {HELDOUT: splits.pop(HELDOUT)} for role, splits in point["dev"].items() if HELDOUT in splits}
    if held:
        point["heldout"] = held


REPRESENTATION_SAMPLE = 512  # a fixed subset of the dev examples: the same for every method and seed


def save_arrays(path: Path, arrays: dict) -> None:
    """Atomically, in float16 (labels as they are): figures need shapes and spreads, not the last bit."""
    small = {k: v if k == "labels" else v.astype(np.float16) for k, v in arrays.items()}
    atomic_write(path, lambda f: np.savez_compressed(f, **small))  # a file object: NumPy adds no suffix


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"teacher checkpoint {path} does not exist") from None
    except Exception as e:
        raise ModelError(f"teacher checkpoint {path} is corrupt ({type(e).__name__}); delete it to retrain") from None
