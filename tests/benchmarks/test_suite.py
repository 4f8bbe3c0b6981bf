import pytest

from benchmarks import suite as suites
from kdfd.errors import ConfigError


def test_glue_full_expands_offline_to_the_papers_grid():
    s = suites.load("glue-full")
    teachers = [j for j in s.jobs if j.config.role == "teacher"]
    # 8 tasks x 5 seeds x 3 teacher lrs; kdfd 18 grid points, vanilla-kd 18, finetune 3
    assert len(teachers) == 8 * 5 * 3
    assert len(s.jobs) - len(teachers) == 8 * 5 * (18 + 18 + 3)
    assert len({j.id for j in s.jobs}) == len(s.jobs)
    assert s.jobs[0].config.role == "teacher"


@pytest.mark.parametrize("name", ["glue-full", "table1", "table2", "table3", "sweep-dim", "sweep-lambda"])
def test_the_papers_suites_batch_by_length_and_cache_frozen_teachers(name):
    s = suites.load(name, tasks=["rte"], seeds=[1])
    trains = [j.config.train for j in s.jobs]
    assert all(t.batching == "grouped" for t in trains)
    # the cache serves frozen teachers only; a job whose teacher trains (or that has none) drops the switch
    frozen = [j for j in s.jobs if j.resolved.needs.teacher == "frozen"]
    assert all(j.config.train.teacher_cache for j in frozen) and (frozen or name != "table1")
    assert all(not j.config.train.teacher_cache for j in s.jobs if j.resolved.needs.teacher != "frozen")


def test_every_job_needing_a_teacher_points_at_an_expanded_teacher_job():
    s = suites.load("smoke")
    ids = {j.id for j in s.jobs}
    kd = [j for j in s.jobs if j.config.method in ("kdfd", "vanilla-kd")]
    assert kd and all(j.config.teacher_job in ids for j in kd)
    assert len([j for j in s.jobs if j.config.role == "teacher"]) == 3  # one per task, shared by both methods


def test_the_teacher_job_takes_the_teachers_budget():
    s = suites.load("glue-cpu", tasks=["rte"], seeds=[1], methods=["vanilla-kd"])
    teacher, student = sorted(s.jobs, key=lambda j: j.config.role != "teacher")
    t, st = teacher.config.train, student.config.train
    assert (t.epochs, t.lr) == (st.teacher_epochs, st.teacher_lr) and (t.epochs, t.lr) != (st.epochs, st.lr)
    smoke = suites.load("smoke", tasks=["synth-single"], seeds=[1], methods=["vanilla-kd"])
    t = next(j for j in smoke.jobs if j.config.role == "teacher").config.train
    assert t.teacher_max_train_examples is None and t.max_train_examples == 1000  # unset: the students' subset


def test_overrides_and_labels():
    s = suites.load("glue-full", tasks=["rte"], seeds=[1], methods=["kdfd"])
    labels = {j.label for j in s.jobs if j.config.role != "teacher"}
    assert "kdfd[lr=5e-05,teacher_lr=1e-05,temperature=1.5]" in labels and len(labels) == 18


def _suite(tmp_path, text: str) -> str:
    p = tmp_path / "bad.toml"
    p.write_text('tasks = ["synth-single"]\nseeds = [1]\nmethods = ["kdfd"]\nstudent = {name = "tiny"}\n'
                 'teacher = {name = "tiny", layers = 4}\n' + text)
    return str(p)


