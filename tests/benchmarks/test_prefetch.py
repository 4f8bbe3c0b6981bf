"""`bench prefetch`: what a suite would fetch from the hub, and a fetch that cannot reach it (no network here: the
download itself is the Hugging Face client's)."""

import os

from benchmarks import prefetch
from benchmarks import suite as suites

from .helpers import bench


def test_the_paper_suite_fetches_its_two_models_and_its_tasks_data_unless_a_glue_folder_is_given(monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    suite = suites.load("glue-full", tasks=["rte", "mrpc"], seeds=[1])
    assert set(prefetch.hub_models(suite)) == {"bert-base-uncased", "huawei-noah/TinyBERT_General_6L_768D"}
    assert prefetch.hub_tasks(suite, None) == ["rte", "mrpc"]
    assert prefetch.hub_tasks(suite, "/some/glue") == []
    smoke = suites.load("smoke")
    assert prefetch.hub_models(smoke) == [] and prefetch.hub_tasks(smoke, None) == []


def test_a_suite_with_nothing_on_the_hub_fetches_nothing_and_a_hub_that_does_not_answer_is_one_line(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "GLUE_DIR"):
        env.pop(key, None)
    out = bench("prefetch", "--suite", "smoke", "--into", str(tmp_path / "into"), env=env)
    assert out.returncode == 0, out.stderr
    assert "model" not in out.stdout and out.stdout.strip().endswith(f"HF_HUB_CACHE={tmp_path / 'into' / 'hub'} "
                                                                    "HF_HUB_OFFLINE=1")
    out = bench("prefetch", "--suite", "glue-full", "--tasks", "rte", "--seeds", "1", "--methods", "finetune",
                "--into", str(tmp_path / "into"), env=env)
    assert out.returncode == 3, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("bench: error: cannot fetch model 'huawei-noah/TinyBERT_General_6L_768D' ("), line
