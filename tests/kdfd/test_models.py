import pytest
import torch

from kdfd.errors import ConfigError, ModelError
from kdfd.models import ModelSpec, build_classifier, keep_layers, load_tokenizer, resolve_path


def test_keep_layers_first_and_skip():
    assert keep_layers(12, 6, "first") == [0, 1, 2, 3, 4, 5]
    assert keep_layers(12, 6, "skip") == [1, 3, 5, 7, 9, 11]
    assert keep_layers(6, 3, "skip") == [1, 3, 5]
    with pytest.raises(ConfigError):
        keep_layers(3, 4, "first")


def test_student_cut_from_minilm_keeps_the_teachers_layers():
    tok = load_tokenizer("minilm")
    full = build_classifier(ModelSpec("minilm"), 2, len(tok))
    cut = build_classifier(ModelSpec("minilm", layers=3, layer_choice="skip"), 2, len(tok))
    assert cut.num_layers == 3 and full.num_layers == 6 and cut.hidden_size == 384
    for mine, theirs in zip(cut.backbone.encoder.layer, [full.backbone.encoder.layer[i] for i in (1, 3, 5)]):
        assert torch.equal(mine.output.dense.weight, theirs.output.dense.weight)


def test_bad_model_names():
    with pytest.raises(ModelError, match="does not exist"):
        resolve_path("./no/such/model")
    with pytest.raises(ConfigError, match="layer_choice"):
        ModelSpec("tiny", layer_choice="middle")


def test_forward_returns_hidden_states_only_when_asked():
    tok = load_tokenizer("synthetic")
    model = build_classifier(ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32), 3, len(tok))
    ids = torch.tensor([[2, 10, 11, 3]])
    out = model(ids, torch.ones_like(ids))
    assert out.logits.shape == (1, 3) and out.hidden_states is None and out.attentions is None
    out = model(ids, torch.ones_like(ids), hidden_states=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (1, 4, 16)


def test_local_files_hash_hashes_local_weights_only():
    from kdfd.models import ModelSpec, local_files_hash

    assert local_files_hash(ModelSpec(name="tiny")) is None
    fp = local_files_hash(ModelSpec(name="minilm"))
    assert fp is not None and len(fp) == 16 and fp == local_files_hash(ModelSpec(name="minilm", layers=3))


def test_a_hub_id_in_the_local_cache_needs_no_hub_and_one_not_cached_is_named(tmp_path):
    """A real Hugging Face cache (the bundled MiniLM's files filed under a hub id, as a download leaves them) and a
    hub that answers nothing (a refused port): the cached id passes, the other is named with the way out. In a
    fresh interpreter, since huggingface_hub reads HF_HOME and HF_ENDPOINT when imported."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    revision = "0" * 40
    snapshot = tmp_path / "hf" / "hub" / "models--local--minilm" / "snapshots" / revision
    shutil.copytree(resolve_path("minilm"), snapshot, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    code = ("from kdfd.models import require_loadable\n"
            "require_loadable(['local/minilm', 'minilm', 'tiny', 'synthetic'])\n"
            "print('cached: ok')\n"
            "require_loadable(['local/minilm', 'local/elsewhere'])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "cached: ok", out.stderr
    assert ("ModelError: model 'local/elsewhere' is neither a local folder nor in the Hugging Face cache "
            f"({tmp_path / 'hf' / 'hub'}), and the hub http://127.0.0.1:9 does not answer") in out.stderr
