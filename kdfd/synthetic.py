"""Embedded synthetic GLUE-shaped tasks and the word-level tokenizer they use.

Generated deterministically from a fixed seed, so the smoke suite runs anywhere offline and gives the same data on
every machine. Each task has a learnable rule with some label noise, so a model trained on it beats chance but does
not reach 100%, and distillation has something to transfer:

- synth-single: a sentence of neutral and polar words; label 1 when positive words outnumber negative ones.
- synth-pair: label 1 when sentence 2 is drawn mostly from sentence 1's words (a paraphrase), 0 otherwise.
- synth-reg: the similarity of two word sets, 5 x Jaccard overlap, in [0, 5].
"""

from __future__ import annotations

import random
from functools import lru_cache

from .data_types import Example

POSITIVE = "good great fine happy bright warm kind calm brave clever lovely superb".split()
NEGATIVE = "bad awful poor sad dark cold cruel tense timid dull ugly dreadful".split()
NEUTRAL = (
    "the a one this that cat dog house river tree car city road book table chair window garden market teacher "
    "student music paper stone water light morning evening summer winter friend doctor child letter story film "
    "train ship bridge tower field forest island village kitchen school office street park lake hill valley"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + sorted(set(POSITIVE + NEGATIVE + NEUTRAL))

DATA_SEED = 20240917
SIZES = {"train": 2000, "dev": 400}
LABEL_NOISE = 0.05


def _single(rng: random.Random) -> Example:
    while True:
        n_pos, n_neg = rng.randint(0, 4), rng.randint(0, 4)
        if n_pos != n_neg:
            break
    words = [rng.choice(POSITIVE) for _ in range(n_pos)] + [rng.choice(NEGATIVE) for _ in range(n_neg)]
    words += [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 10))]
    rng.shuffle(words)
    label = int(n_pos > n_neg)
    if rng.random() < LABEL_NOISE:
        label = 1 - label
    return Example(" ".join(words), None, str(label))


def _pair(rng: random.Random) -> Example:
    first = rng.sample(NEUTRAL, rng.randint(5, 10))
    paraphrase = rng.random() < 0.5
    keep = rng.uniform(0.6, 1.0) if paraphrase else rng.uniform(0.0, 0.4)
    second = [w for w in first if rng.random() < keep]
    second += rng.sample(NEUTRAL, rng.randint(1, 4))
    rng.shuffle(second)
    label = int(paraphrase)
    if rng.random() < LABEL_NOISE:
        label = 1 - label
    return Example(" ".join(first), " ".join(second), str(label))


def _regression(rng: random.Random) -> Example:
    first = set(rng.sample(NEUTRAL, rng.randint(4, 9)))
    # a set's own order follows the per-process string hash (PYTHONHASHSEED): drawn against in sorted order, else
    # every process would generate other examples
    second = {w for w in sorted(first) if rng.random() < rng.random()} | set(rng.sample(NEUTRAL, rng.randint(1, 5)))
    score = 5.0 * len(first & second) / len(first | second)
    score = min(5.0, max(0.0, score + rng.gauss(0.0, 0.25)))
    return Example(" ".join(sorted(sorted(first), key=lambda _: rng.random())), " ".join(sorted(second)),
                   f"{score:.3f}")


_GENERATORS = {"synth-single": _single, "synth-pair": _pair, "synth-reg": _regression}


@lru_cache(maxsize=None)
def generate(task: str, split: str) -> tuple[Example, ...]:
    """The fixed examples of one synthetic task split; labels are strings as in a GLUE TSV."""
    rng = random.Random(f"{DATA_SEED}-{task}-{split}")
    return tuple(_GENERATORS[task](rng) for _ in range(SIZES[split]))


def build_tokenizer():
    """A word-level BERT-style tokenizer over the synthetic vocabulary ([CLS] a [SEP] b [SEP], lower-cased)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(VOCAB)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
