"""Loss functions shared by the methods. Logits are [B, C]; regression outputs are [B, 1]; labels are [B]."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Cross-entropy for classification; mean squared error for regression (the L_ce of eqs. 1, 3 and 8)."""
    if regression:
        return F.mse_loss(logits[:, 0].float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def kd_kl(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-label distillation (Hinton et al. 2015): tau^2 * KL(softmax(target/tau) || softmax(logits/tau)),
    averaged over the batch. The target is the distribution being matched; detach it where it must not learn.
    The tau^2 factor keeps gradient magnitudes comparable across temperatures."""
    log_p = F.log_softmax(logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(target_logits.float() / temperature, dim=-1)
    return F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") * temperature**2


def kd_mse(outputs: torch.Tensor, target_outputs: torch.Tensor) -> torch.Tensor:
    """Distillation for regression: mean squared error between the two models' scores (no temperature)."""
    return F.mse_loss(outputs.float(), target_outputs.float())


def distill(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float, regression: bool) -> torch.Tensor:
    """L_kd of eqs. 1 and 3: KL at a temperature for classification, MSE for regression."""
    return kd_mse(logits, target_logits) if regression else kd_kl(logits, target_logits, temperature)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) of eq. 7; mu, logvar [B, d].
    `sum` sums over the d latent dimensions, `mean` averages over them; both average over the batch."""
    per_dim = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())
    return _reduce(per_dim, reduction)


def reconstruction(h_hat: torch.Tensor, h: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """-E_q[log p(h|z)] of eq. 7 for a Gaussian decoder with unit variance, up to the constant and the factor 1/2:
    the squared error over the H feature dimensions (`sum`) or its mean (`mean`); averaged over the batch."""
    return _reduce((h_hat.float() - h.float()).pow(2), reduction)


def _reduce(per_dim: torch.Tensor, reduction: str) -> torch.Tensor:
    per_example = per_dim.sum(-1) if reduction == "sum" else per_dim.mean(-1)
    return per_example.mean()


def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float = 1.0,
                       reduction: str = "mean") -> torch.Tensor:
    """TinyBERT's prediction-layer loss (Jiao et al. 2020, eq. 10): -softmax(z_t / tau) . log_softmax(z_s / tau),
    no tau^2 factor. logits, target_logits [B, C]. `mean` averages over the B x C entries, as the authors' code does
    (`(-targets_prob * student_likelihood).mean()`); `sum` sums over classes and averages over the batch (C times
    larger: eq. 10 as printed)."""
    target = F.softmax(target_logits.float() / temperature, dim=-1)
    per_entry = -(target * F.log_softmax(logits.float() / temperature, dim=-1))
    return per_entry.mean() if reduction == "mean" else per_entry.sum(-1).mean()


def kd_kl_elementwise(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """BERT-PKD's soft-label term as its authors' code computes it: tau^2 * nn.KLDivLoss() (reduction `mean`, over
    the B x C entries) of log_softmax(z_s / tau) against softmax(z_t / tau). Equals kd_kl / C."""
    return kd_kl(logits, target_logits, temperature) / logits.shape[-1]


def patient_loss(student_cls: torch.Tensor, teacher_cls: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BERT-PKD's L_PT (Sun et al. 2019, eq. 6) between the L2-normalised [CLS] states of matched layers.
    student_cls, teacher_cls [B, L, H] (L layer pairs). `mean`: F.mse_loss over the B x L x H entries, as the authors'
    code (`patience_loss` with normalized_patience) does; `sum`: the squared distance summed over H and over the L
    pairs, averaged over the batch (eq. 6 as printed; H x L times larger)."""
    s = F.normalize(student_cls.float(), dim=-1)
    t = F.normalize(teacher_cls.float(), dim=-1)
    if reduction == "mean":
        return F.mse_loss(s, t)
    return (s - t).pow(2).sum((-1, -2)).mean()


def attention_probs(scores: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Self-attention probabilities before dropout: softmax over the real keys of pre-softmax scores [B, heads, T, T]
    (attention_mask [B, T]); padded keys get 0. Hugging Face's eager attention returns its probabilities *after*
    dropout in train mode, whose rows no longer sum to 1: distillation losses read these instead."""
    keys = attention_mask[:, None, None, :].bool()
    return torch.softmax(scores.float().masked_fill(~keys, float("-inf")), dim=-1)


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 - cos(student, teacher), averaged over the batch (Aguilar et al.'s [CLS] activation loss). [B, H] each."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


def attention_kl(student_probs: torch.Tensor, teacher_probs: torch.Tensor,
                 attention_mask: torch.Tensor) -> torch.Tensor:
    """KL(A_t || A_s) between self-attention distributions (Aguilar et al.): for every head and every non-padded
    query token, the KL between the teacher's and the student's attention rows, averaged over heads and query
    tokens. probs [B, heads, T, T] (rows sum to 1, padded keys 0); attention_mask [B, T]."""
    t, s = teacher_probs.float(), student_probs.float().clamp_min(1e-12)
    per_row = (torch.xlogy(t, t) - torch.xlogy(t, s)).sum(-1)  # [B, heads, T]; 0 log 0 = 0 on padded keys
    rows = attention_mask[:, None, :].to(per_row.dtype).expand_as(per_row)
    return (per_row * rows).sum() / rows.sum().clamp_min(1.0)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where `mask` is 1 (TinyBERT's hidden-state, embedding and attention
    losses with padded positions left out). student, teacher [B, ..]; mask broadcastable to them."""
    mask = mask.to(torch.float32).expand_as(student)
    return ((student.float() - teacher.float()).pow(2) * mask).sum() / mask.sum().clamp_min(1.0)