@pytest.mark.parametrize("text,message", [
    ("colour = 1\n", "unknown key 'colour' (allowed: base, description, tasks"),
    ("[train]\nepocs = 1\n", "unknown key 'epocs' (allowed: epochs"),
    ("[train]\nlr = -1.0\n", "lr = -1.0 is not allowed"),
    ("[train]\nepochs = \"two\"\n", "epochs = 'two' has type str, expected int"),
    ("[method.kdfd]\ntemperature = []\n", "grid axis 'temperature' is empty"),
    ("[method.kdfd]\nvae_lambda = -1.0\n", "vae_lambda = -1.0 is not allowed"),
    ("[method.kdfd]\nlambda = 0.1\n", "unknown key 'lambda'"),
    ("[method.kdfd]\nlatent_dim = \"big\"\n", "latent_dim = 'big' has type str, expected int"),
    ("[slurm]\npartion = \"gpu\"\n", "unknown key 'partion' (allowed: partition"),
    ("[slurm]\ntime = 0\n", "slurm time = 0 is not allowed"),
])
def test_bad_suite_files_give_one_line_errors_naming_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        suites.load(_suite(tmp_path, text))
    assert message in str(e.value) and "bad.toml" in str(e.value) and "\n" not in str(e.value)


def test_unknown_names():
    with pytest.raises(ConfigError, match="unknown suite 'nope' \\(allowed: .*smoke"):
        suites.load("nope")
    with pytest.raises(ConfigError, match="unknown task 'foo' \\(allowed: .*rte"):
        suites.load("smoke", tasks=["foo"])
    with pytest.raises(ConfigError, match="unknown method 'bar' \\(allowed: .*kdfd"):
        suites.load("smoke", methods=["bar"])


def test_base_suite_merges_tables_and_replaces_lists(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "glue-cpu"\nmethods = ["kdfd", "bert-pkd"]\nseeds = [7]\n'
                    '[method.kdfd]\nlatent_dim = 32\n[method.bert-pkd.student]\nlayers = 2\n')
    s = suites.load(str(path), tasks=["rte"])
    by_method = {j.config.method: j.config for j in s.jobs if j.config.role != "teacher"}
    assert set(by_method) == {"kdfd", "bert-pkd"}
    assert by_method["kdfd"].params["latent_dim"] == 32
    assert by_method["kdfd"].train.lr == 1e-4  # glue-cpu's [train], inherited
    assert by_method["kdfd"].student.layers == 3 and by_method["bert-pkd"].student.layers == 2
    assert by_method["bert-pkd"].student.pooling == "mean"  # the base student's other fields stay
    assert {j.config.seed for j in s.jobs if j.config.role != "teacher"} == {7}


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        suites.load(str(tmp_path / "a.toml"))


def test_table_suites_name_the_papers_methods():
    for name, methods in {"table1": {"finetune", "bert-pkd", "tinybert", "prokt", "theseus", "pesf-kd", "metadistil",
                                     "reptile-distil", "lgtm", "kdfd"},
                          "table2": {"kdfd", "kdfd-ae"}, "table3": {"vanilla-kd", "kdfd"}}.items():
        for variant in (name, f"{name}-cpu"):
            s = suites.load(variant, tasks=["rte"], seeds=[1])
            assert {j.config.method for j in s.jobs if j.config.role != "teacher"} == methods, variant
    cpu = suites.load("glue-cpu", tasks=["mrpc"], seeds=[1])
    labels = sorted(j.label for j in cpu.jobs if j.config.method == "internal-kd")
    assert labels == ["internal-kd[schedule=pid]", "internal-kd[schedule=sid]"]


def test_methods_all_means_every_registered_method():
    from kdfd.registry import METHODS

    s = suites.load("smoke", tasks=["synth-single"], methods=["all"])
    assert {j.config.method for j in s.jobs if j.config.role != "teacher"} == set(METHODS)


def test_the_teacher_cache_switch_changes_only_the_ids_of_jobs_with_a_frozen_teacher(tmp_path):
    from .helpers import tiny_suite, tiny_train

    ids = {}
    for cache in (False, True):
        path = tmp_path / f"cache-{cache}.toml"
        path.write_text(tiny_suite(methods=("vanilla-kd", "kdfd", "finetune"), train=tiny_train(teacher_cache=cache)))
        ids[cache] = {j.label: j.id for j in suites.load(str(path)).jobs}
    assert ids[False].keys() == ids[True].keys() == {"teacher", "vanilla-kd", "kdfd", "finetune"}
    changed = {label for label in ids[False] if ids[False][label] != ids[True][label]}
    assert changed == {"vanilla-kd"}  # the shared teacher, the online and the teacherless jobs keep their ids


