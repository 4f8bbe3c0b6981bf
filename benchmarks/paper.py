"""A paper as data: one folder under `benchmarks/reference/` per paper, holding

- `paper.toml`: its focal method and the report's words for it (`Paper`, below);
- `tables.toml` and `paper_tables.csv`: its tables and their numbers (`benchmarks.paper_tables`);
- `claims.toml`: its testable claims (`benchmarks.verdicts`).

The report, the verdicts and the figures read these; none of them names a method or parameter of its own. A suite
names its paper (`paper = "kdfd"`: a folder here, or a folder's path, relative to the suite file); `bench report
--paper` overrides it. No torch.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from kdfd.config import build, derived, nonempty, read_toml
from kdfd.errors import ConfigError, one_of

REFERENCE = Path(__file__).resolve().parent / "reference"
FALLBACK = "kdfd"  # the default when several papers are here and a suite names none


@dataclass(frozen=True)
class Paper:
    """`paper.toml`: the focal method (every comparison is it minus another), its name in the report's prose, the
    swept parameters of Fig. 5 (parameter -> axis label, in the order drawn), the methods whose bottleneck z_mu
    Figs. 3-4 set beside the raw feature, the dimension h is reduced to before its silhouette is set beside z_mu's
    (None: h's own), and the report's paper-specific paragraphs (empty: left out)."""

    method: str = nonempty()
    name: str = nonempty()
    swept: dict[str, str] = field(default_factory=dict)
    represented: tuple[str, ...] = ()
    latent: int | None = None
    ablations: str = ""  # how to read the ablations' rows, under their heading
    inconsistencies: str = ""  # the lead-in to the list of the paper's own differing numbers
    folder: Path = derived(REFERENCE / FALLBACK)  # where it was read from

    @property
    def tables(self) -> Path:
        return self.folder / "tables.toml"

    @property
    def numbers(self) -> Path:
        return self.folder / "paper_tables.csv"

    @property
    def claims(self) -> Path:
        return self.folder / "claims.toml"

    def shown(self, path: Path) -> str:
        """A file of the paper as the report names it: relative to the repository when inside it."""
        root = REFERENCE.parents[1]
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def available() -> list[str]:
    return sorted(p.parent.name for p in REFERENCE.glob("*/paper.toml"))


def default() -> str:
    """The one paper here, or FALLBACK among several."""
    papers = available()
    return papers[0] if len(papers) == 1 else FALLBACK


def folder_of(name: str | None, relative_to: Path | None = None) -> Path:
    """A paper's folder: a name under REFERENCE, or a path (relative to `relative_to`, the suite file's folder)."""
    name = name or default()
    if "/" in name or name.startswith("."):
        path = Path(name) if relative_to is None else relative_to / name
        if not (path / "paper.toml").is_file():
            raise ConfigError(f"paper folder {str(path)!r} has no paper.toml")
        return path.resolve()
    if name not in available():
        raise ConfigError(one_of("paper", name, available()))
    return REFERENCE / name


@functools.cache
def _read(folder: Path) -> Paper:
    where = f"paper file {folder / 'paper.toml'}"
    raw = read_toml(folder / "paper.toml", where)
    return dataclasses.replace(build(Paper, raw, where), folder=folder)


def load(name: str | None = None, relative_to: Path | None = None) -> Paper:
    """The paper `name` (a folder under REFERENCE or a folder's path; None: `default()`), checked once per process:
    ConfigError with a one-line message naming the key and the allowed ones."""
    return _read(folder_of(name, relative_to))
