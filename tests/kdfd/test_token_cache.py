"""The token ids a task's jobs share (kdfd.token_cache): written once, read back equal to a fresh tokenization,
keyed by everything that changes them, and never trusted when damaged."""

from kdfd import synthetic
from kdfd.data import EncodedDataset
from kdfd.tasks import get_task
from kdfd.token_cache import encode, texts_key

PAIRS = list(synthetic.generate("synth-pair", "train"))[:50]
A, B = [e.text_a for e in PAIRS], [e.text_b for e in PAIRS]


def test_the_first_call_writes_the_ids_and_the_next_reads_the_same_ids(tmp_path):
    tok = synthetic.build_tokenizer()
    fresh = encode(tok, A, B, 24)
    assert encode(tok, A, B, 24, tmp_path) == fresh
    (path,) = tmp_path.glob("*.npz")
    assert (tmp_path / f"{path.name}.sha256").is_file()
    stamp = path.stat().st_mtime_ns
    again = encode(tok, A, B, 24, tmp_path)
    assert again == fresh and path.stat().st_mtime_ns == stamp  # read, not rewritten
    # truncation happened (24 tokens), and the pair's segments are kept
    assert max(map(len, fresh["input_ids"])) == 24 and set(fresh["token_type_ids"][0]) == {0, 1}
    ds = EncodedDataset(PAIRS, get_task("synth-pair"), tok, 24, tmp_path)
    assert ds.input_ids == fresh["input_ids"] and ds.token_type_ids == fresh["token_type_ids"]


def test_the_key_follows_the_texts_the_length_and_the_tokenizer():
    tok = synthetic.build_tokenizer()
    key = texts_key(tok, 24, A, B)
    assert key == texts_key(synthetic.build_tokenizer(), 24, list(A), list(B))
    assert len({key, texts_key(tok, 32, A, B), texts_key(tok, 24, A[::-1], B[::-1]), texts_key(tok, 24, A, None),
                texts_key(tok, 24, A[:-1] + [A[-1] + "x"], B)}) == 5
    other = synthetic.build_tokenizer()
    other.backend_tokenizer.normalizer = None  # another normaliser: it may encode a text differently
    assert texts_key(other, 24, A, B) != key


def test_a_damaged_file_is_named_moved_aside_and_the_texts_tokenized_again(tmp_path, capsys):
    tok = synthetic.build_tokenizer()
    fresh = encode(tok, A, B, 24, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    assert encode(tok, A, B, 24, tmp_path) == fresh
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"token cache {path} is damaged: checksum mismatch") and "tokenizing again" in line
    assert (tmp_path / f"{path.name}.corrupt").is_file() and path.is_file()  # its sidecar moves with it
