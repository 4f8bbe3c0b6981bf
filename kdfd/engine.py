"""The training engine: the only training loop in the codebase.

It owns devices and autocast, optimizers and schedules, the step order of online methods, evaluation, loss
checks and logging. A `Distiller` only says what it needs and computes losses.

Step order for `online` methods (paper eqs. 4-5 and 9-10):
  1. student forward at theta_s^m (with grad; kept for step 4, the student's parameters do not change before it);
  2. teacher forward at theta_t^m (with grad), teacher loss against the detached student, teacher update;
  3. teacher forward again at theta_t^{m+1} (no grad, eval mode): the targets the student sees are the updated
     teacher's;
  4. student loss, student update.
Teacher targets (frozen and online) are always computed in eval mode, without dropout.
Methods whose teacher learns from the student's feedback (MetaDistil, ReptileDistil, LGTM) look one student step
ahead inside step 2, through `Distiller.student_fn` (the student as a function of its parameters) and
`Distiller.next_quiz` (batches of a quiz split held out of the training set, Needs.quiz_fraction); the student's own
parameters and optimizer change only in step 4.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function
from tqdm.auto import tqdm

from . import metrics as glue_metrics
from .checkpoint import Checkpointer, rng_state, set_rng_state
from .config import TrainConfig
from .distiller import FROZEN, NONE, ONLINE, Distiller, Needs, Stage, StudentFunction
from .errors import ConfigError, NonFiniteLossError
from .events import Events
from .faults import crash_point
from .files import atomic_write
from .models import Forward
from .parallel import Processes, all_reduce
from .tasks import Task
from .teacher_cache import TeacherCache

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(on: bool) -> bool:
    """With `on` (`bench run --deterministic`, the run context's `deterministic`): PyTorch's deterministic algorithms
    (an operation without one raises, naming itself, instead of varying), cuDNN without autotuning, cuBLAS's fixed
    workspace. CPU runs are bit-reproducible without it. Returns whether it is on."""
    if not on:
        return False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return True


@contextlib.contextmanager
def tf32(device: torch.device):
    """TF32 for the fp32 matmuls and convolutions outside autocast (CUDA, Ampere and later) while the engine
    computes, the previous settings restored afterwards. The switches are process-wide (torch's float32 matmul
    precision reads `high` everywhere once they are on), so they are set around each call of the engine and
    restored after it: set once, they would stay on for every later computation of the process (another job, a
    test, a caller's own model). Nothing changes on CPU or under deterministic algorithms."""
    if device.type != "cuda" or torch.are_deterministic_algorithms_enabled():
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _with_tf32(method):
    """An Engine method run under `tf32(self.device)` (nested calls set the same values: a no-op)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with tf32(self.device):
            return method(self, *args, **kwargs)

    return wrapper


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of `train.precision` on `device` (None: fp32, no autocast). auto: bf16 on a CUDA device
    that supports it (Ampere and later), fp16 on one that does not (V100, T4: the engine adds a gradient scaler),
    fp32 on CPU; bf16 and fp16 as asked, on any device."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def make_optimizer(modules: list[nn.Module], lr: float, weight_decay: float, fused: bool,
                   new_modules: nn.Module | None = None, module_lr: float | None = None) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (the BERT recipe). `new_modules` (a method's own
    modules) train at `module_lr` when it is set, else at `lr` like the rest."""
    def split(mods, seen):
        decay, no_decay = [], []
        for module in mods:
            for name, p in module.named_parameters():
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
        return decay, no_decay

    seen: set = set()
    owned = [new_modules] if new_modules is not None else []
    if module_lr is None:
        modules, owned = [*modules, *owned], []
    decay, no_decay = split(modules, seen)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if owned:
        m_decay, m_no_decay = split(owned, seen)
        # the schedule scales every group's lr by the same factor, so module_lr keeps its ratio to lr throughout
        groups += [{"params": m_decay, "weight_decay": weight_decay, "lr": module_lr},
                   {"params": m_no_decay, "weight_decay": 0.0, "lr": module_lr}]
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def linear_schedule(optimizer, total_steps: int, warmup_ratio: float, restarts: tuple[tuple[int, int], ...] = ()):
    """Linear warmup over the first `warmup_ratio` of the steps, then linear decay to zero at `total_steps`. Each
    (start, end) span of `restarts` runs its own warmup and decay over its steps instead, as a separate run would
    (a stage with `Stage.own_schedule`)."""
    def warmup_decay(step: int, steps: int) -> float:
        warmup = int(steps * warmup_ratio)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (steps - step) / max(1, steps - warmup))

    def factor(step):
        for start, end in restarts:
            if start <= step < end:
                return warmup_decay(step - start, end - start)
        return warmup_decay(step, total_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def detach(out: Forward) -> Forward:
    """A copy of a forward pass cut from its graph (what the teacher phase sees of the student)."""
    def cut(x):
        if x is None:
            return None
        if isinstance(x, tuple):
            return tuple(t.detach() for t in x)
        return x.detach()

    return Forward(**{f.name: cut(getattr(out, f.name)) for f in dataclasses.fields(Forward)})


class Engine:
    """Trains `student` (and `teacher`, for online methods) with `distiller`'s losses.

    Shapes: batches hold input_ids / attention_mask / token_type_ids LongTensor [B, T] and labels [B].
    `needs`: what the method asks of the engine, as the job resolved it (`kdfd.job.resolve`; `kdfd.distiller.needs_of`).
    `processes`: this process's place among a job's data-parallel processes (kdfd.parallel, in a torch.distributed
    group already joined; None or a world of 1: one process). Each then trains on its part of every batch, gradients
    and logged losses averaged over the whole batch; process 0 alone evaluates and writes checkpoints.
    """

    def __init__(self, distiller: Distiller, student: nn.Module, teacher: nn.Module | None, task: Task,
                 train: TrainConfig, total_steps: int, device: torch.device | None = None, progress: bool = True,
                 *, needs: Needs, processes: Processes | None = None):
        self.distiller, self.student, self.teacher, self.task, self.cfg = distiller, student, teacher, task, train
        self.needs = needs  # resolved with the job, which gives a teacher model wherever these ask for one
        self.processes = processes if processes is not None and processes.world > 1 else None
        self.lead = self.processes is None or self.processes.lead  # evaluates, writes checkpoints, says things
        self._count = self._total = 0  # data-parallel: this process's examples of the step's batch, and the batch's
        self.device = device or resolve_device(train.device)
        self.comm_device = self.device if self.device.type == "cuda" else torch.device("cpu")  # NCCL or gloo
        self.amp = autocast_dtype(self.device, train.precision)
        self.precision = PRECISION_NAMES[self.amp]  # what ran, for the record
        self.progress = progress
        self.step = 0
        self.teacher_targets = None  # a kdfd.teacher_cache.CachedTeacher, set by use_teacher_cache
        fused = self.device.type == "cuda"
        for m in (student, teacher, distiller):
            if m is not None:
                m.to(self.device)
                if train.compile:
                    m.compile()  # in place: state_dict keys stay as they are, so checkpoints do not change
        if self.processes is not None:  # every process starts from process 0's weights
            import torch.distributed as dist

            for m in (student, teacher, distiller):
                for t in [*m.parameters(), *m.buffers()] if m is not None else []:
                    dist.broadcast(t.data, src=0)
        self.opt_s = make_optimizer([student], train.lr, train.weight_decay, fused, distiller.student_modules,
                                    train.module_lr)
        self.stages = distiller.stages()
        self.stage_ends = stage_ends(self.stages, total_steps)
        # (first step, end step) of each stage, 0-based, end excluded
        self.stage_spans = list(zip([0, *self.stage_ends[:-1]], self.stage_ends))
        restarts = tuple(span for span, st in zip(self.stage_spans, self.stages) if st.own_schedule)
        self.sched_s = linear_schedule(self.opt_s, total_steps, train.warmup_ratio, restarts)
        self.opt_t = self.sched_t = None
        if self.needs.teacher == ONLINE:
            if self.needs.teacher_trains == "modules":  # before the optimizer, which takes what requires grad
                teacher.requires_grad_(False)
            self.opt_t = make_optimizer([teacher], self.needs.teacher_lr or train.teacher_lr, train.weight_decay, fused,
                                        distiller.teacher_modules, train.module_lr)
            self.sched_t = linear_schedule(self.opt_t, total_steps, train.warmup_ratio)
        elif self.needs.teacher == FROZEN:
            teacher.eval().requires_grad_(False)
        # fp16 autocast: a loss scaler per optimizer, so that small gradients do not flush to zero in fp16 (bf16
        # has fp32's range and needs none). The look-ahead steps of methods that learn from the student's feedback
        # (Distiller.student_fn) take their gradients unscaled.
        self.scalers: dict[int, torch.amp.GradScaler] = {}
        if self.amp == torch.float16:
            self.scalers = {id(o): torch.amp.GradScaler(self.device.type) for o in (self.opt_s, self.opt_t)
                            if o is not None}
        self.base_lrs_s = list(self.sched_s.base_lrs)
        self.stage_index = -1
        self._enter_stage(0)
        # for methods that learn from the student's feedback (kdfd.distiller.StudentFunction, Needs.quiz_fraction)
        distiller.student_fn = StudentFunction(student, self.functional_forward, self.opt_s, train.max_grad_norm)
        distiller.next_quiz = self.next_quiz
        if self.processes is not None:  # a look-ahead step would see this process's part of the batch only
            distiller.student_fn = distiller.next_quiz = Refused(
                f"method {distiller.name!r} looks one step ahead of the student (Distiller.student_fn), which cannot "
                "train data-parallel (see Distiller.data_parallel)")
        self.quiz_loader, self.quiz_drawn, self._quiz_batches = None, 0, None

    @_with_tf32
    def use_teacher_cache(self, directory: Path, train_ds) -> dict:
        """Offline methods: take the frozen teacher's training targets from the cache in `directory` (filled for the
        examples it lacks). Returns what it did: the cache file, examples found and computed, seconds."""
        if self.needs.teacher != FROZEN:
            raise ValueError(f"method {self.distiller.name!r} has a {self.needs.teacher!r} teacher: only a frozen "
                             "teacher's outputs can be cached")
        start = time.perf_counter()
        cache = TeacherCache(directory, self.teacher, self.needs)
        self.teacher.eval()
        self.teacher_targets = cache.fill(lambda b: self.forward(self.teacher, self.to_device(b)), train_ds,
                                          self.cfg.eval_batch_size)
        return {"file": cache.path.name, "found": cache.hits, "computed": cache.computed,
                "seconds": time.perf_counter() - start}

    # ------------------------------------------------------------------------------------------------- stages

    def _enter_stage(self, index: int) -> None:
        """Freeze the student's parameter groups that this stage does not train (the optimizer skips parameters
        without gradients, so a frozen group keeps its weights and its AdamW moments)."""
        self.stage_index = index
        stage = self.distiller.stage = self.stages[index]
        self.distiller.stage_span = self.stage_spans[index]
        if stage.lr_scale != 1.0 or self.sched_s.base_lrs != self.base_lrs_s:
            self.sched_s.base_lrs = [b * stage.lr_scale for b in self.base_lrs_s]
            factor = self.sched_s.lr_lambdas[0](self.sched_s.last_epoch)
            for group, base in zip(self.opt_s.param_groups, self.sched_s.base_lrs):
                group["lr"] = base * factor
        if stage.train is None:
            self.student.requires_grad_(True)
        else:
            groups = self.student.param_groups()
            unknown = set(stage.train) - set(groups)
            if unknown:
                raise ValueError(f"stage {stage.name!r} trains unknown groups {sorted(unknown)} "
                                 f"(allowed: {list(groups)})")
            for name, params in groups.items():
                for p in params:
                    p.requires_grad_(name in stage.train)
        if len(self.stages) > 1 and self.progress:
            tqdm.write(f"stage {index + 1}/{len(self.stages)} {stage.name!r} from step {self.step}")

    # ------------------------------------------------------------------------------------------------ forwards

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def forward(self, model: nn.Module, batch: dict) -> Forward:
        inputs = {k: batch[k] for k in INPUT_KEYS if k in batch}
        with self.autocast():
            return self.outputs(model(**inputs, hidden_states=self.needs.hidden_states,
                                      attentions=self.needs.attentions, attention_scores=self.needs.attention_scores))

    def outputs(self, out: Forward | None) -> Forward | None:
        """A forward pass as the losses take it: under autocast, its half-precision tensors cast to float32, so that
        a method's losses and own modules (KDFD's VAE, projections) compute in float32 outside autocast, as in an
        fp32 run (CPU autocast leaves even LayerNorm outputs in half precision). Without autocast: as it is."""
        if self.amp is None or out is None:
            return out

        def cast(x):
            if isinstance(x, tuple):
                return tuple(cast(t) for t in x)
            return x.float() if x is not None and x.is_floating_point() else x

        return Forward(**{f.name: cast(getattr(out, f.name)) for f in dataclasses.fields(Forward)})

    def functional_forward(self, params: dict, batch: dict) -> Forward:
        """The student's forward at `params` (name -> tensor; names left out take the model's own), as `forward`
        runs it otherwise: what `Distiller.student_fn` calls."""
        inputs = {k: batch[k] for k in INPUT_KEYS if k in batch}
        flags = {"hidden_states": self.needs.hidden_states, "attentions": self.needs.attentions,
                 "attention_scores": self.needs.attention_scores}
        with self.autocast():
            return self.outputs(torch.func.functional_call(self.student, params, (), {**inputs, **flags}))

    # ------------------------------------------------------------------------------------------- the quiz split

    def use_quiz(self, loader) -> None:
        """Give a method that asks for a quiz split (Needs.quiz_fraction) its batches: `loader` is a training loader
        over the quiz examples (kdfd.data.make_loader). The method draws them one at a time with `next_quiz`, in
        epochs of that loader's seeded order; how many were drawn is part of the checkpoint, so a resumed run draws
        the same ones."""
        if not hasattr(loader.sampler, "set_epoch"):
            raise ValueError("the quiz loader must be made by kdfd.data.make_loader (an EpochSampler)")
        self.quiz_loader, self._quiz_batches = loader, None

    def next_quiz(self) -> dict:
        """The next quiz batch, on the device: batch k of the quiz loader's epoch 1 + k // (batches per epoch)."""
        if self.quiz_loader is None:
            raise ValueError(f"method {self.distiller.name!r} draws quiz batches and none were given (Engine.use_quiz)")
        loader = self.quiz_loader
        per_epoch = math.ceil(len(loader.dataset) / loader.batch_size)
        epoch, k = divmod(self.quiz_drawn, per_epoch)
        if self._quiz_batches is None or k == 0:  # a new epoch, or the first draw after a resume
            loader.sampler.set_epoch(epoch + 1, k * loader.batch_size)
            self._quiz_batches = iter(loader)
        batch = next(self._quiz_batches)
        self.quiz_drawn += 1
        return self.to_device(batch)

    def to_device(self, batch: dict) -> dict:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()}

    # ----------------------------------------------------------------------------------------------- one step

    @_with_tf32
    def train_step(self, batch: dict, count: int | None = None) -> dict[str, float]:
        """One optimisation step; returns every loss term as `role/term`. Data-parallel: `batch` is this process's
        part of the step's batch, and `count` how many of its examples count (default all; 0 for a placeholder,
        kdfd.data.ShardedSampler); the terms returned are the whole batch's."""
        self._count = len(batch["labels"]) if count is None else count
        while self.step >= self.stage_ends[self.stage_index] and self.stage_index + 1 < len(self.stages):
            self._enter_stage(self.stage_index + 1)
            if self.stages[self.stage_index].fresh_optimizer:  # here, not in _enter_stage: a resumed run restores
                self.opt_s.state.clear()                        # the state saved after this reset
        crash_point("train-step")
        batch = self.to_device(batch)
        logs: dict[str, float] = {}
        self.student.train()
        self.distiller.train()
        # the phases are named for torch.profiler (bench speed's profiles); unprofiled, a label costs microseconds
        with record_function("student forward"):
            with self.autocast():  # a method's own model for the student phase (Distiller.student_forward)
                s = self.outputs(self.distiller.student_forward(batch, self.student, self.teacher, self.step))
            if s is None:
                s = self.forward(self.student, batch)
        t = None
        if self.needs.teacher == ONLINE:
            with record_function("teacher phase"):
                self.teacher.train()
                t_losses = self.distiller.teacher_loss(batch, self.forward(self.teacher, batch), detach(s))
                logs.update(self._check(t_losses, "teacher"))
                self._update(t_losses["total"], self.opt_t, self.sched_t,
                             [self.teacher, self.distiller.teacher_modules])
        with record_function("teacher targets"):
            if self.teacher_targets is not None:
                t = self.teacher_targets.forward(batch, self.device)
            elif self.needs.teacher != NONE:
                self.teacher.eval()
                # no_grad, not inference mode: losses save the targets for backward (MSE does), which autograd
                # refuses for inference tensors; the teacher cache computes its outputs in inference mode
                with torch.no_grad():
                    t = self.forward(self.teacher, batch)
        with record_function("student loss and update"):
            s_losses = self.distiller.student_loss(batch, s, t)
            logs.update(self._check(s_losses, "student"))
            self._update(s_losses["total"], self.opt_s, self.sched_s, [self.student, self.distiller.student_modules])
        self.step += 1
        return logs

    def _check(self, terms: dict[str, torch.Tensor], role: str) -> dict[str, float]:
        if "total" not in terms:
            raise KeyError(f"method {self.distiller.name!r}: {role} losses must include 'total'")
        # one device-to-host copy for all terms: a float() per term would wait on the device once per term
        stacked = torch.stack([v.detach().float() for v in terms.values()])
        if self.processes is not None:  # the whole batch's terms: each process's weighted by its examples
            stacked = self._batch_mean(stacked)
        values = dict(zip(terms, stacked.tolist()))
        for k, v in values.items():
            if not math.isfinite(v):
                raise NonFiniteLossError(self.step, k, v, role)
        return {f"{role}/{k}": v for k, v in values.items()}

    def _batch_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Data-parallel: the mean over the whole batch of per-example means `values` [K] of each process's part
        (each weighted by its examples, in float64); sets the batch's example count, which `_sync_grads` weights
        by."""
        packed = torch.cat([torch.tensor([float(self._count)], dtype=torch.float64, device=values.device),
                            values.double() * self._count if self._count else torch.zeros_like(values.double())])
        packed = all_reduce(packed, self.comm_device)
        self._total = int(round(packed[0].item()))
        return (packed[1:] / self._total).float()

    def _sync_grads(self, modules) -> bool:
        """Data-parallel, after a backward pass: every process's gradients replaced by the whole batch's (each
        process's weighted by its share of the examples, summed over the processes, in buckets of at most
        BUCKET elements). A parameter keeps no gradient where no process gave it one, as in one process (AdamW
        skips it). Returns whether any parameter has one."""
        seen, params = set(), []
        for m in modules:
            for p in (m.parameters() if m is not None else []):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        mine = self._count > 0  # a placeholder's gradients do not count
        flags = torch.tensor([float(mine and p.grad is not None) for p in params], dtype=torch.float32)
        flags = all_reduce(flags, self.comm_device).tolist()
        live = [p for p, f in zip(params, flags) if f > 0]
        for p, f in zip(params, flags):
            if f == 0:
                p.grad = None
        weight = self._count / self._total if self._total else 0.0
        for bucket in buckets(live):
            grads = [p.grad if mine and p.grad is not None else torch.zeros_like(p) for p in bucket]
            flat = torch.cat([g.reshape(-1) for g in grads]).mul_(weight)
            flat = all_reduce(flat, self.comm_device)
            at = 0
            for p in bucket:
                part = flat[at:at + p.numel()].view_as(p)
                at += p.numel()
                if p.grad is None:
                    p.grad = part.clone()
                else:
                    p.grad.copy_(part)
        return bool(live)

    def _update(self, loss, optimizer, scheduler, modules):
        optimizer.zero_grad(set_to_none=True)
        if self.processes is not None:
            return self._update_parallel(loss, optimizer, scheduler, modules)
        if not loss.requires_grad:  # a method's own forward ran frozen modules only: AdamW skips parameters
            optimizer.step()        # without gradients (no update), and the schedule goes on
            scheduler.step()
            return
        scaler = self.scalers.get(id(optimizer))
        if scaler is not None:  # fp16: scaled backward, unscaled clipping, a step skipped on inf/nan gradients
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            params = [p for m in modules for p in m.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            return
        loss.backward()
        params = [p for m in modules for p in m.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()

    def _update_parallel(self, loss, optimizer, scheduler, modules):
        """`_update` of a data-parallel process: backward on its part of the batch, the gradients averaged over the
        processes (`_sync_grads`) before unscaling and clipping, so that every process takes the same step. Every
        process calls the collectives in the same order, even one whose loss reached no parameter."""
        scaler = self.scalers.get(id(optimizer))
        scaled = scaler.scale(loss) if scaler is not None else loss  # also sets up the scaler where no backward runs
        if loss.requires_grad:
            scaled.backward()
        if not self._sync_grads(modules):  # no process's loss reached a parameter that trains
            optimizer.step()
            scheduler.step()
            return
        params = [p for m in modules for p in m.parameters() if p.grad is not None]
        if scaler is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            optimizer.step()
        scheduler.step()

    # --------------------------------------------------------------------------------------------- evaluation

    @_with_tf32
    @torch.no_grad()
    def predict(self, role: str, loader) -> tuple[np.ndarray, np.ndarray]:
        """Logits [N, C] and gold labels [N] of one model over a loader."""
        model = self.student if role == "student" else self.teacher
        model.eval()
        self.distiller.eval()
        logits, gold, index = [], [], []
        for batch in loader:
            crash_point("eval")
            index.append(batch["index"])
            batch = self.to_device(batch)
            out = self.forward(model, batch)
            logits.append(self.distiller.predict(role, out).float().cpu())
            gold.append(batch["labels"].cpu())
        order = in_file_order(index)
        return torch.cat(logits)[order].numpy(), torch.cat(gold)[order].numpy()

    @_with_tf32
    @torch.no_grad()
    def representations(self, role: str, loader) -> dict[str, np.ndarray]:
        """The distiller's named representations [N, D] (float32) and the gold labels [N] over a loader."""
        model = self.student if role == "student" else self.teacher
        model.eval()
        self.distiller.eval()
        parts: dict[str, list] = {}
        index = []
        for batch in loader:
            index.append(batch["index"])
            batch = self.to_device(batch)
            reps = self.distiller.representations(role, self.forward(model, batch))
            for k, v in {**reps, "labels": batch["labels"]}.items():
                parts.setdefault(k, []).append(v.float().cpu())
        order = in_file_order(index)
        return {k: torch.cat(v)[order].numpy() for k, v in parts.items()}

    def evaluate(self, role: str, loaders: dict) -> dict[str, dict[str, float]]:
        """The task's official metrics per dev split."""
        out = {}
        for split, loader in loaders.items():
            logits, gold = self.predict(role, loader)
            out[split] = glue_metrics.compute(self.task, logits, gold)
        return out

    def step_lrs(self) -> dict[str, float]:
        """The learning rates the last step used, per model (`role`) and for a method's own modules when
        train.module_lr gives them their own (`role-modules`). The schedules have already moved on to the next
        step's rates, so they are read one step back."""
        out = {}
        for role, sched in (("student", self.sched_s), ("teacher", self.sched_t)):
            if sched is not None:
                factor = sched.lr_lambdas[0](sched.last_epoch - 1)
                out[role] = sched.base_lrs[0] * factor
                if len(sched.base_lrs) > 2:  # make_optimizer's module_lr groups come after the model's two
                    out[f"{role}-modules"] = sched.base_lrs[2] * factor
        return out

    def _dev_scores(self, dev_loaders: dict) -> dict:
        """Dev metrics of the student, and of the teacher when it trains too (online methods); data-parallel,
        process 0 alone evaluates (the others get {})."""
        if not self.lead:
            return {}
        dev = {"student": self.evaluate("student", dev_loaders)}
        if self.needs.teacher == ONLINE:
            dev["teacher"] = self.evaluate("teacher", dev_loaders)
        return dev

    # ------------------------------------------------------------------------------------------------ the state

    def state_dict(self) -> dict:
        """Everything training changes (a frozen teacher is rebuilt from its own checkpoint, so it is left out)."""
        state = {"step": self.step, "stage_index": self.stage_index, "student": self.student.state_dict(),
                 "distiller": self.distiller.state_dict(), "opt_s": self.opt_s.state_dict(),
                 "sched_s": self.sched_s.state_dict()}
        if self.quiz_loader is not None:
            state["quiz_drawn"] = self.quiz_drawn
        if self.scalers:  # fp16 only: a resumed job goes on at the loss scale it had reached
            state["scalers"] = [s.state_dict() for s in self.scalers.values()]
        if self.opt_t is not None:
            state.update(teacher=self.teacher.state_dict(), opt_t=self.opt_t.state_dict(),
                         sched_t=self.sched_t.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.distiller.load_state_dict(state["distiller"])
        self.opt_s.load_state_dict(state["opt_s"])
        self.sched_s.load_state_dict(state["sched_s"])
        if self.opt_t is not None:
            self.teacher.load_state_dict(state["teacher"])
            self.opt_t.load_state_dict(state["opt_t"])
            self.sched_t.load_state_dict(state["sched_t"])
        self.step = state["step"]
        for scaler, saved in zip(self.scalers.values(), state.get("scalers", [])):
            scaler.load_state_dict(saved)
        if self.quiz_loader is not None:
            self.quiz_drawn, self._quiz_batches = state["quiz_drawn"], None
        if state["stage_index"] != self.stage_index:
            self._enter_stage(state["stage_index"])

    def _load(self, checkpointer: Checkpointer) -> dict | None:
        """The checkpoint to take up. Data-parallel, process 0 reads it first (and moves a damaged one aside), then
        the others: all take up the same one, or none."""
        if self.processes is None:
            return checkpointer.load()
        import torch.distributed as dist

        saved = checkpointer.load() if self.lead else None
        dist.barrier()
        return saved if self.lead else checkpointer.load()

    # ------------------------------------------------------------------------------------------------ the loop

    @_with_tf32
    def fit(self, train_loader, dev_loaders: dict, epochs: int, desc: str = "train",
            checkpointer: Checkpointer | None = None, events_to: Path | None = None,
            started: float | None = None) -> list[dict]:
        """Train for `epochs`; after each epoch, evaluate the student (and an online teacher). Returns the
        per-epoch curves: mean of every loss term, dev metrics per role and split, seconds, steps.

        With a `checkpointer`, saves every `checkpointer.every` steps and at each epoch's end, and first takes up
        the last checkpoint if there is one (`self.resumed_from` is then its step). Each checkpoint also keeps the
        seconds the job's processes have spent up to it (this one's since `started`, a `time.perf_counter()` taken
        when the job began, by default now), so a job spread over several processes knows its whole cost:
        `self.carried_seconds` is what the checkpoint taken up carried (None without one, or from a checkpoint
        written before it kept them). With `events_to`, every loss term, the learning rates and the dev metrics
        also go to that folder as TensorBoard events (kdfd.events), closed however training ends (a failed job's
        events show what led to the failure)."""
        self.events_to, self.events = events_to, None
        try:
            return self._fit(train_loader, dev_loaders, epochs, desc, checkpointer,
                             time.perf_counter() if started is None else started)
        finally:
            if self.events is not None:
                self.events.close()
                self.events = None

    def _fit(self, train_loader, dev_loaders: dict, epochs: int, desc: str,
             checkpointer: Checkpointer | None, started: float) -> list[dict]:
        history, first_epoch, skip, sums, counts, n = [], 1, 0, {}, {}, 0
        window: dict[str, list[float]] = {}  # loss sums and counts since the last step-curve point
        self.step_curve = []  # with train.eval_every: [{step, epoch, loss, dev}] every eval_every steps
        self.resumed_from = self.carried_seconds = None
        saved = self._load(checkpointer) if checkpointer else None
        if saved is not None:
            self.load_state_dict(saved["engine"])
            ranks = saved.get("rng_ranks")
            if self.processes is not None and ranks is not None and len(ranks) == self.processes.world:
                set_rng_state(ranks[self.processes.rank])  # each process goes on with its own stream
            elif self.lead:  # in another number of processes, the others go on from their own seeds
                set_rng_state(saved["rng"])
            history, first_epoch, skip = saved["history"], saved["epoch"], saved["batch"]
            sums, counts, n = saved["sums"], saved["counts"], saved["batch"]
            self.step_curve, window = saved.get("step_curve", []), saved.get("window", {})
            self.resumed_from, self.carried_seconds = self.step, saved.get("spent_seconds")
            # said even without progress bars: a SLURM task's log must show where it took up
            if self.lead:
                tqdm.write(f"{desc}: resumed from checkpoint {checkpointer.path.name} at step {self.step} "
                           f"(epoch {first_epoch}, batch {skip})")
        if self.events_to is not None:  # opened once the resume point is known: what came after it is purged
            # a folder (TensorBoard alone), or the caller's opener of the job's trackers (kdfd.events.Events)
            opener = self.events_to if callable(self.events_to) else lambda start: Events(self.events_to, start)
            self.events = opener(self.resumed_from)

        def save(epoch: int, batch: int) -> None:
            if self.events is not None:  # a checkpoint at step T: the events up to T are on disk
                self.events.flush()
            extra = {}
            if self.processes is not None:  # every process's RNG state, which process 0 alone writes
                import torch.distributed as dist

                ranks = [None] * self.processes.world
                dist.all_gather_object(ranks, rng_state())
                extra = {"rng_ranks": ranks, "processes": self.processes.world}
                if not self.lead:
                    return
            checkpointer.save({"engine": self.state_dict(), "rng": rng_state(), "history": history, "epoch": epoch,
                               "batch": batch, "sums": sums, "counts": counts, "step_curve": self.step_curve,
                               "window": window,
                               "spent_seconds": (self.carried_seconds or 0.0) + time.perf_counter() - started,
                               **extra})

        sampler = train_loader.sampler
        sharded = self.processes is not None
        if sharded and not hasattr(sampler, "local_count"):
            raise ValueError("a data-parallel process trains on its part of each batch: a loader made by "
                             "kdfd.data.make_loader with shard=(rank, world)")
        for epoch in range(first_epoch, epochs + 1):
            if hasattr(sampler, "set_epoch"):  # from example `skip` batches into the (global) order
                sampler.set_epoch(epoch, skip * getattr(sampler, "global_batch_size", train_loader.batch_size))
            elif skip:
                raise ValueError("resuming mid-epoch needs a loader made by kdfd.data.make_loader (an EpochSampler)")
            start = time.perf_counter()
            bar = tqdm(train_loader, desc=f"{desc} epoch {epoch}/{epochs}", leave=False, disable=not self.progress)
            for batch in bar:
                logs = self.train_step(batch, sampler.local_count(n)) if sharded else self.train_step(batch)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1  # staged methods log different terms in different stages
                    acc = window.setdefault(k, [0.0, 0])
                    acc[0], acc[1] = acc[0] + v, acc[1] + 1
                n += 1
                if self.events is not None:
                    self.events.scalars("loss", self.step, logs)
                    self.events.scalars("lr", self.step, self.step_lrs())
                if self.cfg.eval_every and self.step % self.cfg.eval_every == 0:
                    self.step_curve.append({"step": self.step, "epoch": epoch, "stage": self.distiller.stage.name,
                                            "loss": {k: a / c for k, (a, c) in window.items()},
                                            "dev": self._dev_scores(dev_loaders)})
                    if self.events is not None:
                        self.events.dev(self.step, self.step_curve[-1]["dev"])
                    window = {}
                bar.set_postfix({"loss": f"{sums['student/total'] / counts['student/total']:.4f}"}, refresh=False)
                if checkpointer and self.step % checkpointer.every == 0:
                    save(epoch, n)
            train_seconds = time.perf_counter() - start
            dev = self._dev_scores(dev_loaders)
            if self.events is not None:
                self.events.dev(self.step, dev)
            history.append({
                "epoch": epoch, "steps": self.step, "train_seconds": train_seconds,
                "eval_seconds": time.perf_counter() - start - train_seconds,
                "loss": {k: v / counts[k] for k, v in sums.items()}, "dev": dev, "stage": self.distiller.stage.name,
            })
            if self.progress:
                scores = " ".join(f"{role} {split} {k} {v:.4f}" for role, by_split in dev.items()
                                  for split, m in by_split.items() for k, v in m.items())
                tqdm.write(f"{desc} epoch {epoch}/{epochs}: loss {history[-1]['loss']['student/total']:.4f}; {scores}")
            skip, sums, counts, n = 0, {}, {}, 0
            if checkpointer:
                save(epoch + 1, 0)
        return history


BUCKET = 2**25  # elements per all-reduce of gradients (128 MiB of float32): a bounded extra copy


def buckets(params: list) -> list[list]:
    """Consecutive groups of parameters of one dtype and device, each of at most BUCKET elements (or one parameter)."""
    out, size = [], 0
    for p in params:
        if not out or size + p.numel() > BUCKET or (p.dtype, p.device) != (out[-1][0].dtype, out[-1][0].device):
            out.append([])
            size = 0
        out[-1].append(p)
        size += p.numel()
    return out


class Refused:
    """Stands for what a data-parallel process cannot offer a method (`Distiller.student_fn`, `next_quiz`): any
    use raises, naming the method and why."""

    def __init__(self, why: str):
        self.why = why

    def __call__(self, *args, **kwargs):
        raise ConfigError(self.why)

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        raise ConfigError(self.why)


def in_file_order(index: list[torch.Tensor]) -> torch.Tensor:
    """The permutation that puts rows gathered in loader order back in dataset order (loaders may sort by length)."""
    return torch.argsort(torch.cat(index))


def stage_ends(stages: list[Stage], total_steps: int) -> list[int]:
    """The step at which each stage ends: shares are normalised and split total_steps (the last stage takes the
    rounding remainder, and every stage gets at least one step when there are enough)."""
    if not stages:
        raise ValueError("a method must declare at least one stage")
    shares = [s.share for s in stages]
    if any(not share > 0 for share in shares):
        raise ValueError(f"stage shares must be > 0, got {shares}")
    total_share, ends, acc = sum(shares), [], 0.0
    for share in shares[:-1]:
        acc += share
        ends.append(max(len(ends) + 1, round(total_steps * acc / total_share)))
    return ends + [max(total_steps, len(stages))]


def save_state(module: nn.Module, path: Path) -> None:
    """Write a state dict atomically: a reader sees the old file or the complete new one, never a partial one."""
    atomic_write(path, lambda f: torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, f))
