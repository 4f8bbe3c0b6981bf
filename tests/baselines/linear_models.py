"""Linear stand-ins for the student and the teacher: the meta-learning methods' gradients on them can be derived by
hand and written out in a test."""

from __future__ import annotations

import torch
from torch import nn

from kdfd.models import Forward


class Linear(nn.Module):
    """logits = x W, x given as `input_ids` (float features [B, D]), W [D, C]."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **_):
        return Forward(logits=input_ids @ self.w, last_hidden=None, pooler=None, attention_mask=attention_mask)


def softmax(z: torch.Tensor) -> torch.Tensor:
    e = (z - z.max(-1, keepdim=True).values).exp()
    return e / e.sum(-1, keepdim=True)


def jacobian(p: torch.Tensor) -> torch.Tensor:
    """d softmax / d logits per row: diag(p) - p p^T, [B, C, C] for p [B, C]."""
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def data(b: int, d: int, c: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g)
    return {"input_ids": x, "attention_mask": torch.ones(b, 1), "labels": torch.randint(0, c, (b,), generator=g)}
