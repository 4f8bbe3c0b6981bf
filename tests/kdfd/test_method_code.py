"""A method's code fingerprint: which modules it covers, what changes it and what does not, and which done records
count as changed since."""

import ast
import types

import pytest

from kdfd import method_code
from kdfd.errors import ConfigError
from kdfd.registry import load_methods

SOURCE = '''"""A loss."""
import torch


def weighted(x, w=0.5):
    """Docstring."""
    # a comment
    return torch.sum(x * w, dim=-1)
'''

COSMETIC = '''"""Another docstring, longer,
over two lines."""

import torch  # why torch


def weighted(x,
             w=0.5):
    # the comment moved, the docstring went

    return torch.sum(
        x * w,
        dim=-1,
    )
'''


def source_hash(source: str) -> str:
    return method_code.module_hash(ast.parse(source))


def test_whitespace_comments_and_docstrings_leave_the_hash_as_it_is():
    assert source_hash(SOURCE) == source_hash(COSMETIC)


@pytest.mark.parametrize("edit", [("w=0.5", "w=0.25"), ("x * w", "x / w"), ("dim=-1", "dim=0"),
                                  ("return torch.sum(x * w", "y = x\n    return torch.sum(y * w")])
def test_any_change_of_code_changes_the_hash(edit):
    assert source_hash(SOURCE) != source_hash(SOURCE.replace(*edit))


def test_a_method_covers_its_own_modules_and_the_loss_code_it_imports():
    methods = load_methods()

    def modules(name):
        return set(method_code.of(methods[name])["modules"])

    assert modules("finetune") == {"baselines.finetune", "kdfd.losses"}
    assert modules("kdfd") == {"kdfd.kdfd", "kdfd.losses", "kdfd.vae"}
    assert modules("kdfd-ae") == {"baselines.kdfd_ae", "kdfd.kdfd", "kdfd.losses", "kdfd.vae"}  # its base class
    assert modules("reptile-distil") == {"baselines.reptile_distil", "baselines.metadistil", "kdfd.losses"}
    # the framework is no method's code: interface, models, engine
    assert not any(m in ("kdfd.distiller", "kdfd.models", "kdfd.engine") for n in methods for m in modules(n))
    code = method_code.of(methods["kdfd-ae"])
    assert len(code["fingerprint"]) == 16 and code != method_code.of(methods["kdfd"])


def test_a_method_built_in_memory_has_no_fingerprint():
    module = types.ModuleType("lab_in_memory")
    exec("from kdfd.distiller import Distiller\nclass InMemory(Distiller):\n    name = 'in-memory'\n", module.__dict__)
    assert method_code.of(module.InMemory) is None


def _record(method, code, id="a" * 16):
    return {"id": id, "method": method, "method_version": "1", "status": "done", method_code.FIELD: code}


def test_only_records_of_changed_code_count_and_an_accepted_change_stays_accepted(tmp_path):
    finetune = load_methods()["finetune"]
    now = method_code.of(finetune)
    old = {"fingerprint": "0" * 16, "modules": {**now["modules"], "kdfd.losses": "0" * 16}}
    accepted = tmp_path / "accepted.json"
    assert method_code.changes([_record("finetune", None), _record("finetune", now)], accepted) == []

    [change] = method_code.changes([_record("finetune", old), _record("finetune", old, "b" * 16)], accepted)
    assert (change.method, change.version, change.modules, change.ids) == ("finetune", "1", ("kdfd.losses",),
                                                                            ("a" * 16, "b" * 16))
    assert change.describe() == "finetune v1 (kdfd.losses; 2 done records)"
    method_code.accept(accepted, [change])
    assert method_code.changes([_record("finetune", old)], accepted) == []
    # another old fingerprint was not part of what was accepted
    older = {**old, "fingerprint": "1" * 16}
    assert [c.recorded for c in method_code.changes([_record("finetune", older)], accepted)] == ["1" * 16]


def test_an_unreadable_acceptance_file_is_one_line(tmp_path):
    accepted = tmp_path / "accepted.json"
    accepted.write_text("{not json")
    old = {"fingerprint": "0" * 16, "modules": {}}
    with pytest.raises(ConfigError, match="accepted.json is unreadable .* --accept-code-changes"):
        method_code.changes([_record("finetune", old)], accepted)
