"""The README and docs/ stay runnable: every `bench` command in their ```bash blocks names a real subcommand whose
`--help` works, the README's first screen takes a newcomer from install to a first report, and every relative link
points at a file that exists. Cheap: `--help` runs in-process, nothing trains."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from benchmarks import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FIRST_SCREEN = 60
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def bench_commands(page: Path) -> list[tuple[str, str]]:
    """(line, subcommand) for every line of a ```bash block that runs `bench` (after `VAR=value` assignments)."""
    found = []
    for block in bash_blocks(page.read_text()):
        for line in block.splitlines():
            code = line.split("#", 1)[0].strip()
            if not code:
                continue
            words = shlex.split(code.replace("[", " ").replace("]", " ").replace("|", " "))
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words.pop(0)
            if words and words[0] == "bench":
                found.append((line.strip(), words[1] if len(words) > 1 else ""))
    return found


COMMANDS = [(page.relative_to(ROOT).as_posix(), line, sub) for page in PAGES for line, sub in bench_commands(page)]


def subcommands() -> set[str]:
    parser = cli.parser()
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def test_pages_have_bench_commands():
    assert {p for p, _, _ in COMMANDS} >= {"README.md", "docs/running.md"}


@pytest.mark.parametrize("page,line,sub", COMMANDS, ids=[f"{p}: {line[:60]}" for p, line, _ in COMMANDS])
def test_bench_command_exists_and_helps(page, line, sub):
    assert sub in subcommands(), f"{page}: `{line}` names no subcommand of bench"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        cli.main([sub, "--help"])
    assert stop.value.code in (0, None), f"`bench {sub} --help` exited {stop.value.code}"
    assert "usage" in out.getvalue().lower()


def test_readme_lists_every_subcommand():
    listed = {sub for _, _, sub in COMMANDS}
    assert subcommands() <= listed, f"the README's Commands block misses {sorted(subcommands() - listed)}"


def test_first_screen_goes_from_install_to_report():
    screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    for needed in ("pip install torch==2.13.0", "bench run --suite smoke", "bench report --suite smoke",
                   "reports/smoke/report.md", "python -m pytest -q", "OMP_NUM_THREADS"):
        assert needed in screen, f"the README's first {FIRST_SCREEN} lines lack {needed!r}"
    assert re.search(r"## Test\n+```bash\npython -m pytest -q\n```", screen), "the README's test command block"


def test_first_screen_time_matches_smoke_suite():
    """The quick start's time is the one the smoke suite states about itself (benchmarks/suites/smoke.toml)."""
    import tomllib

    smoke = tomllib.loads((ROOT / "benchmarks" / "suites" / "smoke.toml").read_text())
    assert "about a minute" in smoke["description"]
    screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    assert "about a minute on 2 idle CPU cores" in screen


def test_ci_follows_the_quick_start():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^bench report --suite smoke\b", ci, flags=re.M), ".ci/run does not run the quick start's report"
    assert "python -m pytest -q" in ci


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    heads = re.findall(r"^#+\s+(.*)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_exist(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)  # links inside code are not links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        file = page.parent / path
        if not file.exists():
            missing.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_table_cells_stay_short(page):
    for line in page.read_text().splitlines():
        if line.startswith("|"):
            assert all(len(cell.strip()) <= 200 for cell in line.strip("|").split("|")), line[:80]
