"""The packages' own text: what a module cites must be in the repository (a reader of a clone has nothing else)."""

import re

from .conftest import ROOT

PACKAGES = ("kdfd", "baselines", "benchmarks")
CONFIG = ROOT / "kdfd" / "config.py"  # the one validator of the TOML files
# a file outside the clone: a path climbing out of it (../shared/...), or an absolute path of this machine
OUTSIDE = re.compile(r"\.\./shared/|\.\./papers/|\.\./reference/|(?<![\w.])/work/")


def test_no_module_cites_a_file_outside_the_repository():
    cited = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not cited, "\n".join(cited)


def test_toml_files_are_read_and_their_keys_checked_in_one_place():
    """Every TOML file the project reads (suites, a paper's tables and claims, paper.toml) goes through
    kdfd.config's `read_toml` and `build` / `check_keys`: no module parses TOML or checks a table's keys itself."""
    own = re.compile(r"tomllib\.loads|unknown key ")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")) if path != CONFIG
             for n, line in enumerate(path.read_text().splitlines(), 1) if own.search(line)]
    assert not found, "\n".join(found)
