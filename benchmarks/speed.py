"""`bench speed`: what distillation costs above plain fine-tuning, measured in one process on the same batches.

    bench speed [--suite glue-cpu] [--task mrpc] [--steps 4] [--rounds 5] [--glue-dir DIR] [--out reports/speed]

Steps, on the suite's models and the task's real training batches (the same batches for every method):
  student      a plain student fine-tuning step (the floor)
  teacher      a plain teacher fine-tuning step
  kd-live      vanilla KD, the frozen teacher run live each step
  kd-cache     vanilla KD from the teacher-output cache (filled once before timing; its cost is reported apart)
  kdfd         an online KDFD step (teacher phase, the updated teacher's targets, student phase)
  teacher-forward  the frozen teacher's forward pass alone (no grad): the extra pass eq. 5 asks of online methods
  metadistil, reptile-distil, lgtm  the teacher-learns-from-the-student methods: each step adds a look-ahead of
               the student (a pilot step, a second-order backward, finite differences) to an online step
  theseus, pesf-kd  the other rows of Table 1: a hybrid of frozen teacher modules and student layers; an online
               teacher updated through its adapters alone
Each is timed for `--steps` steps after one warm-up step, in `--rounds` interleaved rounds, each starting at a
different step kind; a ratio is taken within each round and its median over rounds is reported, so that machine
drift (a few 10 % on a shared machine) hits both sides of a ratio alike. Batching, on SST-2's real dev sentences:
one training epoch of the student over them and one evaluation pass, with every batch padded to 128 tokens,
padded to its longest example in file order (dynamic), and length-grouped (training) / longest-first (evaluation);
the evaluation's metrics must be identical. Ratios, not absolute times, compare across machines. Where a target is
missed, a torch.profiler table of that step is written beside the report.

The teacher cache keeps float16 outputs: its fidelity is measured on the same batches against the live teacher
(the largest logit and feature differences, the KL divergence between the two soft targets, the relative change of
the KD loss a student sees), the measurement behind the paper's suites caching frozen teachers by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from kdfd.data import Collator, EncodedDataset, load_task, make_loader, subset
from kdfd.engine import Engine, resolve_device, set_seed
from kdfd.job import build_models, resolve
from kdfd.losses import distill
from kdfd.metrics import compute
from kdfd.models import load_tokenizer
from kdfd.tasks import get_task

from . import suite as suites

TARGETS = {  # the cost targets: ratio name -> (the most it may be, or the least with "min")
    "kd-cache / student": (1.05, "max"),
    "kdfd / (teacher + student)": (1.15, "max"),
    "fixed-128 / grouped (train epoch)": (3.0, "min"),
}


# methods whose teacher learns from the student's feedback: several passes a step, timed beside the floor
FEEDBACK_METHODS = ("metadistil", "reptile-distil", "lgtm")
OTHER_ROWS = ("theseus", "pesf-kd")  # Table 1's other rows added with them, timed against the student floor


def build_engine(method: str, trained: str, cfg, task, tokenizer, device, total_steps: int, quiz=None) -> Engine:
    """An engine for `method` training the suite's student (or, with trained = teacher, its teacher alone), put
    together as a job does (the method's init_models; `quiz`, a dataset, as its quiz split when it asks for one)."""
    set_seed(0)
    spec = cfg.teacher if trained == "teacher" else cfg.student
    job = resolve(dataclasses.replace(cfg, method=method, params=cfg.params if method == cfg.method else {},
                                      student=spec))
    student, teacher, distiller = build_models(job, len(tokenizer))
    distiller.init_models(student, teacher)
    engine = Engine(distiller, student, teacher, task, cfg.train, total_steps=total_steps, device=device,
                    progress=False, needs=job.needs)
    if job.needs.quiz_fraction and quiz is not None:
        engine.use_quiz(make_loader(quiz, cfg.train.batch_size, shuffle=True, seed=1))
    return engine


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(engine: Engine, batches: list[dict]) -> float:
    """Mean seconds per training step over `batches`."""
    sync(engine.device)
    start = time.perf_counter()
    for b in batches:
        engine.train_step(b)
    sync(engine.device)
    return (time.perf_counter() - start) / len(batches)


@torch.no_grad()
def time_forward(engine: Engine, batches: list[dict]) -> float:
    """Mean seconds of the frozen teacher's forward pass (eval mode, no grad) per batch: what an online method must
    add to a teacher step and a student step to give the student the updated teacher's targets (paper eq. 5)."""
    engine.teacher.eval()
    batches = [engine.to_device(b) for b in batches]
    sync(engine.device)
    start = time.perf_counter()
    for b in batches:
        engine.forward(engine.teacher, b)
    sync(engine.device)
    return (time.perf_counter() - start) / len(batches)


@torch.no_grad()
def cache_fidelity(engine: Engine, cached, batches: list[dict], temperature: float) -> dict:
    """The cached teacher's outputs (`cached`: a kdfd.teacher_cache.CachedTeacher over the batches' dataset) against
    the live frozen teacher of `engine` on the same batches: the largest |logit| and |feature| differences, the
    largest KL(live soft targets || cached ones) at `temperature` (classification; batch mean), and the largest
    relative change of the KD loss (kdfd.losses.distill) of the engine's student against either."""
    engine.teacher.eval()
    engine.student.eval()
    worst = {"logit_max_abs_diff": 0.0, "feature_max_abs_diff": 0.0, "target_kl": 0.0, "kd_loss_rel_diff": 0.0}
    regression = engine.task.is_regression
    for batch in batches:
        b = engine.to_device(batch)
        live, cache = engine.forward(engine.teacher, b), cached.forward(batch, engine.device)
        student = engine.forward(engine.student, b).logits.float()
        live_logits = live.logits.float()
        kl = 0.0 if regression else torch.nn.functional.kl_div(
            torch.log_softmax(cache.logits / temperature, -1), torch.log_softmax(live_logits / temperature, -1),
            log_target=True, reduction="batchmean").item()
        loss_live = distill(student, live_logits, temperature, regression).item()
        loss_cache = distill(student, cache.logits, temperature, regression).item()
        for key, value in (("logit_max_abs_diff", (live_logits - cache.logits).abs().max().item()),
                           ("feature_max_abs_diff", (live.features.float() - cache.features).abs().max().item()),
                           ("target_kl", abs(kl)),
                           ("kd_loss_rel_diff", abs(loss_cache - loss_live) / max(abs(loss_live), 1e-12))):
            worst[key] = max(worst[key], value)
    return {**worst, "batches": len(batches), "temperature": temperature}


def pad_to(batch: dict, width: int) -> dict:
    """A batch padded to `width` tokens (the fixed padding that dynamic padding replaces)."""
    out = dict(batch)
    extra = width - batch["input_ids"].shape[1]
    for key, value in (("input_ids", 0), ("attention_mask", 0), ("token_type_ids", 0)):
        if key in batch:
            fill = batch["input_ids"].new_full((batch[key].shape[0], extra), value)
            out[key] = torch.cat([batch[key], fill], dim=1)
    return out


def step_costs(cfg, task, tokenizer, data, device, steps: int, rounds: int, configs: dict | None = None) -> dict:
    """Seconds per step of each kind; `configs`: a method's own job config where it has one in the suite (its
    parameters, its own student: ReptileDistil's has the teacher's widths), else `cfg`, KDFD's."""
    configs = configs or {}
    ds = EncodedDataset(subset(data.train, cfg.train.batch_size * (steps + 1)), task, tokenizer, cfg.train.max_length)
    batches = list(make_loader(ds, cfg.train.batch_size, shuffle=True, seed=0))[: steps + 1]
    total = (steps + 1) * rounds + 1
    engines = {
        "student": build_engine("finetune", "student", cfg, task, tokenizer, device, total),
        "teacher": build_engine("finetune", "teacher", cfg, task, tokenizer, device, total),
        "kd-live": build_engine("vanilla-kd", "student", cfg, task, tokenizer, device, total),
        "kd-cache": build_engine("vanilla-kd", "student", cfg, task, tokenizer, device, total),
        "kdfd": build_engine("kdfd", "student", cfg, task, tokenizer, device, total),
        # their quiz batches come from the same examples: a quiz batch costs what a training batch does
        **{m: build_engine(m, "student", configs.get(m, cfg), task, tokenizer, device, total, quiz=ds)
           for m in (*FEEDBACK_METHODS, *OTHER_ROWS)},
    }
    with tempfile.TemporaryDirectory() as cache_dir:  # a fresh cache: its fill is measured, then it is not kept
        fill = engines["kd-cache"].use_teacher_cache(Path(cache_dir), ds)
    # before any training step: both engines hold the same seeded teacher and student
    fidelity = cache_fidelity(engines["kd-live"], engines["kd-cache"].teacher_targets, batches,
                              engines["kd-live"].distiller.params.temperature)
    for e in engines.values():
        e.train_step(batches[0])  # warm-up: allocator, autograd graph caches
    seconds: dict[str, list[float]] = {name: [] for name in [*engines, "teacher-forward"]}
    names = list(seconds)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts elsewhere: no place bias
            if name == "teacher-forward":
                seconds[name].append(time_forward(engines["kd-live"], batches[1:]))
            else:
                seconds[name].append(time_steps(engines[name], batches[1:]))
    median = {name: statistics.median(v) for name, v in seconds.items()}
    return {"seconds_per_step": median, "rounds": seconds, "cache_fill": fill, "cache_fidelity": fidelity,
            "engines": engines,
            "batches": batches, "examples": len(ds)}


def batching_costs(cfg, task_name: str, tokenizer, glue_dir, device, limit: int | None = None) -> dict:
    """Fixed-128, dynamic and length-grouped batches over SST-2's dev sentences: a training epoch of the student
    (from the same initial weights each time) and an evaluation pass (whose predictions must agree)."""
    task = get_task(task_name)
    data = load_task(task, "auto", glue_dir)
    dev = subset(next(iter(data.dev.values())), limit)
    ds = EncodedDataset(dev, task, tokenizer, cfg.train.max_length)
    bs, width = cfg.train.batch_size, cfg.train.max_length
    loaders = {
        "fixed-128": (make_loader(ds, bs, shuffle=True, seed=0), width),
        "dynamic": (make_loader(ds, bs, shuffle=True, seed=0), None),
        "grouped": (make_loader(ds, bs, shuffle=True, seed=0, batching="grouped"), None),
    }
    out = {"task": task_name, "examples": len(ds), "mean_length": sum(ds.lengths()) / len(ds), "train": {}, "eval": {}}
    for name, (loader, pad) in loaders.items():
        batches = [pad_to(b, pad) if pad else b for b in loader]
        engine = build_engine("finetune", "student", cfg, task, tokenizer, device, len(batches))
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        out["train"][name] = {"seconds": time_steps(engine, batches) * len(batches), "steps": len(batches),
                              "padded_share": 1 - real / sum(b["input_ids"].numel() for b in batches)}
    engine = build_engine("finetune", "student", cfg, task, tokenizer, device, 1)
    eval_bs = cfg.train.eval_batch_size
    file_order = torch.utils.data.DataLoader(ds, batch_size=eval_bs, collate_fn=Collator(ds.pad_id, ds.regression))
    passes = {"fixed-128": [pad_to(b, width) for b in file_order], "dynamic": list(file_order),
              "longest-first": list(make_loader(ds, eval_bs, shuffle=False))}
    for name, batches in passes.items():
        sync(device)
        start = time.perf_counter()
        logits, gold = engine.predict("student", batches)
        sync(device)
        out["eval"][name] = {"seconds": time.perf_counter() - start, "metrics": compute(task, logits, gold),
                             "predictions": logits.argmax(-1).tolist()}
    first = out["eval"]["fixed-128"]["predictions"]
    out["eval_predictions_identical"] = all(v.pop("predictions") == first for v in out["eval"].values())
    return out


def profile_step(engine: Engine, batch: dict, path: Path) -> None:
    """A torch.profiler table (operators by total CPU time) of a few training steps, for a missed target."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if engine.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            engine.train_step(batch)
    path.write_text(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="bench speed", description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="glue-cpu")
    p.add_argument("--task", default="mrpc", help="the task whose training batches time the steps")
    p.add_argument("--batching-task", default="sst2", help="the task whose dev sentences time the batching")
    p.add_argument("--batching-examples", type=int, default=None, help="time the batching on this many (default: all)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--glue-dir", default=None)
    p.add_argument("--out", default="reports/speed", help="folder for speed.md, speed.json and any profiles")
    args = p.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        raise SystemExit(f"bench speed: --steps {args.steps} and --rounds {args.rounds} must be >= 1")

    s = suites.load(args.suite, tasks=[args.task], seeds=[1], methods=["kdfd", *FEEDBACK_METHODS, *OTHER_ROWS])
    configs = {}
    for j in s.jobs:  # each method's first grid point
        if j.config.role != "teacher":
            configs.setdefault(j.config.method, j.config)
    cfg = configs["kdfd"]
    task = get_task(args.task)
    tokenizer = load_tokenizer(cfg.resolved_tokenizer())
    device = resolve_device(cfg.train.device)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    steps = step_costs(cfg, task, tokenizer, load_task(task, cfg.data_source, args.glue_dir), device, args.steps,
                       args.rounds, configs)
    sec = steps["seconds_per_step"]
    batching = batching_costs(cfg, args.batching_task, tokenizer, args.glue_dir, device, args.batching_examples)
    train_b, eval_b = batching["train"], batching["eval"]
    by_round = [{k: v[r] for k, v in steps["rounds"].items()} for r in range(args.rounds)]

    def per_round(f):  # the median over rounds of a ratio taken within each round: drift cancels inside a round
        return statistics.median(f(x) for x in by_round)

    ratios = {
        "kd-live / student": per_round(lambda x: x["kd-live"] / x["student"]),
        "kd-cache / student": per_round(lambda x: x["kd-cache"] / x["student"]),
        "kdfd / (teacher + student)": per_round(lambda x: x["kdfd"] / (x["teacher"] + x["student"])),
        "teacher / student": per_round(lambda x: x["teacher"] / x["student"]),
        # eq. 5 puts a third teacher pass (a forward at theta_t^{m+1}) into every online step: the math's floor
        "kdfd / (teacher + teacher-forward + student)":
            per_round(lambda x: x["kdfd"] / (x["teacher"] + x["teacher-forward"] + x["student"])),
        # the look-ahead's passes: how many online steps (teacher + student) one step of each costs
        **{f"{m} / (teacher + student)": per_round(lambda x, m=m: x[m] / (x["teacher"] + x["student"]))
           for m in FEEDBACK_METHODS},
        **{f"{m} / student": per_round(lambda x, m=m: x[m] / x["student"]) for m in (*FEEDBACK_METHODS, *OTHER_ROWS)},
        "fixed-128 / dynamic (train epoch)": train_b["fixed-128"]["seconds"] / train_b["dynamic"]["seconds"],
        "fixed-128 / grouped (train epoch)": train_b["fixed-128"]["seconds"] / train_b["grouped"]["seconds"],
        "fixed-128 / longest-first (eval)": eval_b["fixed-128"]["seconds"] / eval_b["longest-first"]["seconds"],
    }
    verdicts = {k: (ratios[k] <= bound if kind == "max" else ratios[k] >= bound)
                for k, (bound, kind) in TARGETS.items()}
    profiles = {}
    for name, engine_name in (("kd-cache / student", "kd-cache"), ("kdfd / (teacher + student)", "kdfd")):
        if not verdicts[name]:
            path = out_dir / f"profile-{engine_name}.txt"
            profile_step(steps["engines"][engine_name], steps["batches"][1], path)
            profiles[name] = path.name
    from kdfd.provenance import collect

    result = {
        "suite": args.suite, "task": args.task, "steps": args.steps, "rounds": args.rounds,
        "batch_size": cfg.train.batch_size, "device": str(device), "threads": torch.get_num_threads(),
        "seconds_per_step": sec, "seconds_per_step_by_round": steps["rounds"], "cache_fill": steps["cache_fill"],
        "cache_fidelity": steps["cache_fidelity"], "batching": batching, "ratios": ratios,
        "targets": {k: {"bound": b, "kind": kind, "met": verdicts[k]} for k, (b, kind) in TARGETS.items()},
        "profiles": profiles, "provenance": collect(), "wall_seconds": time.perf_counter() - started,
    }
    (out_dir / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "speed.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(r: dict) -> str:
    sec, b = r["seconds_per_step"], r["batching"]
    lines = [
        f"# Speed: suite {r['suite']}, task {r['task']} ({r['device']}, {r['threads']} threads)", "",
        f"Training steps of batch {r['batch_size']} on {r['task']}'s real training batches (the same for every row), "
        f"median of {r['rounds']} interleaved rounds of {r['steps']} steps; each ratio below is the median of the "
        "ratios taken within a round.", "",
        "| step | ms / step | x student |", "|---|---:|---:|",
        *[f"| {name} | {1000 * v:.0f} | {v / sec['student']:.2f} |" for name, v in sec.items()], "",
        "Online KDFD updates the teacher, then gives the student the *updated* teacher's targets (paper eq. 5): one "
        "teacher forward more than a teacher step plus a student step, so the math's floor for its ratio is "
        "(teacher + teacher-forward + student) / (teacher + student), not 1.", "",
        "MetaDistil, ReptileDistil and LGTM add a look-ahead of the student to an online step: MetaDistil a pilot "
        "forward and a backward with its graph kept, a quiz forward and a backward through both (second order); "
        "ReptileDistil a pilot forward and backward; LGTM a pilot forward and backward, a quiz forward and backward "
        "and two perturbed student forwards. Their ratios to (teacher + student) count those passes.", "",
        f"The cache was filled once before timing: {r['cache_fill']['computed']} examples in "
        f"{r['cache_fill']['seconds']:.1f} s "
        "(a one-off cost per teacher, shared by every later epoch, method and run).", "",
        *fidelity_lines(r["cache_fidelity"]),
        "", "| ratio | measured | target | met |", "|---|---:|---:|---|",
    ]
    for name, v in r["ratios"].items():
        t = r["targets"].get(name)
        target = f"{'<=' if t['kind'] == 'max' else '>='} {t['bound']}" if t else ""
        lines.append(f"| {name} | {v:.3f} | {target} | {('yes' if t['met'] else '**no**') if t else ''} |")
    lines += ["",
              f"Batching over {b['task']}'s {b['examples']} dev sentences (mean {b['mean_length']:.1f} tokens):", "",
              "| batches | train epoch s | steps | padded tokens |", "|---|---:|---:|---:|",
              *[f"| {n} | {v['seconds']:.1f} | {v['steps']} | {100 * v['padded_share']:.0f}% |"
                for n, v in b["train"].items()],
              "", "| evaluation pass | s | metrics |", "|---|---:|---|",
              *[f"| {n} | {v['seconds']:.2f} | {', '.join(f'{k} {x:.4f}' for k, x in v['metrics'].items())} |"
                for n, v in b["eval"].items()],
              "", f"Evaluation predictions identical under the three paddings: {b['eval_predictions_identical']}."]
    if r["profiles"]:
        lines += ["", "Targets missed; profiles (operators by CPU time, 3 steps): "
                  + ", ".join(f"{k}: [{v}]({v})" for k, v in r["profiles"].items())]
    return "\n".join(lines) + "\n"


def fidelity_lines(f: dict) -> list[str]:
    return [f"The cache's float16 targets against the live teacher's, on the same {f['batches']} batches "
            f"(temperature {f['temperature']}); each the largest over the batches:", "",
            "| measure | largest |", "|---|---:|",
            *[f"| {name.replace('_', ' ')} | {f[name]:.2e} |"
              for name in ("logit_max_abs_diff", "feature_max_abs_diff", "target_kl", "kd_loss_rel_diff")]]


if __name__ == "__main__":
    main()
