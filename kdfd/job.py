"""One job from a `RunConfig`: build data, models and the method, train with the engine, return the results.

Knows nothing of suites or records (the runner in `benchmarks` owns those).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpointer
from .config import RunConfig
from .data import EncodedDataset, load_task, load_test, make_loader, quiz_split, subset
from .data import fingerprint as data_fingerprint
from .distiller import FROZEN, NONE, ModelInfo, get_method, parse_params
from .engine import Engine, resolve_device, save_state, set_determinism, set_seed
from .errors import ConfigError, ModelError
from .files import atomic_write
from .metrics import constant_baseline, predictions
from .models import build_classifier, count_params, load_tokenizer
from .models import fingerprint as model_fingerprint
from .tasks import get_task


def resolve(cfg: RunConfig):
    """Validate a config's names and parameters without loading anything: (task, method class, params, needs)."""
    task = get_task(cfg.task)
    method = get_method(cfg.method)
    params = parse_params(method, cfg.params)
    needs = method.needs(params)
    if needs.teacher != NONE and cfg.teacher is None:
        raise ConfigError(f"method {cfg.method!r} needs a teacher model, and none is configured")
    if cfg.teacher is not None and cfg.student.layers and cfg.teacher.layers and cfg.student.layers > cfg.teacher.layers:
        raise ConfigError(f"the student has {cfg.student.layers} layers, more than its teacher's {cfg.teacher.layers}")
    return task, method, params, needs


