from pathlib import Path

import pytest
import torch

from kdfd import synthetic
from kdfd.data import Collator, EncodedDataset, load_task, read_tsv, subset
from kdfd.errors import DataError
from kdfd.tasks import get_task

# train / dev row counts of the six complete tasks (see ../shared/data/glue/MANIFEST.md)
ROWS = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500), "rte": (2490, 277),
        "wnli": (635, 71)}


@pytest.mark.parametrize("task", sorted(ROWS))
def test_glue_tsv_row_counts(glue, task):
    data = load_task(get_task(task), "tsv", str(glue))
    assert (len(data.train), len(data.dev["dev"])) == ROWS[task]
    assert all(e.label is not None for e in data.train)


def test_cola_headerless_and_mrpc_bom_are_parsed(glue):
    cola = load_task(get_task("cola"), "tsv", str(glue))
    assert {e.label for e in cola.train} == {"0", "1"} and cola.train[0].text_b is None
    assert sum(e.label == "1" for e in cola.dev["dev"]) == 721
    mrpc = load_task(get_task("mrpc"), "tsv", str(glue))
    assert sum(e.label == "1" for e in mrpc.train) == 2474 and mrpc.train[0].text_b


def test_stsb_scores_are_numbers_in_range(glue):
    scores = [float(e.label) for e in load_task(get_task("stsb"), "tsv", str(glue)).dev["dev"]]
    assert min(scores) >= 0 and max(scores) <= 5


def _write(tmp_path, content: bytes) -> Path:
    p = tmp_path / "train.tsv"
    p.write_bytes(content)
    return p


RTE = get_task("rte")


@pytest.mark.parametrize("content,message", [
    (b"index\tsentence1\tsentence2\n0\ta\tb\n", "missing column 'label'"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\n", ":2: expected 4 tab-separated fields, found 3"),
    (b"", "empty file"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\xff\tb\tentailment\n", "not UTF-8"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", "label 'maybe' is not in the task's label set"),
])
def test_malformed_tsv_errors_name_the_file_and_the_defect(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(DataError) as e:
        read_tsv(path, RTE.layout, RTE.labels)
    assert message in str(e.value) and str(path) in str(e.value)


def test_missing_glue_dir_and_task_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_task(RTE, "tsv", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no folder RTE/"):
        load_task(RTE, "tsv", str(tmp_path))


def test_synthetic_tasks_are_deterministic_and_balanced():
    a = synthetic.generate("synth-pair", "train")
    synthetic.generate.cache_clear()
    assert synthetic.generate("synth-pair", "train") == a
    share = sum(e.label == "1" for e in a) / len(a)
    assert 0.4 < share < 0.6


def test_subset_is_fixed_and_keeps_order():
    items = list(range(100))
    assert subset(items, 10) == subset(items, 10) == sorted(subset(items, 10))
    assert subset(items, None) == items


def test_batches_are_padded_to_their_longest_example():
    task = get_task("synth-single")
    tok = synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate(task.name, "dev"))[:8], task, tok, max_length=128)
    batch = Collator(tok.pad_token_id, regression=False)([ds[i] for i in range(8)])
    lengths = ds.lengths()
    assert batch["input_ids"].shape == (8, max(lengths)) and max(lengths) < 128
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["labels"].dtype == torch.long


def test_epoch_order_depends_only_on_seed_and_epoch_and_resumes_at_a_position():
    from kdfd.data import EpochSampler

    a, b = EpochSampler(50, seed=3), EpochSampler(50, seed=3)
    a.set_epoch(2)
    full = list(a)
    assert sorted(full) == list(range(50)) and full != list(range(50))
    list(b)  # drawing other epochs first changes nothing
    b.set_epoch(2, start=20)
    assert list(b) == full[20:] and len(b) == 30
    a.set_epoch(3)
    assert list(a) != full
    c = EpochSampler(50, seed=4)
    c.set_epoch(2)
    assert list(c) != full


def test_the_data_fingerprint_follows_the_examples():
    from kdfd.data import TaskData, fingerprint, load_task
    from kdfd.tasks import get_task

    data = load_task(get_task("synth-pair"), "synthetic")
    assert fingerprint(data) == fingerprint(load_task(get_task("synth-pair"), "synthetic"))
    flipped = data.train[0]._replace(label="1" if data.train[0].label == "0" else "0")
    changed = TaskData(data.task, [flipped, *data.train[1:]], data.dev, data.source)
    assert fingerprint(changed) != fingerprint(data)
