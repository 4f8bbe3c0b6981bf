from pathlib import Path

import numpy as np
import pytest
import torch

from kdfd import synthetic
from kdfd.data import Collator, EncodedDataset, load_task, make_loader, read_tsv, subset
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


def test_synthetic_tasks_are_the_same_in_every_process():
    """Two interpreters with different string hashes (PYTHONHASHSEED) generate the same examples: a set iterated in
    its own order once made synth-reg, and every record trained on it, differ from run to run."""
    import os
    import subprocess
    import sys

    code = ("import hashlib; from kdfd import synthetic\n"
            "print(hashlib.sha256(repr([synthetic.generate(t, s) for t in ('synth-single', 'synth-pair', 'synth-reg')"
            " for s in ('train', 'dev')]).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(digests) == 1, digests


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


def test_worker_processes_collate_the_same_batches_in_the_same_order():
    task = get_task("synth-pair")
    tok = synthetic.build_tokenizer()
    ds = EncodedDataset(list(synthetic.generate("synth-pair", "train"))[:100], task, tok, 64)

    def epochs(workers):
        loader = make_loader(ds, 8, shuffle=True, seed=4, batching="grouped", workers=workers)
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            out += [{k: v.tolist() for k, v in b.items()} for b in loader]
        return out

    main = epochs(0)
    assert epochs(2) == main and len(main) == 2 * 13 and main[:13] != main[13:]


def test_evaluation_goes_longest_first_and_predictions_come_back_in_file_order():
    from kdfd.data import make_loader
    from kdfd.registry import load_methods
    from tests.kdfd.helpers import setup

    METHODS = load_methods()

    task = get_task("synth-pair")
    ds = EncodedDataset(list(synthetic.generate(task.name, "dev"))[:40], task, synthetic.build_tokenizer(), 64)
    loader = make_loader(ds, 16, shuffle=False)
    widths = [b["input_ids"].shape[1] for b in loader]
    assert widths == sorted(widths, reverse=True)
    engine, *_ = setup(METHODS["finetune"])
    logits, gold = engine.predict("student", loader)
    one_by_one = [engine.predict("student", make_loader(EncodedDataset([ex], task, synthetic.build_tokenizer(), 64),
                                                        1, shuffle=False))[0][0]
                  for ex in list(synthetic.generate(task.name, "dev"))[:40]]
    assert gold.tolist() == ds.labels
    assert torch.allclose(torch.tensor(logits), torch.tensor(np.array(one_by_one)), atol=1e-5)


def test_the_examples_hash_follows_the_examples():
    from kdfd.data import TaskData, examples_hash, load_task
    from kdfd.tasks import get_task

    data = load_task(get_task("synth-pair"), "synthetic")
    assert examples_hash(data) == examples_hash(load_task(get_task("synth-pair"), "synthetic"))
    flipped = data.train[0]._replace(label="1" if data.train[0].label == "0" else "0")
    changed = TaskData(data.task, [flipped, *data.train[1:]], data.dev, data.source)
    assert examples_hash(changed) != examples_hash(data)


# ------------------------------------------------ the Hugging Face `datasets` source, on a local copy of the hub's

# A few rows per task in the original GLUE TSV layouts (CoLA's files have no header), every label present.
TSV_ROWS = {
    "cola": {"train": [("1", "The cat sat on the mat."), ("0", "Sat mat the on cat."), ("1", "Bill said \"hi\".")],
             "dev": [("0", "Him left."), ("1", "Café owners rarely complain.")]},
    "rte": {"train": [("A man eats.", "A person eats.", "entailment"), ("It rains.", "It is dry.", "not_entailment")],
            "dev": [("Ann won.", "Ann lost.", "not_entailment"), ("Bo ran fast.", "Bo ran.", "entailment")]},
    "mnli": {"train": [("P one.", "H one.", "neutral"), ("P two.", "H two.", "contradiction"),
                       ("P three.", "H three.", "entailment")],
             "dev_matched": [("M p.", "M h.", "contradiction"), ("M q.", "M r.", "entailment")],
             "dev_mismatched": [("X p.", "X h.", "neutral")]},
    "stsb": {"train": [("A dog runs.", "A dog is running.", "4.750"), ("A cat.", "A car.", "0.500")],
             "dev": [("Two men talk.", "Two men speak.", "3.800"), ("Sun.", "Rain.", "0.000")]},
}
# nyu-mll/glue as the hub has it: the splits, the text columns, and the label classes in their id order
HUB_SPLITS = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}
HUB_NAMES = {"cola": ["unacceptable", "acceptable"], "rte": ["entailment", "not_entailment"],
             "mnli": ["entailment", "neutral", "contradiction"]}


def _write_glue_tsvs(root: Path) -> Path:
    headers = {"rte": "index\tsentence1\tsentence2\tlabel", "mnli": "index\tsentence1\tsentence2\tgold_label",
               "stsb": "index\tsentence1\tsentence2\tscore"}
    for name, splits in TSV_ROWS.items():
        task = get_task(name)
        (root / task.glue_dir).mkdir(parents=True)
        for split, rows in splits.items():
            if name == "cola":
                lines = [f"src\t{label}\t\t{text}" for label, text in rows]
            else:
                lines = [headers[name]] + [f"{i}\t{a}\t{b}\t{label}" for i, (a, b, label) in enumerate(rows)]
            file = task.train_file if split == "train" else task.dev_files[split]
            (root / task.glue_dir / file).write_text("\n".join(lines) + "\n")
    return root


