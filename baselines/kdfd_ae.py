"""KDFD-AE: KDFD with a deterministic autoencoder in place of the VAE (the AE row of the KDFD paper's Table 2).

Identical to `kdfd` in every other respect (same parameters, same defaults); the bottleneck's KL term is gone and
the head reads the code z instead of z_mu. Registered under its own name so that suites and Table 2 can name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdfd.distiller import register
from kdfd.errors import ConfigError
from kdfd.kdfd import KDFD, KDFDParams


@dataclass(frozen=True)
class KDFDAEParams(KDFDParams):
    bottleneck: str = "ae"

    def __post_init__(self):
        super().__post_init__()
        # with a VAE it would be `kdfd` under another name, and Table 2's AE row would silently hold VAE runs
        if self.bottleneck != "ae":
            raise ConfigError(f"kdfd-ae: bottleneck = {self.bottleneck!r} is not allowed (allowed: ae; the VAE is "
                              "the method kdfd)")


@register
class KDFDAE(KDFD):
    name = "kdfd-ae"
    description = "KDFD with a deterministic autoencoder instead of the VAE (the paper's Table 2, AE row)"
    Params = KDFDAEParams
    scale = "as kdfd, L_vae without its KL term (the AE's squared reconstruction error alone)"
