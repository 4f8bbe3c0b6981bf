"""Models out and in: a trained model as a Hugging Face folder, and a Hugging Face classifier as a teacher.

Out (`export`): a folder (config.json, model.safetensors, the tokenizer's files, kdfd-export.json) that
`transformers.AutoModelForSequenceClassification.from_pretrained` loads alone, with the predictions the job
evaluated. transformers' BertForSequenceClassification computes classifier(dropout(pooler(last_hidden))): a model
exports when it is a BERT (a `tiny` model, or a pre-trained BERT-style checkpoint such as MiniLM) that pools with
its pooler (pooling `auto` on a model that has one, or `pooler`) and its method predicts by a linear map of that
pooled vector (`linear_head`). KDFD's student predicts head(enc_mu(h)), two linear maps of h: they fold
into one classifier (W = W_head W_mu, b = W_head b_mu + b_head), exact up to float rounding. What does not export,
with the one-line reason the error gives: `cls` and `mean` pooling (no transformers sequence classifier reads the
[CLS] state without the pooler's tanh, nor the masked token mean), and a method that predicts otherwise. Every
export is checked: the folder is loaded back and must give the method's logits on a fixed batch.

In (`load_classifier`): a local or hub sequence-classification checkpoint of that same shape
(BertForSequenceClassification) becomes a `Classifier`, for a suite's `[teacher] finetuned = true` (no teacher
fine-tuning job).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .errors import ConfigError, ModelError

EXPORT_FILE = "kdfd-export.json"  # what was exported: the job's id, task, method, seed, role
CHECK_TOLERANCE = 1e-4  # max |difference| of logits between the trained model and its export (float32 rounding)


class ExportError(ModelError):
    """A model that cannot be written as a transformers sequence classifier (the message says why, in one line)."""


def _bert_class():
    from transformers import BertForSequenceClassification, BertModel

    return BertModel, BertForSequenceClassification


def label_names(task) -> dict[int, str] | None:
    """id -> label name for the config's id2label (regression: None, transformers' default)."""
    if task.labels is None:
        return None
    return dict(enumerate(task.names))


def to_transformers(model, weight: torch.Tensor, bias: torch.Tensor, task):
    """A BertForSequenceClassification holding `model`'s backbone and the linear head (weight [C, H], bias [C])."""
    bert_model, bert_for_seq = _bert_class()
    if not isinstance(model.backbone, bert_model):
        raise ExportError(f"a {type(model.backbone).__name__} does not export: only BERT models do (transformers' "
                          "BertForSequenceClassification is the head reproduced exactly)")
    if model.pooling != "pooler":
        raise ExportError(f"pooling {model.pooling!r} does not export: BertForSequenceClassification classifies the "
                          "pooler output (train with pooling = 'auto' or 'pooler' on a BERT with a pooler)")
    config = type(model.backbone.config).from_dict(model.backbone.config.to_dict())
    config.num_labels = task.num_labels
    names = label_names(task)
    if names is not None:
        config.id2label, config.label2id = names, {v: k for k, v in names.items()}
    config.problem_type = "regression" if task.is_regression else "single_label_classification"
    config.architectures = [bert_for_seq.__name__]
    hf = bert_for_seq(config)
    hf.bert.load_state_dict(model.backbone.state_dict())
    with torch.no_grad():
        hf.classifier.weight.copy_(weight)
        hf.classifier.bias.copy_(bias)
    return hf.eval()