def run(cfg: RunConfig, glue_dir: str | None = None, teacher_checkpoint: Path | None = None,
        save_model_to: Path | None = None, progress: bool = True, checkpointer: Checkpointer | None = None,
        artifacts_to: Path | None = None, predictions_to: Path | None = None,
        teacher_cache_dir: Path | None = None, events_to: Path | None = None) -> dict:
    """Train one job. Returns metrics (student dev metrics per split, last epoch), teacher metrics, per-epoch
    curves, parameter counts and timings. With a `checkpointer`, the job saves its state as it goes and first
    takes up a checkpoint left by an interrupted run of the same job. With `artifacts_to`, the student's
    representations on a fixed dev sample are saved there (.npz) for the report's figures. With `train.predict_test`,
    the trained model's predictions on the task's GLUE test files are saved to `predictions_to` (.npz, one array
    per test split: class ids [N] or scores [N], in file order). With `train.teacher_cache`, an offline method's
    teacher targets come from the cache in `teacher_cache_dir` (kdfd.teacher_cache). With `train.tensorboard`, the
    training's loss terms, learning rates and dev metrics go to `events_to` as TensorBoard events (kdfd.events)."""
    started = time.perf_counter()
    task, method, params, needs = resolve(cfg)
    if cfg.train.tensorboard and events_to is None:
        raise ConfigError("train.tensorboard is on, and no event folder was given")
    deterministic = set_determinism()
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.resolved_tokenizer())
    data = load_task(task, cfg.data_source, glue_dir)
    tc = cfg.train
    test = load_test(task, glue_dir) if tc.predict_test else {}  # read before training: a missing file stops it now
    train_examples, quiz_examples = subset(data.train, tc.max_train_examples), []
    if needs.quiz_fraction:  # out of the training set, never the dev set: the student does not train on it
        train_examples, quiz_examples = quiz_split(train_examples, needs.quiz_fraction)
    train_ds = EncodedDataset(train_examples, task, tokenizer, tc.max_length)
    dev_ds = {s: EncodedDataset(subset(ex, tc.max_eval_examples), task, tokenizer, tc.max_length)
              for s, ex in data.dev.items()}
    device = resolve_device(tc.device)
    pin = device.type == "cuda"
    train_loader = make_loader(train_ds, tc.batch_size, shuffle=True, seed=cfg.seed, pin_memory=pin,
                               batching=tc.batching, group_size=tc.group_size)
    dev_loaders = {s: make_loader(d, tc.eval_batch_size, shuffle=False, pin_memory=pin) for s, d in dev_ds.items()}

    student, teacher, distiller = build_models(method, params, task, cfg.student, cfg.teacher, len(tokenizer))
    if needs.needs_finetuned_teacher:
        if teacher_checkpoint is None:
            raise ConfigError(f"method {cfg.method!r} starts from a fine-tuned teacher; no checkpoint was given")
        teacher.load_state_dict(_load_state(teacher_checkpoint))
    distiller.init_models(student, teacher)

    engine = Engine(distiller, student, teacher, task, tc, tc.epochs * len(train_loader), device, progress)
    if quiz_examples:
        quiz_ds = EncodedDataset(quiz_examples, task, tokenizer, tc.max_length)
        engine.use_quiz(make_loader(quiz_ds, tc.batch_size, shuffle=True, seed=cfg.seed, pin_memory=pin))
    cache = None
    if tc.teacher_cache and needs.teacher == FROZEN:
        if teacher_cache_dir is None:
            raise ConfigError("train.teacher_cache is on, and no cache folder was given")
        cache = engine.use_teacher_cache(Path(teacher_cache_dir), train_ds)
    teacher_start = engine.evaluate("teacher", dev_loaders) if teacher is not None else None
    setup_seconds = time.perf_counter() - started
    curves = engine.fit(train_loader, dev_loaders, tc.epochs, desc=f"{cfg.task}/{cfg.method}", checkpointer=checkpointer,
                        events_to=events_to if tc.tensorboard else None)
    if save_model_to is not None:
        save_state(student, save_model_to)
    artifacts = None
    if artifacts_to is not None:
        split, examples = next(iter(data.dev.items()))
        examples = subset(subset(examples, tc.max_eval_examples), REPRESENTATION_SAMPLE)
        sample = EncodedDataset(examples, task, tokenizer, tc.max_length)
        reps = engine.representations("student", make_loader(sample, tc.eval_batch_size, shuffle=False, pin_memory=pin))
        save_arrays(artifacts_to, reps)
        artifacts = {"representations": Path(artifacts_to).name, "split": split, "examples": len(sample),
                     "names": sorted(k for k in reps if k != "labels")}
    predicted = {}
    if test:
        test_loaders = {s: make_loader(EncodedDataset(ex, task, tokenizer, tc.max_length), tc.eval_batch_size,
                                       shuffle=False, pin_memory=pin) for s, ex in test.items()}
        predicted = {s: predictions(engine.predict("student", loader)[0], task) for s, loader in test_loaders.items()}
        if predictions_to is not None:
            atomic_write(predictions_to, lambda f: np.savez_compressed(f, **predicted))
    last = curves[-1]["dev"]
    return {
        "metrics": last["student"],
        "teacher_metrics": last.get("teacher", teacher_start),
        "teacher_metrics_start": teacher_start,
        "majority_metrics": {s: constant_baseline(task, np.array(d.labels))
                             for s, d in dev_ds.items()},
        "curves": curves,
        **({"step_curves": engine.step_curve} if tc.eval_every else {}),
        "data": {"source": data.source, "fingerprint": data_fingerprint(data), "train_examples": len(train_ds),
                 **({"quiz_examples": len(quiz_examples)} if quiz_examples else {}),
                 "dev_examples": {s: len(d) for s, d in dev_ds.items()}},
        "model_fingerprints": {"student": model_fingerprint(cfg.student),
                               "teacher": model_fingerprint(cfg.teacher) if cfg.teacher else None},
        "params": {"student": count_params(student), "teacher": count_params(teacher),
                   "method_student_modules": count_params(distiller.student_modules),
                   "method_teacher_modules": count_params(distiller.teacher_modules)},
        "device": str(device),
        "deterministic": deterministic,
        "resumed_from_step": engine.resumed_from,
        "artifacts": artifacts,
        "test_predictions": {s: len(p) for s, p in predicted.items()} or None,
        "teacher_cache": cache,
        "timing": {"setup_seconds": setup_seconds, "train_seconds": sum(c["train_seconds"] for c in curves),
                   "eval_seconds": sum(c["eval_seconds"] for c in curves), "steps": engine.step,
                   "wall_seconds": time.perf_counter() - started},
    }


def build_models(method, params, task, student_spec, teacher_spec, vocab: int):
    """(student, teacher or None, the method's distiller), freshly initialised, as `method` with `params` needs them
    (eager attention where it reads attention maps; a teacher only if it has one)."""
    needs = method.needs(params)
    attn = "eager" if needs.attentions else "sdpa"  # attention maps need the eager implementation
    student = build_classifier(student_spec, task.num_labels, vocab, attn)
    teacher = None
    if needs.teacher != NONE:
        teacher = build_classifier(teacher_spec, task.num_labels, vocab, attn)
        if teacher.num_layers < student.num_layers:
            raise ConfigError(f"the student has {student.num_layers} layers, more than its teacher's {teacher.num_layers}")
    return student, teacher, method(params, task, ModelInfo.of(student), ModelInfo.of(teacher))


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
