"""The paper's tables as data: the shipped tables file against the paper's numbers, and one-line errors for a
tables file that is wrong."""

import pytest

from benchmarks import paper_tables
from kdfd.errors import ConfigError

HEAD = 'paper = "the paper"\n[[column]]\ntask = "mrpc"\nsplit = "dev"\nmetric = "f1"\nheader = "F1"\n'
TABLE = '[[table]]\nname = "table3"\ntitle = "T3"\nrows = [{method = "kdfd", paper = "KDFD"}]\n'


def test_the_shipped_tables_name_rows_that_the_paper_has_numbers_for():
    ref = paper_tables.load()
    numbers = paper_tables.paper_numbers()
    assert list(ref.tables) == ["table1", "table2", "table3"] and len(ref.columns) == 12
    for name, spec in ref.tables.items():
        for method, paper in spec.rows:
            if paper:  # every mapped row has a number in every column the paper reports for it
                assert any((name, paper, c.task, c.paper_metric) in numbers for c in ref.columns), (name, paper)
    mnli = [c for c in ref.columns if c.task == "mnli"]
    assert [(c.split, c.paper_metric) for c in mnli] == [("dev_matched", "accuracy_matched"),
                                                          ("dev_mismatched", "accuracy_mismatched")]
    assert ref.paper_row("kdfd") == "KDFD" and ref.paper_row("kdfd-ae") == "AE" and ref.paper_row("dml") is None
    assert ref.tables["table1"].not_run[0].paper == "ICR-KD"


@pytest.mark.parametrize("text, message", [
    (HEAD + TABLE.replace('"KDFD"', '"KDFD!"'),
     "table 'table3': unknown paper row 'KDFD!' (allowed: KDFD, Vanilla KD)"),
    (HEAD.replace('header = "F1"', 'header = "F1"\nheadr = "x"') + TABLE, "column #1: unknown key 'headr'"),
    (HEAD.replace('"mrpc"', '"mrcp"') + TABLE, "unknown task 'mrcp'"),
    (HEAD.replace('metric = "f1"', 'metric = "mcc"') + TABLE, "unknown metric of mrpc 'mcc' (allowed: accuracy, f1)"),
    (HEAD + TABLE.replace("}]", '}, {method = "kdfd"}]'), "method 'kdfd' has two rows"),
    (HEAD + TABLE + TABLE, "table name 'table3' appears twice"),
    (TABLE, "missing key 'paper'"),
])
def test_a_wrong_tables_file_is_a_one_line_error_naming_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "tables.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        paper_tables.load(path)
    assert message in str(e.value) and "\n" not in str(e.value)
