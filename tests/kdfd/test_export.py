"""Models out and in (kdfd.export): a trained model as a folder that transformers loads alone, with the method's
predictions; a transformers sequence classifier as a teacher."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from kdfd import synthetic
from kdfd.config import RunConfig, TrainConfig
from kdfd.data import EncodedDataset, make_loader
from kdfd.engine import set_seed
from kdfd.export import EXPORT_FILE, ExportError, export, load_classifier
from kdfd.job import build_models, resolve
from kdfd.models import ModelSpec
from kdfd.tasks import get_task

TEACHER = ModelSpec("tiny", layers=2, hidden=32, heads=2, intermediate=64)
STUDENT = ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32)


def built(method="kdfd", task="synth-pair", params=None, student=STUDENT):
    """(student, distiller, task, tokenizer) of a job, every weight drawn at random around its initial value, so
    that each one (the bottleneck's included) moves the logits, as training would leave them."""
    set_seed(0)
    job = resolve(RunConfig(task=task, method=method, seed=1, student=student, teacher=TEACHER,
                            params={"latent_dim": 8, **(params or {})} if method == "kdfd" else {},
                            train=TrainConfig()))
    tokenizer = synthetic.build_tokenizer()
    student, _, distiller = build_models(job, len(tokenizer))
    with torch.no_grad():
        for p in [*student.parameters(), *distiller.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    student.eval(), distiller.eval()
    # a random model predicts one class: its head's bias centred on the dev logits splits them between classes
    head = distiller.student_modules["bottleneck"].head if "bottleneck" in distiller.student_modules else student.head
    with torch.no_grad():
        head.bias -= torch.from_numpy(dev_logits(student, distiller, job.task, tokenizer).mean(0))
    return student, distiller, job.task, tokenizer


def dev_logits(student, distiller, task, tokenizer) -> np.ndarray:
    """The method's own logits on the dev set, as the engine evaluates it (kdfd's encoding and batching)."""
    ds = EncodedDataset(list(synthetic.generate(task.name, "dev")), task, tokenizer, 64)
    out = np.zeros((len(ds), task.num_labels), dtype=np.float32)
    with torch.no_grad():
        for batch in make_loader(ds, 64, shuffle=False):  # batches of similar lengths: back to file order by index
            fwd = student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            out[batch["index"].numpy()] = distiller.predict("student", fwd).numpy()
    return out


def transformers_logits(folder, task) -> np.ndarray:
    """The exported folder's logits on the dev set, with transformers alone (its tokenizer, its model class)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    examples = list(synthetic.generate(task.name, "dev"))
    out = []
    with torch.no_grad():
        for i in range(0, len(examples), 64):
            part = examples[i:i + 64]
            b = [e.text_b for e in part] if part[0].text_b is not None else None
            enc = tokenizer([e.text_a for e in part], b, truncation=True, max_length=64, padding=True,
                            return_tensors="pt")
            out.append(model(**enc).logits)
    return torch.cat(out).numpy()


@pytest.mark.parametrize("method,task", [("kdfd", "synth-pair"), ("vanilla-kd", "synth-single"),
                                         ("kdfd", "synth-reg")])
def test_an_exported_student_gives_the_same_dev_predictions_with_transformers_alone(tmp_path, method, task):
    student, distiller, task, tokenizer = built(method, task)
    ours = dev_logits(student, distiller, task, tokenizer)
    folder = export(student, distiller, "student", task, tokenizer, tmp_path / "model", {"job": "x"})
    theirs = transformers_logits(folder, task)
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=1e-4)
    if not task.is_regression:
        assert (theirs.argmax(1) == ours.argmax(1)).all() and len(set(ours.argmax(1))) > 1  # not one class
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 2
    assert json.loads((folder / EXPORT_FILE).read_text()) == {"job": "x", "role": "student"}
    assert (folder / "model.safetensors").is_file() and not list(tmp_path.glob(".*tmp"))


def test_what_transformers_cannot_reproduce_does_not_export_and_says_why(tmp_path):
    student, distiller, task, tokenizer = built("kdfd", params={"features": "mean"})
    with pytest.raises(ExportError, match="its prediction reads more than the pooled vector"):
        export(student, distiller, "student", task, tokenizer, tmp_path / "a")
    student, distiller, task, tokenizer = built("vanilla-kd", student=ModelSpec("tiny", hidden=16, pooling="mean"))
    with pytest.raises(ExportError, match="pooling 'mean' does not export: BertForSequenceClassification"):
        export(student, distiller, "student", task, tokenizer, tmp_path / "b")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_an_exported_model_comes_back_in_as_a_teacher_with_its_predictions(tmp_path):
    student, distiller, task, tokenizer = built("finetune", "synth-single")
    folder = export(student, distiller, "student", task, tokenizer, tmp_path / "teacher")
    teacher = load_classifier(str(folder), task.num_labels, task).eval()
    ds = EncodedDataset(list(synthetic.generate(task.name, "dev"))[:64], task, tokenizer, 64)
    batch = next(iter(make_loader(ds, 64, shuffle=False)))
    with torch.no_grad():
        args = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        torch.testing.assert_close(teacher(*args).logits, student(*args).logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(Exception, match="has 2 labels, task 'synth-reg' 1"):
        load_classifier(str(folder), 1, get_task("synth-reg"))
