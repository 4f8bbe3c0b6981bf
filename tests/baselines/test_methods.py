"""Golden values of each baseline's loss on small fixed tensors, against formulas written out here independently,
and the layer maps and stage schedules each method's paper fixes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.bert_pkd import BertPKD, BertPKDParams, pkd_pairs
from baselines.dml import DML
from baselines.internal_kd import InternalKD, InternalKDParams
from baselines.kdfd_ae import KDFDAE
from baselines.prokt import ProKT, ProKTParams
from baselines.tinybert import TinyBERT, TinyBERTParams
from kdfd.distiller import ModelInfo
from kdfd.engine import stage_ends
from kdfd.models import Forward, ModelSpec, build_classifier
from kdfd.tasks import get_task

TASK = get_task("synth-pair")
torch.manual_seed(0)
B, T, H, C = 3, 4, 8, 2


def fwd(layers: int, seed: int) -> Forward:
    g = torch.Generator().manual_seed(seed)
    hs = tuple(torch.randn(B, T, H, generator=g) for _ in range(layers + 1))
    att = tuple(torch.softmax(torch.randn(B, 2, T, T, generator=g), -1) for _ in range(layers))
    return Forward(logits=torch.randn(B, C, generator=g), last_hidden=hs[-1], pooler=None,
                   attention_mask=torch.ones(B, T, dtype=torch.long), hidden_states=hs, attentions=att,
                   attention_scores=tuple(torch.randn(B, 2, T, T, generator=g) for _ in range(layers)))


LABELS = {"labels": torch.tensor([0, 1, 1])}


def kl(target_logits, logits, tau=1.0):
    q, p = F.softmax(target_logits / tau, -1), F.softmax(logits / tau, -1)
    return (q * (q / p).log()).sum(-1).mean() * tau**2


def test_pkd_layer_maps_are_the_papers():
    assert pkd_pairs(6, 12, "skip") == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    assert pkd_pairs(6, 12, "last") == [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]
    assert pkd_pairs(3, 6, "skip") == [(1, 2), (2, 4)]


def test_pkd_loss_golden_authors_normalisation():
    """The authors' code: tau^2 nn.KLDivLoss() (mean over B x C) and F.mse_loss of the normalised [CLS] states
    stacked over layers (mean over B x layers x H)."""
    p = BertPKDParams(alpha=0.3, beta=7.0, temperature=4.0)
    m = BertPKD(p, TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)
    out = m.student_loss(LABELS, s, t)
    ce = F.cross_entropy(s.logits, LABELS["labels"])
    q = F.softmax(t.logits / 4.0, dim=1)
    d_loss = (q * (q.log() - F.log_softmax(s.logits / 4.0, dim=1))).sum() / q.numel() * 4.0 * 4.0
    s_pat = torch.stack([s.hidden_states[i][:, 0] for i in (1, 2)], 1)
    t_pat = torch.stack([t.hidden_states[j][:, 0] for j in (2, 4)], 1)
    pt = ((F.normalize(t_pat, p=2, dim=2) - F.normalize(s_pat, p=2, dim=2)) ** 2).mean()
    expected = 0.3 * d_loss + 0.7 * ce + 7.0 * pt
    assert torch.allclose(out["total"], expected, atol=1e-6)


def test_pkd_loss_golden_paper_normalisation():
    p = BertPKDParams(alpha=0.3, beta=7.0, temperature=4.0, normalisation="paper")
    m = BertPKD(p, TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)
    out = m.student_loss(LABELS, s, t)
    ce = F.cross_entropy(s.logits, LABELS["labels"])
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    pt = sum(((unit(s.hidden_states[i][:, 0]) - unit(t.hidden_states[j][:, 0])) ** 2).sum(-1).mean()
             for i, j in [(1, 2), (2, 4)])
    expected = 0.7 * ce + 0.3 * kl(t.logits, s.logits, 4.0) + 7.0 * pt
    assert torch.allclose(out["total"], expected, atol=1e-5)


def test_prokt_teacher_steps_toward_the_student_and_the_student_toward_the_teacher():
    """prokt_text: the teacher minimises (1 - lam) CE + lam KL(p_S || p_T) (lam = 0.4 by default)."""
    assert ProKTParams().lam == 0.4 and ProKTParams().teacher_init == "pretrained"
    m = ProKT(ProKTParams(lam=0.4, alpha=0.2), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)
    teacher = m.teacher_loss(LABELS, t, s)
    expected_t = 0.6 * F.cross_entropy(t.logits, LABELS["labels"]) + 0.4 * kl(s.logits, t.logits)
    assert torch.allclose(teacher["total"], expected_t, atol=1e-5)
    student = m.student_loss(LABELS, s, t)
    expected_s = 0.2 * F.cross_entropy(s.logits, LABELS["labels"]) + 0.8 * kl(t.logits, s.logits)
    assert torch.allclose(student["total"], expected_s, atol=1e-5)
    v1 = ProKT(ProKTParams(lam=1.0, teacher_ce_weight=1.0, teacher_init="finetuned", teacher_head="keep"), TASK,
               ModelInfo(H, 3), ModelInfo(H, 6))
    expected_v1 = F.cross_entropy(t.logits, LABELS["labels"]) + kl(s.logits, t.logits)
    assert torch.allclose(v1.teacher_loss(LABELS, t, s)["total"], expected_v1, atol=1e-5)


def test_prokt_zeroes_the_teachers_classifier():
    spec = ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32)
    student, teacher = build_classifier(spec, 2, 50), build_classifier(spec, 2, 50)
    ProKT(ProKTParams(), TASK, ModelInfo(16, 2), ModelInfo(16, 2)).init_models(student, teacher)
    assert teacher.head.weight.abs().sum() == 0 and teacher.head.bias.abs().sum() == 0
    assert student.head.weight.abs().sum() > 0


def test_dml_each_peer_matches_the_other():
    m = DML(DML.Params(), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)
    y = LABELS["labels"]
    assert torch.allclose(m.student_loss(LABELS, s, t)["total"], F.cross_entropy(s.logits, y) + kl(t.logits, s.logits),
                          atol=1e-5)
    assert torch.allclose(m.teacher_loss(LABELS, t, s)["total"], F.cross_entropy(t.logits, y) + kl(s.logits, t.logits),
                          atol=1e-5)


def test_internal_kd_stages_pid_and_sid():
    pid = InternalKD(InternalKDParams(schedule="pid"), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    assert [(st.name, st.train) for st in pid.stages()] == [
        ("layer.1", ("layer.1", "embeddings")), ("layer.2", ("layer.2",)), ("layer.3", ("layer.3",)),
        ("classifier", ("head",))]
    # the classifier stage gets classifier_share (0.5) of the steps, the layers share the rest equally
    assert stage_ends(pid.stages(), 120) == [20, 40, 60, 120]
    sid = InternalKD(InternalKDParams(schedule="sid"), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    assert [st.train for st in sid.stages()][:3] == [
        ("embeddings", "layer.1"), ("embeddings", "layer.1", "layer.2"),
        ("embeddings", "layer.1", "layer.2", "layer.3")]


@pytest.mark.parametrize("schedule", ["pid", "sid"])
def test_internal_kd_losses_golden(schedule):
    m = InternalKD(InternalKDParams(schedule=schedule, cls_weight=2.0), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)

    def att_kl(scores_s, scores_t):  # KL(A_t || A_s) per head and query row, averaged; A = softmax(scores)
        a_s, a_t = scores_s.softmax(-1), scores_t.softmax(-1)
        return (a_t * (a_t / a_s).log()).sum(-1).mean()

    def cos(i, j):
        return (1 - F.cosine_similarity(s.hidden_states[i][:, 0], t.hidden_states[j][:, 0], dim=-1)).mean()

    m.stage = m.stages()[1]  # layer.2 <-> teacher layer 4
    pairs = [(2, 4)] if schedule == "pid" else [(1, 2), (2, 4)]
    expected = sum(att_kl(s.attention_scores[i - 1], t.attention_scores[j - 1]) + 2.0 * cos(i, j) for i, j in pairs)
    assert torch.allclose(m.student_loss(LABELS, s, t)["total"], expected, atol=1e-5)
    m.stage = m.stages()[-1]
    assert torch.allclose(m.student_loss(LABELS, s, t)["total"], kl(t.logits, s.logits), atol=1e-5)


def test_internal_kd_reads_attention_before_dropout_rows_sum_to_one_in_train_mode(monkeypatch):
    """In train mode Hugging Face's eager attention returns probabilities after dropout (rows no longer sum to 1);
    the maps internal-kd gives attention_kl must be the pre-dropout ones, equal to the eval-mode probabilities."""
    from kdfd import losses

    torch.manual_seed(0)
    model = build_classifier(ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32, dropout=0.5), 2, 50,
                             "eager")
    for name, module in model.named_modules():  # dropout on the attention probabilities alone: same layer inputs
        if isinstance(module, torch.nn.Dropout) and "attention.self" not in name:
            module.p = 0.0
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    seen, real_kl = [], losses.attention_kl
    monkeypatch.setattr(losses, "attention_kl", lambda a_s, a_t, m: seen.append(a_s.detach()) or real_kl(a_s, a_t, m))
    m = InternalKD(InternalKDParams(), TASK, ModelInfo(16, 2, 2), ModelInfo(16, 2, 2))
    needs = m.needs(m.params)
    model.train()
    s = model(ids, mask, hidden_states=needs.hidden_states, attention_scores=needs.attention_scores, attentions=True)
    dropped = s.attentions[0].sum(-1)
    assert not torch.allclose(dropped, torch.ones_like(dropped))  # what version 1 read: not distributions
    m.stage = m.stages()[0]
    m.student_loss(LABELS | {"labels": torch.tensor([0, 1])}, s, s)
    model.eval()
    with torch.no_grad():
        ref = model(ids, mask, attentions=True).attentions[0]
    assert len(seen) == 1
    assert torch.allclose(seen[0].sum(-1), torch.ones(2, 2, 6), atol=1e-6)
    assert torch.allclose(seen[0], ref, atol=1e-5)


def test_tinybert_losses_golden():
    m = TinyBERT(TinyBERTParams(), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    s, t = fwd(3, 1), fwd(6, 2)
    m.stage = m.stages()[0]
    mse = lambda a, b: ((a - b) ** 2).mean()  # noqa: E731
    expected = mse(s.hidden_states[0], t.hidden_states[0]) + sum(
        mse(s.hidden_states[i], t.hidden_states[j]) + mse(s.attention_scores[i - 1], t.attention_scores[j - 1])
        for i, j in [(1, 2), (2, 4), (3, 6)])
    assert torch.allclose(m.student_loss(LABELS, s, t)["total"], expected, atol=1e-5)
    m.stage = m.stages()[1]
    # TinyBERT's task_distill.py: soft_cross_entropy = (- targets_prob * student_likelihood).mean()
    soft_ce = (-F.softmax(t.logits, -1) * F.log_softmax(s.logits, -1)).mean()
    assert torch.allclose(m.student_loss(LABELS, s, t)["total"], soft_ce, atol=1e-6)


def test_tinybert_regression_fits_the_gold_scores():
    """task_distill.py, output_mode regression: cls_loss = MSELoss()(student_logits.view(-1), label_ids.view(-1))."""
    stsb = get_task("stsb")
    s, t = fwd(3, 1), fwd(6, 2)
    s.logits, t.logits = s.logits[:, :1], t.logits[:, :1]
    y = torch.tensor([0.5, 3.0, 4.5])
    for target, expected in (("gold", ((s.logits.view(-1) - y.view(-1)) ** 2).mean()),
                             ("teacher", ((s.logits - t.logits) ** 2).mean())):
        m = TinyBERT(TinyBERTParams(regression_target=target), stsb, ModelInfo(H, 3), ModelInfo(H, 6))
        m.stage = m.stages()[1]
        assert torch.allclose(m.student_loss({"labels": y}, s, t)["total"], expected, atol=1e-6)


def test_attention_scores_are_the_models_own_pre_softmax_scores():
    """softmax(scores + padding mask) must equal the attention probabilities the eager model returns."""
    torch.manual_seed(0)
    model = build_classifier(ModelSpec("tiny", layers=2, hidden=16, heads=2, intermediate=32, dropout=0.0), 2, 50,
                             "eager").eval()
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    out = model(ids, mask, attentions=True, attention_scores=True)
    for scores, probs in zip(out.attention_scores, out.attentions):
        masked = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        assert torch.allclose(masked.softmax(-1), probs, atol=1e-5)


def test_stage_ends_split_the_steps_by_share():
    from kdfd.distiller import Stage

    assert stage_ends([Stage("a"), Stage("b"), Stage("c"), Stage("d")], 8) == [2, 4, 6, 8]
    assert stage_ends([Stage("a", 0.5), Stage("b", 0.5)], 7) == [4, 7]
    assert stage_ends([Stage("a"), Stage("b"), Stage("c")], 2) == [1, 2, 3]  # too few steps: one each


def test_kdfd_ae_is_kdfd_with_an_autoencoder():
    assert KDFDAE.Params().bottleneck == "ae"
    m = KDFDAE(KDFDAE.Params(latent_dim=4), TASK, ModelInfo(H, 3), ModelInfo(H, 6))
    assert not m.student_modules["bottleneck"].variational


def test_kdfd_ae_refuses_a_vae_bottleneck():
    from kdfd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^kdfd-ae: bottleneck = 'vae' is not allowed \(allowed: ae; the VAE is "
                                          r"the method kdfd\)$"):
        KDFDAE.Params(bottleneck="vae")


def test_attention_methods_refuse_models_with_different_head_counts():
    from kdfd.errors import ConfigError

    for cls in (InternalKD, TinyBERT):
        with pytest.raises(ConfigError, match="student has 2 heads, the teacher 4"):
            cls(cls.Params(), TASK, ModelInfo(H, 3, 2), ModelInfo(H, 6, 4))