def _write_hub_copy(root: Path, names: dict[str, list[str]] = HUB_NAMES) -> Path:
    """A local copy of the hub repository's layout: <config>/<split>-00000-of-00001.parquet and a README whose YAML
    header declares the configs, as nyu-mll/glue's does. Labels are encoded as the hub encodes them, by `names`."""
    import datasets

    configs = []
    for name, splits in TSV_ROWS.items():
        task = get_task(name)
        a, b = task.hf_text
        if task.labels is None:
            label_feature = datasets.Value("float32")
            encode = float
        else:
            label_feature = datasets.ClassLabel(names=names[name])
            # the hub's ids: the 0/1 tasks keep the TSV's digits; the NLI tasks index their class names
            encode = int if name == "cola" else names[name].index
        features = {a: datasets.Value("string"), **({b: datasets.Value("string")} if b else {}),
                    "label": label_feature, "idx": datasets.Value("int32")}
        entries = []
        for split, rows in splits.items():
            columns = {a: [text for _, text in rows]} if name == "cola" else {a: [r[0] for r in rows],
                                                                                 b: [r[1] for r in rows]}
            columns.update(label=[encode(r[0] if name == "cola" else r[2]) for r in rows], idx=list(range(len(rows))))
            hub_split = HUB_SPLITS[split]
            (root / task.hf_config).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(
                root / task.hf_config / f"{hub_split}-00000-of-00001.parquet")
            entries.append(f"  - split: {hub_split}\n    path: {task.hf_config}/{hub_split}-*")
        configs.append(f"- config_name: {task.hf_config}\n  data_files:\n" + "\n".join(entries))
    (root / "README.md").write_text("---\nconfigs:\n" + "\n".join(configs) + "\n---\n")
    return root


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """`datasets` kept off the network, with its cache under tmp_path."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return tmp_path


def _same_examples(hf, tsv, regression: bool) -> None:
    assert len(hf) == len(tsv)
    for h, t in zip(hf, tsv):
        assert (h.text_a, h.text_b) == (t.text_a, t.text_b)
        if regression:  # float32 in the dataset, three decimals in the TSV: the same score
            assert np.float32(h.label) == np.float32(t.label)
        else:
            assert h.label == t.label


@pytest.mark.parametrize("name", sorted(TSV_ROWS))
def test_the_datasets_source_reads_a_local_hub_copy_as_the_tsv_source_reads_glue(name, offline_datasets, monkeypatch):
    tmp = offline_datasets
    task = get_task(name)
    tsv = load_task(task, "tsv", str(_write_glue_tsvs(tmp / "glue")))
    monkeypatch.setenv("KDFD_HF_DATASET", str(_write_hub_copy(tmp / "hub")))
    hf = load_task(task, "hf")
    assert (hf.source, tsv.source) == ("hf", "tsv")
    assert sorted(hf.dev) == sorted(tsv.dev) == sorted(TSV_ROWS[name].keys() - {"train"})
    for split in ["train", *tsv.dev]:
        _same_examples(hf.train if split == "train" else hf.dev[split],
                       tsv.train if split == "train" else tsv.dev[split], task.is_regression)
    tok = synthetic.build_tokenizer()  # the class ids a model trains on agree too
    assert EncodedDataset(hf.train, task, tok, 32).labels == EncodedDataset(tsv.train, task, tok, 32).labels


def test_a_copy_that_orders_the_nli_classes_differently_still_reads_right(offline_datasets, monkeypatch):
    tmp = offline_datasets
    reordered = {**HUB_NAMES, "mnli": ["contradiction", "entailment", "neutral"]}
    monkeypatch.setenv("KDFD_HF_DATASET", str(_write_hub_copy(tmp / "hub", reordered)))
    hf = load_task(get_task("mnli"), "hf")
    assert [e.label for e in hf.train] == [r[2] for r in TSV_ROWS["mnli"]["train"]]


def test_a_missing_local_copy_is_a_data_error_naming_it_never_a_hub_lookup(offline_datasets, monkeypatch):
    missing = offline_datasets / "no-such-copy"
    monkeypatch.setenv("KDFD_HF_DATASET", str(missing))
    with pytest.raises(DataError, match=rf"KDFD_HF_DATASET folder '{missing}' does not exist \(expected a local copy"):
        load_task(get_task("rte"), "hf")


def test_holdout_split_is_stratified_fixed_and_disjoint():
    """The protocol's held-out split: the same examples for every call (data seed 0), the label shares kept, the two
    parts disjoint and in file order; regression is stratified by score quintile."""
    from kdfd.data import holdout_split

    task = get_task("synth-single")
    examples = list(synthetic.generate("synth-single", "train"))[:400]
    train, held = holdout_split(examples, task, 0.1)
    again = holdout_split(examples, task, 0.1)
    assert (train, held) == again and len(held) == 40 and len(train) == 360
    assert not set(map(id, train)) & set(map(id, held))
    assert held == [e for e in examples if e in held]  # file order

    def share(xs):
        return np.mean([e.label == xs[0].label for e in xs])

    assert abs(share(held) - np.mean([e.label == held[0].label for e in examples])) < 0.03
    reg = list(synthetic.generate("synth-reg", "train"))[:200]
    _, held = holdout_split(reg, get_task("synth-reg"), 0.2)
    scores = sorted(float(e.label) for e in reg)
    quintiles = np.quantile(scores, [0.2, 0.4, 0.6, 0.8])
    counts = np.bincount(np.searchsorted(quintiles, [float(e.label) for e in held], side="right"), minlength=5)
    assert counts.max() - counts.min() <= 2
    assert holdout_split(examples, task, 0.0) == (examples, [])
