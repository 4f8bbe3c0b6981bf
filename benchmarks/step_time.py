"""Step-time ratios of the methods on one set of models, measured in one process on the same batches.

    python -m benchmarks.step_time [--suite glue-cpu] [--task rte] [--steps 8] [--glue-dir DIR] [--out FILE.json]

Times one training step of: the student fine-tuned alone, the teacher fine-tuned alone, vanilla KD (student step plus
a frozen teacher forward) and KDFD (online: teacher phase, teacher re-forward, student phase), each over the same
`--steps` batches after one warm-up step, and prints the ratios vanilla-kd / finetune(student) and
kdfd / (finetune(teacher) + finetune(student)). Ratios, not absolute times, are what compare across machines.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from kdfd.data import EncodedDataset, load_task, make_loader, subset
from kdfd.distiller import ModelInfo, get_method, parse_params
from kdfd.engine import Engine, resolve_device, set_seed
from kdfd.models import build_classifier, load_tokenizer
from kdfd.tasks import get_task

from . import runner  # noqa: F401  (registers every method)
from . import suite as suites


def time_method(method: str, role_model, cfg, task, batches, tokenizer, device) -> float:
    """Mean seconds per step of `method` training `role_model` ("student" or "teacher" as the trained model)."""
    set_seed(0)
    cls = get_method(method)
    params = parse_params(cls, cfg.params if method == cfg.method else {})
    student_spec = cfg.teacher if role_model == "teacher" else cfg.student
    student = build_classifier(student_spec, task.num_labels, len(tokenizer))
    teacher = build_classifier(cfg.teacher, task.num_labels, len(tokenizer)) if cls.needs(params).teacher != "none" else None
    distiller = cls(params, task, ModelInfo.of(student), ModelInfo.of(teacher))
    engine = Engine(distiller, student, teacher, task, cfg.train, total_steps=len(batches) + 1, device=device,
                    progress=False)
    engine.train_step(batches[0])  # warm-up: allocator, autograd graph caches
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in batches:
        engine.train_step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / len(batches)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="glue-cpu")
    p.add_argument("--task", default="rte")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--glue-dir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    s = suites.load(args.suite, tasks=[args.task], seeds=[1], methods=["kdfd"])
    cfg = next(j.config for j in s.jobs if j.config.method == "kdfd" and j.config.role != "teacher")
    task = get_task(args.task)
    tokenizer = load_tokenizer(cfg.resolved_tokenizer())
    data = load_task(task, cfg.data_source, args.glue_dir)
    ds = EncodedDataset(subset(data.train, cfg.train.batch_size * (args.steps + 1)), task, tokenizer,
                        cfg.train.max_length)
    batches = list(make_loader(ds, cfg.train.batch_size, shuffle=True, seed=0))[: args.steps + 1]
    device = resolve_device(cfg.train.device)

    seconds = {
        "finetune_student": time_method("finetune", "student", cfg, task, batches, tokenizer, device),
        "finetune_teacher": time_method("finetune", "teacher", cfg, task, batches, tokenizer, device),
        "vanilla_kd": time_method("vanilla-kd", "student", cfg, task, batches, tokenizer, device),
        "kdfd": time_method("kdfd", "student", cfg, task, batches, tokenizer, device),
    }
    out = {
        "suite": args.suite, "task": args.task, "steps": args.steps, "batch_size": cfg.train.batch_size,
        "device": str(device), "threads": torch.get_num_threads(), "seconds_per_step": seconds,
        "ratios": {
            "vanilla_kd / finetune_student": seconds["vanilla_kd"] / seconds["finetune_student"],
            "kdfd / (finetune_teacher + finetune_student)":
                seconds["kdfd"] / (seconds["finetune_teacher"] + seconds["finetune_student"]),
        },
    }
    for name, v in seconds.items():
        print(f"{name:<20} {v * 1000:8.1f} ms/step")
    for name, v in out["ratios"].items():
        print(f"{name:<44} {v:.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
