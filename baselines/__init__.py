"""Baseline methods, one file each; importing this package registers them all with kdfd's method registry."""

from . import finetune, vanilla_kd  # noqa: F401
