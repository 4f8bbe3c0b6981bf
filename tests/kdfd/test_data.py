import numpy as np
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


def test_grouped_order_is_seeded_sorted_within_mega_batches_and_resumes_at_a_batch():
    from kdfd.data import EpochSampler, GroupedEpochSampler

    lengths = [int(x) for x in torch.randint(5, 120, (203,), generator=torch.Generator().manual_seed(0))]
    a = GroupedEpochSampler(lengths, batch_size=8, seed=3, group_size=5)
    a.set_epoch(2)
    full = list(a)
    assert sorted(full) == list(range(203))
    batches = [full[k:k + 8] for k in range(0, 203, 8)]
    assert len(batches[-1]) == 203 % 8  # the short batch stays last
    assert all(sorted(b, key=lambda i: -lengths[i]) == b for b in batches)
    # each full mega-batch (40 examples of one random draw) is cut into 5 batches in length order
    plain = EpochSampler(203, seed=3)
    plain.set_epoch(2)
    first_mega = set(list(plain)[:40])
    assert sum(set(b) <= first_mega for b in batches) == 5
    # padded tokens: grouped batches pad far less than shuffled ones
    def padding(order):
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b)
                   for b in (order[k:k + 8] for k in range(0, 203, 8)))
    assert padding(full) < 0.5 * padding(list(plain))
    b = GroupedEpochSampler(lengths, batch_size=8, seed=3, group_size=5)
    b.set_epoch(2, start=3 * 8)
    assert list(b) == full[24:]
    a.set_epoch(3)
    assert list(a) != full


def test_evaluation_goes_longest_first_and_predictions_come_back_in_file_order():
    import baselines  # noqa: F401
    from kdfd.data import make_loader
    from kdfd.distiller import METHODS
    from tests.kdfd.helpers import setup

    task = get_task("synth-pair")
    ds = EncodedDataset(list(synthetic.generate(task.name, "dev"))[:40], task, synthetic.build_tokenizer(), 64)
    loader = make_loader(ds, 16, shuffle=False)
    widths = [b["input_ids"].shape[1] for b in loader]
    assert widths == sorted(widths, reverse=True)
    engine, *_ = setup(METHODS["finetune"])
    logits, gold = engine.predict("student", loader)
    one_by_one = [engine.predict("student", make_loader(EncodedDataset([ex], task, synthetic.build_tokenizer(), 64),
                                                        1, shuffle=False))[0][0] for ex in list(synthetic.generate(task.name, "dev"))[:40]]
    assert gold.tolist() == ds.labels
    assert torch.allclose(torch.tensor(logits), torch.tensor(np.array(one_by_one)), atol=1e-5)


def test_the_data_fingerprint_follows_the_examples():
    from kdfd.data import TaskData, fingerprint, load_task
    from kdfd.tasks import get_task

    data = load_task(get_task("synth-pair"), "synthetic")
    assert fingerprint(data) == fingerprint(load_task(get_task("synth-pair"), "synthetic"))
    flipped = data.train[0]._replace(label="1" if data.train[0].label == "0" else "0")
    changed = TaskData(data.task, [flipped, *data.train[1:]], data.dev, data.source)
    assert fingerprint(changed) != fingerprint(data)
