"""`bench prefetch --suite S [--into DIR]`: every model and data set a suite reads, fetched once where there is a
network, for compute nodes that have none.

Models and tokenizers named by a hub id go into a Hugging Face cache (`DIR/hub`, or the default one without
`--into`), whose files `from_pretrained` then finds offline; data that a suite loads from the hub (`data_source =
auto` without a GLUE folder, or `hf`) goes into a local copy of the dataset repository (`DIR/glue`: its parquet files
of the suite's tasks and its README), which `KDFD_HF_DATASET` points the `hf` source at. The command ends with the
variables that make a run read them, `HF_HUB_OFFLINE=1` among them: with it, `bench run`'s preflight stops in one
line on any model missing from that cache (kdfd.models.require_loadable), on the submitting host and in every SLURM
task, which inherits the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from kdfd.config import MINILM, TINY
from kdfd.data import HF_DATASET, HF_DATASET_ENV, hf_dataset
from kdfd.errors import ExternalError
from kdfd.models import resolve_path

from .expansion import Suite

# weights of other frameworks and exports, never read here (from_pretrained takes safetensors, else PyTorch's .bin)
SKIP = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "tf_model*", "flax_model*", "rust_model*", "coreml/*",
        "onnx/*", "openvino/*"]


def hub_models(suite: Suite) -> list[str]:
    """The hub ids among the suite's models and tokenizers (not `tiny`, `synthetic`, `minilm` or a local folder)."""
    names = []
    for job in suite.jobs:
        c = job.config
        names += [s.name for s in (c.student, c.teacher) if s is not None and s.pretrained]
        names.append(c.resolved_tokenizer())
    return [n for n in dict.fromkeys(names)
            if n not in (TINY, MINILM, "synthetic") and not Path(resolve_path(n)).is_dir()]


def hub_tasks(suite: Suite, glue_dir: str | None) -> list[str]:
    """The suite's tasks whose data would come from the hub: source hf, or auto without a GLUE folder."""
    glue = glue_dir or os.environ.get("GLUE_DIR")
    return list(dict.fromkeys(j.resolved.task.hf_config for j in suite.jobs if not j.resolved.task.synthetic
                              and (j.config.data_source == "hf" or (j.config.data_source == "auto" and not glue))))


def fetch(suite: Suite, into: Path | None, glue_dir: str | None, say=print) -> list[str]:
    """Download what `hub_models` and `hub_tasks` name; returns the environment a run needs to read them offline."""
    from huggingface_hub import snapshot_download

    cache = str(into / "hub") if into is not None else None
    env = []
    for name in hub_models(suite):
        say(f"model {name} ...")
        try:
            path = snapshot_download(name, cache_dir=cache, ignore_patterns=SKIP)
        except Exception as e:  # no network, unknown id, gated repository: name it and stop
            raise ExternalError(f"cannot fetch model {name!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                                ) from None
        say(f"model {name}: {path}")
    if cache is not None:
        env.append(f"HF_HUB_CACHE={cache}")
    configs = hub_tasks(suite, glue_dir)
    if configs:
        source = hf_dataset()
        if Path(source).is_dir():
            say(f"data: {HF_DATASET_ENV}={source} is a local folder already")
        else:
            local = (into or Path(".")) / "glue"
            say(f"data {source} ({', '.join(configs)}) ...")
            try:
                snapshot_download(source, repo_type="dataset", local_dir=str(local),
                                  allow_patterns=["README.md", *[f"{c}/*" for c in configs]])
            except Exception as e:
                raise ExternalError(f"cannot fetch data set {source!r} ({type(e).__name__}: "
                                    f"{str(e).splitlines()[0][:200]})") from None
            say(f"data {source}: {local}")
            env.append(f"{HF_DATASET_ENV}={local.resolve()}")
    elif any(not j.resolved.task.synthetic for j in suite.jobs):
        say(f"data: read from the GLUE folder ({glue_dir or os.environ.get('GLUE_DIR')}): copy it where the jobs run")
    return env + ["HF_HUB_OFFLINE=1"]


__all__ = ["HF_DATASET", "fetch", "hub_models", "hub_tasks"]
