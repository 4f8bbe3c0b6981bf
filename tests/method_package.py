"""A throwaway method package outside the repository, as a lab would keep one: its method module, a loss helper the
method imports, and the entry point (group `kdfd_bench.methods`) that makes `bench` load it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

METHOD = '''"""A throwaway method: cross-entropy on the student alone, scaled by the helper module's weight."""

from kdfd.distiller import Distiller, Needs
from kdfd.registry import register

from .loss import weighted_ce


@register
class LabCE(Distiller):
    name = "{name}"
    description = "a lab's throwaway method: weighted cross-entropy, no teacher"
    version = "{version}"

    @classmethod
    def needs(cls, params):
        return Needs()

    def student_loss(self, batch, s, t):
        ce = weighted_ce(s.logits, batch["labels"], self.task.is_regression)
        return {{"total": ce, "ce": ce}}
'''

LOSS = '''from kdfd import losses

WEIGHT = 1.0


def weighted_ce(logits, labels, regression):
    return WEIGHT * losses.task_loss(logits, labels, regression)
'''


def write_package(root: Path, package: str, method: str, version: str = "1") -> Path:
    """`root/<package>/` with `method.py` (the method `method`) and `loss.py` (its loss); returns the package folder."""
    folder = Path(root) / package
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / "method.py").write_text(METHOD.format(name=method, version=version))
    (folder / "loss.py").write_text(LOSS)
    return folder


def write_pyproject(root: Path, package: str, method: str) -> None:
    """A pyproject.toml beside the package, declaring the method's entry point, for `pip install`."""
    (Path(root) / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{package.replace("_", "-")}"\nversion = "0.1"\n\n'
        f'[project.entry-points."kdfd_bench.methods"]\n{method} = "{package}.method"\n\n'
        f'[tool.setuptools]\npackages = ["{package}"]\n')


def write_dist_info(root: Path, package: str, entry_points: str) -> None:
    """The metadata pip writes for an installed distribution (the folder importlib.metadata reads entry points from),
    written straight into `root`, a folder on the path: an installed package without an install."""
    info = Path(root) / f"{package}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[kdfd_bench.methods]\n{entry_points}\n")


def pip_install(source: Path, target: Path) -> subprocess.CompletedProcess:
    """pip install of the package at `source` into the folder `target`, nothing else touched."""
    return subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(target), str(source)], capture_output=True, text=True,
                          timeout=300)


def env_with(path: Path) -> dict:
    """The environment of a `bench` subprocess that finds what is under `path` (sys.path, distributions)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