def test_teacher_seed_shares_one_teacher_across_run_seeds(tmp_path):
    from .helpers import tiny_suite, tiny_train

    ids = {}
    for shared in (False, True):
        path = tmp_path / f"shared-{shared}.toml"
        train = tiny_train(teacher_seed=1) if shared else tiny_train()
        path.write_text(tiny_suite(methods=("vanilla-kd",), seeds=(1, 2, 3), train=train))
        ids[shared] = suites.load(str(path)).jobs
    per_seed = [j for j in ids[False] if j.config.role == "teacher"]
    shared = [j for j in ids[True] if j.config.role == "teacher"]
    assert len(per_seed) == 3 and len(shared) == 1
    assert shared[0].config.seed == 1 and shared[0].id == per_seed[0].id  # the seed-1 teacher, the same job
    students = [j for j in ids[True] if j.config.role != "teacher"]
    assert {j.config.seed for j in students} == {1, 2, 3} and {j.config.teacher_job for j in students} == {shared[0].id}


def test_a_method_table_may_give_its_own_seeds(tmp_path):
    p = tmp_path / "seeds.toml"
    p.write_text('tasks = ["synth-single"]\nseeds = [1, 2, 3]\nmethods = ["kdfd", "vanilla-kd"]\n'
                 'student = {name = "tiny"}\nteacher = {name = "tiny", layers = 4}\n[method.vanilla-kd]\nseeds = [2]\n')

    def seeds(s, m):
        return sorted(j.config.seed for j in s.jobs if j.config.method == m and j.config.role != "teacher")

    s = suites.load(str(p))
    assert seeds(s, "kdfd") == [1, 2, 3] and seeds(s, "vanilla-kd") == [2]
    s = suites.load(str(p), seeds=[4])  # --seeds replaces every seed list
    assert seeds(s, "kdfd") == [4] and seeds(s, "vanilla-kd") == [4]
    p.write_text(p.read_text().replace("seeds = [2]", "seeds = []"))
    with pytest.raises(ConfigError, match=r"\[method.vanilla-kd\]: seeds must be a non-empty list of int"):
        suites.load(str(p))


def test_glue_cpu_runs_five_seeds_of_the_core_methods_and_three_of_the_rest():
    s = suites.load("glue-cpu", tasks=["mrpc"])
    per = {}
    for j in s.jobs:
        if j.config.role != "teacher":
            per.setdefault(j.label, set()).add(j.config.seed)
    core = ("kdfd", "kdfd-ae", "vanilla-kd", "finetune")
    added_last = ("theseus", "pesf-kd", "metadistil", "reptile-distil", "lgtm")
    expected = {label: {1, 2, 3, 4, 5} if label.split("[")[0] in core else {1, 2, 3} for label in per}
    assert {label.split("[")[0] for label in per} >= set(added_last)
    assert per == expected
    # both of L_vae's gradients, for KDFD and KDFD-AE alike (protocol experiments 5-7)
    assert {"kdfd[vae_grad=flow]", "kdfd[vae_grad=stop]",
            "kdfd-ae[vae_grad=flow]", "kdfd-ae[vae_grad=stop]"} <= set(per)


def test_the_smoke_suites_duration_reads_the_same_in_the_docs_and_in_its_file():
    import re

    from ..conftest import ROOT

    said = re.search(r"\(([^()]+)\)$", suites.load("smoke").description).group(1)  # "about a minute on ..."
    row = next(line for line in (ROOT / "docs" / "suites.md").read_text().splitlines()
               if line.startswith("| `smoke` |"))
    setup = next(line for line in (ROOT / "README.md").read_text().splitlines() if "`bench run --suite smoke`" in line)
    assert said in row and said in setup, (said, row, setup)
