"""The report's tables as files: LaTeX without columns nothing of ours fills, booktabs rules, and the paper's rows
not run here named under the table rather than as a method."""

from benchmarks import report, report_writer
from benchmarks import suite as suites
from benchmarks.record_set import RecordSet

from .test_report import SUITE, VALUES, _write


def rows_of(tmp_path, name):
    path = tmp_path / "fixture.toml"
    path.write_text(SUITE)
    for job in suites.load(str(path)).jobs:
        c = job.config
        if c.role == "teacher":
            _write(tmp_path, job, metrics={"dev": {"f1": 0.9, "accuracy": 0.85}})
        else:
            f1, acc = VALUES[(c.method, c.params.get("temperature") if c.method == "vanilla-kd" else None, c.seed)]
            _write(tmp_path, job, metrics={"dev": {"f1": f1, "accuracy": acc}})
    selected = report.select(report.collect(suites.load(str(path)), RecordSet([tmp_path])).groups)
    return report.table(name, selected, report.paper_numbers())


def test_latex_keeps_the_columns_of_ours_with_booktabs_and_names_the_rows_not_run_in_its_caption(tmp_path):
    rows = rows_of(tmp_path, "table1")
    reference = report.paper_tables.load()
    tex = report_writer.latex(rows, reference.headers, "Table 1", "Ours: MRPC.")
    header = next(line for line in tex.splitlines() if line.startswith("Method &"))
    assert header == r"Method & MRPC F1 & MRPC acc \\"  # no all-dash task column, no all-dash average
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert "not run" not in body and "ICR-KD: not run: its method is public only" in tex.split(r"\small")[0]
    assert max(len(line.split(" & ")[0]) for line in body.strip().splitlines()) < 20  # method names, not sentences

    (method, why), = {(m, w) for m, w in zip(rows["method"], rows["why"]) if isinstance(w, str)}
    assert method == "ICR-KD (not run)"  # the md and csv name the row by the paper's method
    assert report_writer.not_run_notes(rows) == [f"ICR-KD: {why}"]
