"""The packages' own text: what a module cites must be in the repository (a reader of a clone has nothing else)."""

import re

from .conftest import ROOT

PACKAGES = ("kdfd", "baselines", "benchmarks")
# a file outside the clone: a path climbing out of it (../shared/...), or an absolute path of this machine
OUTSIDE = re.compile(r"\.\./shared/|\.\./papers/|\.\./reference/|(?<![\w.])/work/")


def test_no_module_cites_a_file_outside_the_repository():
    cited = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not cited, "\n".join(cited)