@torch.no_grad()
def linear_head(model, distiller, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [C, H], bias [C]): the method's prediction as an affine map of the pooled vector, read off by feeding
    `predict` the zero vector and each unit vector as that vector (the model's own head gives `logits`). Read, not
    asked of the method, so that no method's code changes (kdfd.method_code): KDFD's head(enc_mu(h)) comes out as
    W_head W_mu and W_head b_mu + b_head. A method whose prediction reads more than the pooled vector fails here or
    in `check`."""
    from .models import Forward

    hidden = model.hidden_size
    x = torch.cat([torch.zeros(1, hidden), torch.eye(hidden)]).to(next(model.parameters()).device)
    was_training = distiller.training
    distiller.eval()
    try:
        out = Forward(logits=model.head(x), last_hidden=None, pooler=x, features=x,
                      attention_mask=torch.ones(len(x), 1, dtype=torch.long, device=x.device))
        y = distiller.predict(role, out).float().cpu()
    except Exception as e:
        raise ExportError(f"method {distiller.name!r} does not export: its prediction reads more than the pooled "
                          f"vector a transformers classifier has ({type(e).__name__})") from None
    finally:
        distiller.train(was_training)
    return (y[1:] - y[0]).T.contiguous(), y[0]


def probe_batch(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed batch with padding and both segments: what every export is checked on."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[3, 5:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types * mask}


def export(model, distiller, role: str, task, tokenizer, out: Path, about: dict | None = None) -> Path:
    """Write `model` (the job's `role`: its student, or the model a teacher job fine-tuned) as a transformers folder
    at `out` (replaced whole, atomically: written beside it, then renamed). `about`: what the job was, kept in
    kdfd-export.json. Raises ExportError (one line) where the model or the method does not export."""
    from transformers import AutoModelForSequenceClassification

    out = Path(out)
    weight, bias = linear_head(model, distiller, role)
    hf = to_transformers(model, weight.detach().float().cpu(), bias.detach().float().cpu(), task)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / EXPORT_FILE).write_text(json.dumps({**(about or {}), "role": role}, indent=1, sort_keys=True) + "\n")
        loaded = AutoModelForSequenceClassification.from_pretrained(tmp).eval()
        check(model, distiller, role, loaded, model.backbone.config.vocab_size)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@torch.no_grad()
def check(model, distiller, role: str, loaded, vocab: int) -> None:
    """The exported model must give the method's own logits (the ones the job evaluated) on the probe batch."""
    batch = probe_batch(vocab)
    was_training = model.training, distiller.training
    model.eval()
    distiller.eval()
    device = next(model.parameters()).device
    try:
        ours = distiller.predict(role, model(**{k: v.to(device) for k, v in batch.items()})).float().cpu()
    finally:
        model.train(was_training[0])
        distiller.train(was_training[1])
    theirs = loaded(**batch).logits.float()
    gap = (ours - theirs).abs().max().item()
    if not gap <= CHECK_TOLERANCE * max(1.0, ours.abs().max().item()):
        raise ExportError(f"method {distiller.name!r} does not export: the transformers model's logits differ from "
                          f"the method's by {gap:.2g} (its prediction is not its classifier's)")


def load_classifier(name: str, num_labels: int, task, attn_implementation: str = "sdpa", dropout: float = 0.1):
    """A local folder or hub id of a BERT sequence classifier, as a `kdfd.models.Classifier` (pooling `pooler`):
    the teacher of a suite whose `[teacher]` says `finetuned = true`."""
    from transformers import AutoModelForSequenceClassification

    from .models import Classifier, resolve_path

    try:
        hf = AutoModelForSequenceClassification.from_pretrained(
            resolve_path(name), attn_implementation=attn_implementation, hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout)
    except Exception as e:
        raise ModelError(f"could not load sequence classifier {name!r} ({type(e).__name__}: {str(e)[:200]})") from None
    _, bert_for_seq = _bert_class()
    if not isinstance(hf, bert_for_seq):
        raise ConfigError(f"teacher {name!r} is a {type(hf).__name__}; a fine-tuned teacher must be a "
                          "BertForSequenceClassification (its head is the one kdfd's classifier reproduces)")
    if hf.config.num_labels != num_labels:
        raise ConfigError(f"teacher {name!r} has {hf.config.num_labels} labels, task {task.name!r} "
                          f"{num_labels}")
    names = label_names(task)
    theirs = {int(k): v for k, v in (hf.config.id2label or {}).items()}
    generic = all(v == f"LABEL_{k}" for k, v in theirs.items())
    if names is not None and not generic and {k: str(v).lower() for k, v in theirs.items()} != {
            k: str(v).lower() for k, v in names.items()} and theirs != dict(enumerate(task.labels)):
        raise ConfigError(f"teacher {name!r} names its labels {theirs}, task {task.name!r} {names}: the label ids "
                          "must mean the same classes")
    model = Classifier(hf.bert, num_labels, "pooler", dropout)
    model.head.load_state_dict(hf.classifier.state_dict())
    return model
