"""The feature bottleneck of KDFD (paper section 3.2, eqs. 6-8): a VAE, or a deterministic autoencoder (Table 2).

h [B, H] is encoded by two independent linear maps to z_mu [B, d] and z_logvar [B, d] (q(z|h) = N(mu, diag sigma^2)),
a sample z = mu + sigma * eps (training only; z = mu in eval mode) is decoded by a linear map back to h_hat [B, H].
The AE variant has one linear encoder, z = z_mu, and no KL term. A linear head on z_mu classifies (eq. 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .losses import gaussian_kl, reconstruction


@dataclass
class Encoded:
    z_mu: torch.Tensor  # [B, d]
    z_logvar: torch.Tensor | None  # [B, d]; None for the AE
    h_hat: torch.Tensor  # [B, H]


class Bottleneck(nn.Module):
    def __init__(self, d_in: int, d_latent: int, num_labels: int, variational: bool = True, reduction: str = "sum"):
        super().__init__()
        self.variational, self.reduction = variational, reduction
        self.enc_mu = nn.Linear(d_in, d_latent)
        self.enc_logvar = nn.Linear(d_in, d_latent) if variational else None
        self.dec = nn.Linear(d_latent, d_in)
        self.head = nn.Linear(d_latent, num_labels)

    def encode(self, h: torch.Tensor) -> Encoded:
        mu = self.enc_mu(h)
        if not self.variational:
            return Encoded(mu, None, self.dec(mu))
        logvar = self.enc_logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return Encoded(mu, logvar, self.dec(z))

    def logits(self, enc: Encoded) -> torch.Tensor:
        """Head(z_mu) of eq. 8: [B, num_labels]."""
        return self.head(enc.z_mu)

    def losses(self, enc: Encoded, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_vae of eq. 7 split into its terms: `recon` and (VAE only) `kl`."""
        out = {"recon": reconstruction(enc.h_hat, h, self.reduction)}
        if self.variational:
            out["kl"] = gaussian_kl(enc.z_mu, enc.z_logvar, self.reduction)
        return out
