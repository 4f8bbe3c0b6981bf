"""Tokenized texts shared by the jobs of a task: every job of a task tokenizes the same texts with the same
tokenizer (MNLI: 393k pairs, once per job and split), so the first job keeps the token ids and the others read them.

One file per (tokenizer, max_length, texts): `<dir>/<key>.npz` with its `.sha256` sidecar, where

    key = sha256(the tokenizer's identity / max_length / every text_a and text_b, in order)

and the tokenizer's identity is its full serialised form (a fast tokenizer's JSON: vocabulary, normaliser,
truncation rules) and its class, so two tokenizers that could encode a text differently never share a file. The
ids are kept flat (int32) with the offsets of each example; a file that fails its checksum is moved aside and
the texts tokenized again.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .files import atomic_write, load_trusted

FORMAT = 1
_identities: dict[int, str] = {}  # by id(tokenizer): hashing a 30k-word vocabulary once per process, not per split


def tokenizer_identity(tokenizer) -> str:
    """A hash of everything that decides how `tokenizer` encodes a text."""
    key = id(tokenizer)
    if key not in _identities:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            text = backend.to_str()
        else:  # a slow tokenizer: its vocabulary and its settings
            text = json.dumps([sorted(tokenizer.get_vocab().items()), repr(tokenizer.init_kwargs)], default=str)
        _identities[key] = hashlib.sha256(f"{type(tokenizer).__name__}\n{text}".encode()).hexdigest()
    return _identities[key]


def texts_key(tokenizer, max_length: int, a: list[str], b: list[str] | None) -> str:
    h = hashlib.sha256(f"{FORMAT}/{tokenizer_identity(tokenizer)}/{max_length}/{b is not None}".encode())
    for text in a + (b or []):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return np.fromiter((x for r in rows for x in r), dtype=np.int32, count=int(offsets[-1])), offsets


def _rows(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    values = flat.tolist()
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def encode(tokenizer, a: list[str], b: list[str] | None, max_length: int, directory: Path | None = None) -> dict:
    """The tokenizer's `input_ids` (and `token_type_ids` where it makes them) of the texts, truncated to
    `max_length`, unpadded: lists of id lists. With `directory`, read from its file when a job of the task wrote
    one, else computed and written there."""
    if directory is None:
        return _tokenize(tokenizer, a, b, max_length)
    path = Path(directory) / f"{texts_key(tokenizer, max_length, a, b)}.npz"

    def load(path: Path) -> dict:
        with np.load(path) as z:
            out = {"input_ids": _rows(z["input_ids"], z["offsets"])}
            if "token_type_ids" in z:
                out["token_type_ids"] = _rows(z["token_type_ids"], z["offsets"])
        if len(out["input_ids"]) != len(a):
            raise ValueError(f"{len(out['input_ids'])} examples, not {len(a)}")
        return out

    kept = load_trusted(path, load, "token cache", "tokenizing again")
    if kept is not None:
        return kept
    out = _tokenize(tokenizer, a, b, max_length)
    ids, offsets = _flat(out["input_ids"])
    arrays = {"input_ids": ids, "offsets": offsets}
    if out.get("token_type_ids") is not None:
        arrays["token_type_ids"] = _flat(out["token_type_ids"])[0]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buffer.getvalue()), checksum=True)
    return out


def _tokenize(tokenizer, a, b, max_length) -> dict:
    enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=False)
    return {"input_ids": enc["input_ids"], "token_type_ids": enc.get("token_type_ids")}
