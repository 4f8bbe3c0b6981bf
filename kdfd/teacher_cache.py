"""The teacher-output cache of offline methods (a frozen teacher gives the same targets every epoch).

A frozen teacher in eval mode maps an example to the same outputs in every epoch, seed and method, so they are
computed once, in inference mode, and kept in float16 on disk, per example, under a key of

    sha256(teacher weights) / the outputs kept / sha256(the example's token ids and token type ids).

What is kept is what the method declares (`Needs`): logits [C] and features [H] always; hidden_states
[L+1, n, H], attentions [L, heads, n, n] and attention_scores [L, heads, n, n] when declared; n is the example's own
length, so padding is never stored. A batch is rebuilt as a `Forward` padded with zeros; every loss that reads
token positions masks the padded ones (kdfd.losses.attention_kl, masked_mse; [CLS] is never padding), so the only
difference from a live teacher is float16 rounding. `last_hidden` is hidden_states[-1] when hidden states are kept
and None otherwise; `pooler` is None.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import Collator, EncodedDataset
from .distiller import Needs
from .files import atomic_write, load_trusted
from .models import Forward

FORMAT = 1
DTYPE = torch.float16


def weights_key(model: nn.Module) -> str:
    """A hash of a model's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def example_key(input_ids: list[int], token_type_ids: list[int] | None) -> str:
    h = hashlib.sha256(str(list(input_ids)).encode())
    if token_type_ids is not None:
        h.update(str(list(token_type_ids)).encode())
    return h.hexdigest()[:20]


def kept_fields(needs: Needs) -> tuple[str, ...]:
    declared = [name for name in ("hidden_states", "attentions", "attention_scores") if getattr(needs, name)]
    return ("logits", "features", *declared)


class TeacherCache:
    """The cached outputs of one teacher (by its weights) for the outputs a method keeps, in one file
    `<dir>/<weights>-<fields>.pt` holding {example key: {field: float16 tensor}}."""

    def __init__(self, directory: Path, teacher: nn.Module, needs: Needs):
        self.fields = kept_fields(needs)
        self.path = Path(directory) / f"{weights_key(teacher)}-{'+'.join(self.fields)}.pt"
        self.examples: dict[str, dict[str, torch.Tensor]] = {}
        self.hits = self.computed = 0
        kept = load_trusted(self.path, self._load, "teacher cache", "rebuilding")
        if kept is not None:
            self.examples = kept

    def _load(self, path: Path) -> dict[str, dict[str, torch.Tensor]]:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != FORMAT or tuple(saved.get("fields", ())) != self.fields:
            raise ValueError("another format")
        return saved["examples"]

    def fill(self, forward: Callable[[dict], Forward], ds: EncodedDataset, batch_size: int) -> "CachedTeacher":
        """Compute the examples of `ds` the cache lacks with `forward` (the engine's teacher pass on a CPU batch,
        which moves it, autocasts, and asks for the declared outputs), in inference mode and longest first; save the
        cache if it grew; return the dataset's lookup table."""
        keys = [example_key(ds.input_ids[i], ds.token_type_ids[i] if ds.token_type_ids else None)
                for i in range(len(ds))]
        lengths = ds.lengths()
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.examples}.values(),
                         key=lambda i: -lengths[i])
        self.hits = len(ds) - len(missing)
        collate = Collator(ds.pad_id, ds.regression)
        with torch.inference_mode():
            for at in range(0, len(missing), batch_size):
                batch = collate([ds[i] for i in missing[at:at + batch_size]])
                out = forward(batch)
                for b, i in enumerate(batch["index"].tolist()):
                    self.examples[keys[i]] = self._one(out, b, lengths[i])
        self.computed = len(missing)
        if missing:
            atomic_write(self.path, lambda f: torch.save({"format": FORMAT, "fields": self.fields,
                                                          "examples": self.examples}, f), checksum=True)
        return CachedTeacher([self.examples[k] for k in keys], self.fields)

    def _one(self, out: Forward, b: int, n: int) -> dict[str, torch.Tensor]:
        """Example b of a batch, cut to its n real tokens, float16, on the CPU."""
        def keep(x):
            return x.to(DTYPE).cpu().clone()  # clone: a tensor of its own, not a view of the whole batch

        one = {"logits": keep(out.logits[b]), "features": keep(out.features[b])}
        if "hidden_states" in self.fields:
            one["hidden_states"] = keep(torch.stack([h[b, :n] for h in out.hidden_states]))
        for name in ("attentions", "attention_scores"):
            if name in self.fields:
                one[name] = keep(torch.stack([a[b, :, :n, :n] for a in getattr(out, name)]))
        return one


class CachedTeacher:
    """A dataset's cached teacher outputs, by dataset index: `forward(batch)` rebuilds the teacher's `Forward` for a
    batch of that dataset (shapes as the live teacher's, padded positions zero, float32)."""

    def __init__(self, rows: list[dict[str, torch.Tensor]], fields: tuple[str, ...]):
        self.rows, self.fields = rows, fields

    def forward(self, batch: dict, device: torch.device) -> Forward:
        mask = batch["attention_mask"]
        rows = [self.rows[i] for i in batch["index"].tolist()]
        width = mask.shape[1]

        def stacked(name):
            return torch.stack([r[name] for r in rows]).to(device, torch.float32)

        def padded(name, square: bool):
            first = rows[0][name]
            shape = ((first.shape[0], len(rows), *first.shape[1:-2])
                     + ((width, width) if square else (width, first.shape[-1])))
            out = torch.zeros(shape, dtype=torch.float32)
            for b, r in enumerate(rows):
                n = r[name].shape[-2]
                if square:
                    out[:, b, ..., :n, :n] = r[name]
                else:
                    out[:, b, :n] = r[name]
            return tuple(out.to(device).unbind(0))

        hidden = padded("hidden_states", False) if "hidden_states" in self.fields else None
        return Forward(
            logits=stacked("logits"), features=stacked("features"), last_hidden=hidden[-1] if hidden else None,
            pooler=None, attention_mask=mask,
            hidden_states=hidden,
            attentions=padded("attentions", True) if "attentions" in self.fields else None,
            attention_scores=padded("attention_scores", True) if "attention_scores" in self.fields else None,
        )
