"""The task table: every GLUE task (and the embedded synthetic ones) described once.

All per-task quirks live here and nowhere else: which TSV columns hold the text and the label, whether a file has a
header, the label strings and their order, the dev splits (MNLI has two), the official metrics. Label order follows
the Hugging Face `nyu-mll/glue` features, so ids agree whichever source the data came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import ConfigError, one_of
from .synthetic import SIZES as SYNTHETIC_SIZES


@dataclass(frozen=True)
class TsvLayout:
    """Where a task's fields sit in one GLUE TSV file.

    `columns` name header fields; for header-less files (CoLA train/dev) they are integer column indices and
    `n_columns` is the exact field count of every row.
    """

    text_a: str | int
    text_b: str | int | None
    label: str | int | None
    header: bool = True
    n_columns: int | None = None


@dataclass(frozen=True)
class Task:
    name: str
    glue_dir: str  # folder name in the original GLUE layout; "" for synthetic tasks
    hf_config: str  # config name of nyu-mll/glue; "" for synthetic tasks
    labels: tuple[str, ...] | None  # label strings as written in the TSV, in id order; None = regression
    metrics: tuple[str, ...]
    train_file: str
    dev_files: dict[str, str]  # split name -> file name (MNLI: dev_matched, dev_mismatched)
    layout: TsvLayout
    hf_text: tuple[str, str | None] = ("sentence", None)
    hf_dev_splits: dict[str, str] = field(default_factory=lambda: {"dev": "validation"})
    test_files: dict[str, str] = field(default_factory=dict)  # test split -> file name (labels hidden)
    test_layout: TsvLayout | None = None  # where it differs from `layout` without the label (CoLA's has a header)
    submission_names: dict[str, str] = field(default_factory=dict)  # test split -> leaderboard file, if not GLUEDIR.tsv
    synthetic: bool = False
    description: str = ""
    # examples in the training file (GLUE's published counts; the synthetic generator's size): step counts for a
    # cost estimate before any data is read (benchmarks.cost.plan)
    train_size: int = 0
    # What each label id means, where the TSV's label strings are bare digits (figures' legends, an exported model's
    # id2label); unset: the label strings themselves (MNLI's, RTE's are names already)
    class_names: tuple[str, ...] | None = None

    @property
    def names(self) -> tuple[str, ...] | None:
        """Label names in id order (None for regression)."""
        return self.class_names or self.labels

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Output width of the classifier: 1 for regression."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return self.layout.text_b is not None

    @property
    def test_tsv_layout(self) -> TsvLayout:
        return self.test_layout or replace(self.layout, label=None)

    def submission_file(self, split: str) -> str:
        """The file name the GLUE leaderboard expects for this test split's predictions (RTE.tsv, MNLI-m.tsv)."""
        return self.submission_names.get(split, f"{self.glue_dir}.tsv")


_PAIR = ("sentence1", "sentence2")
_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "cola", "CoLA", "cola", _BINARY, ("mcc",), "train.tsv", {"dev": "dev.tsv"},
            # CoLA train/dev have no header: source, label, original annotation, sentence.
            TsvLayout(text_a=3, text_b=None, label=1, header=False, n_columns=4),
            test_files={"test": "test.tsv"}, test_layout=TsvLayout("sentence", None, None), train_size=8551,
            description="grammatical acceptability (single sentence)",
            class_names=("unacceptable", "acceptable"),
        ),
        Task(
            "sst2", "SST-2", "sst2", _BINARY, ("accuracy",), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("sentence", None, "label"), test_files={"test": "test.tsv"},
            train_size=67349, description="sentiment (single sentence)", class_names=("negative", "positive"),
        ),
        Task(
            "mrpc", "MRPC", "mrpc", _BINARY, ("f1", "accuracy"), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("#1 String", "#2 String", "Quality"), hf_text=_PAIR, test_files={"test": "test.tsv"},
            train_size=3668, description="paraphrase (sentence pair)", class_names=("not_equivalent", "equivalent"),
        ),
        Task(
            "stsb", "STS-B", "stsb", None, ("pearson", "spearman"), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("sentence1", "sentence2", "score"), hf_text=_PAIR, test_files={"test": "test.tsv"},
            train_size=5749, description="semantic similarity, regression in [0, 5] (sentence pair)",
        ),
        Task(
            "qqp", "QQP", "qqp", _BINARY, ("f1", "accuracy"), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("question1", "question2", "is_duplicate"), hf_text=("question1", "question2"),
            test_files={"test": "test.tsv"}, train_size=363846, description="duplicate questions (sentence pair)",
            class_names=("not_duplicate", "duplicate"),
        ),
        Task(
            "mnli", "MNLI", "mnli", ("entailment", "neutral", "contradiction"), ("accuracy",), "train.tsv",
            {"dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
            TsvLayout("sentence1", "sentence2", "gold_label"), hf_text=("premise", "hypothesis"),
            hf_dev_splits={"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"},
            # the diagnostic set (AX) is predicted by the MNLI model
            test_files={"test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv",
                        "diagnostic": "../diagnostic/diagnostic.tsv"},
            submission_names={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv", "diagnostic": "AX.tsv"},
            train_size=392702, description="natural language inference, 3 classes, matched and mismatched dev sets",
        ),
        Task(
            "qnli", "QNLI", "qnli", _NLI2, ("accuracy",), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("question", "sentence", "label"), hf_text=("question", "sentence"),
            test_files={"test": "test.tsv"}, train_size=104743, description="question answering as entailment (pair)",
        ),
        Task(
            "rte", "RTE", "rte", _NLI2, ("accuracy",), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("sentence1", "sentence2", "label"), hf_text=_PAIR, test_files={"test": "test.tsv"},
            train_size=2490, description="recognising textual entailment (pair)",
        ),
        Task(
            "wnli", "WNLI", "wnli", _BINARY, ("accuracy",), "train.tsv", {"dev": "dev.tsv"},
            TsvLayout("sentence1", "sentence2", "label"), hf_text=_PAIR, test_files={"test": "test.tsv"},
            train_size=635, description="Winograd NLI (pair)", class_names=("not_entailment", "entailment"),
        ),
        # Embedded, generated deterministically by kdfd.synthetic: GLUE-shaped, offline, tiny.
        Task(
            "synth-single", "", "", _BINARY, ("accuracy",), "", {"dev": ""},
            TsvLayout("sentence", None, "label"), synthetic=True,
            train_size=SYNTHETIC_SIZES["train"], description="synthetic single-sentence classification (SST-2 shaped)",
            class_names=("not positive", "positive"),
        ),
        Task(
            "synth-pair", "", "", _BINARY, ("f1", "accuracy"), "", {"dev": ""},
            TsvLayout("sentence1", "sentence2", "label"), synthetic=True,
            train_size=SYNTHETIC_SIZES["train"], description="synthetic sentence-pair classification (MRPC shaped)",
            class_names=("unrelated", "paraphrase"),
        ),
        Task(
            "synth-reg", "", "", None, ("pearson", "spearman"), "", {"dev": ""},
            TsvLayout("sentence1", "sentence2", "score"), synthetic=True,
            train_size=SYNTHETIC_SIZES["train"],
            description="synthetic sentence-pair regression in [0, 5] (STS-B shaped)",
        ),
    ]
}

def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(one_of("task", name, TASKS)) from None
