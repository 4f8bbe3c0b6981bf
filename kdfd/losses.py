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
