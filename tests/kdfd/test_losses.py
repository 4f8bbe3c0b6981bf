import math

import torch

from kdfd import losses


def test_kd_kl_at_temperature_one_matches_hand_computed_value():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(teacher || student)
    assert math.isclose(losses.kd_kl(student, teacher, 1.0).item(), expected, rel_tol=1e-6)


def test_kd_kl_divides_logits_by_tau_and_scales_by_tau_squared():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    tau = 2.0
    q1 = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax(log3 / 2, 0)
    q = (q1, 1 - q1)
    expected = tau**2 * sum(qi * math.log(qi / 0.5) for qi in q)
    assert math.isclose(losses.kd_kl(student, teacher, tau).item(), expected, rel_tol=1e-6)


def test_kd_kl_direction_is_target_first_and_averages_over_batch():
    a = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    b = torch.tensor([[0.0, 0.5, 0.0], [1.0, -1.0, 2.0]])
    p, q = a.softmax(-1), b.softmax(-1)
    kl_q_p = (q * (q / p).log()).sum(-1).mean()  # KL(softmax(b) || softmax(a)): b is the target
    assert torch.allclose(losses.kd_kl(a, b, 1.0), kl_q_p, atol=1e-6)
    assert not torch.allclose(losses.kd_kl(b, a, 1.0), kl_q_p, atol=1e-4)


def test_regression_kd_is_mse_without_temperature():
    s, t = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]])
    assert math.isclose(losses.distill(s, t, 5.0, regression=True).item(), (1 + 4) / 2)


def test_gaussian_kl_hand_computed_sum_and_mean():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    d1 = 0.5 * (1.0**2 + 1.0 - 1.0 - 0.0)  # 0.5 (mu^2 + sigma^2 - 1 - log sigma^2)
    d2 = 0.5 * (0.0 + 2.0 - 1.0 - math.log(2.0))
    assert math.isclose(losses.gaussian_kl(mu, logvar, "sum").item(), d1 + d2, rel_tol=1e-6)
    assert math.isclose(losses.gaussian_kl(mu, logvar, "mean").item(), (d1 + d2) / 2, rel_tol=1e-6)


def test_gaussian_kl_is_zero_for_the_prior():
    assert losses.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_reconstruction_sum_and_mean_average_over_batch():
    h = torch.zeros(2, 2)
    h_hat = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    assert math.isclose(losses.reconstruction(h_hat, h, "sum").item(), (5 + 1) / 2)
    assert math.isclose(losses.reconstruction(h_hat, h, "mean").item(), (2.5 + 0.5) / 2)


def test_task_loss_ce_and_mse():
    logits = torch.tensor([[0.0, 0.0]])
    assert math.isclose(losses.task_loss(logits, torch.tensor([1]), False).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(losses.task_loss(torch.tensor([[2.0]]), torch.tensor([5.0]), True).item(), 9.0)


def test_soft_cross_entropy_hand_computed_and_no_tau_squared():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> (0.75, 0.25)
    sce = lambda *a: losses.soft_cross_entropy(*a, reduction="sum").item()  # noqa: E731 (eq. 10 as printed)
    assert math.isclose(sce(student, teacher, 1.0), math.log(2.0), rel_tol=1e-6)
    q1 = math.sqrt(3) / (math.sqrt(3) + 1)  # tau = 2: softmax(log3 / 2, 0); the student stays uniform
    expected = -(q1 * math.log(0.5) + (1 - q1) * math.log(0.5))  # = log 2, with no factor tau^2 = 4
    assert math.isclose(sce(student, teacher, 2.0), expected, rel_tol=1e-6)
    s2 = torch.tensor([[1.0, -1.0]])
    p = torch.tensor([1.0, -1.0]).div(2.0).softmax(-1)
    expected = -(q1 * math.log(p[0]) + (1 - q1) * math.log(p[1]))
    assert math.isclose(sce(s2, teacher, 2.0), expected, rel_tol=1e-6)


def test_soft_cross_entropy_default_is_tinybert_codes_mean_over_entries():
    # TinyBERT's task_distill.py: soft_cross_entropy = (- targets_prob * student_likelihood).mean()
    s = torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]])
    t = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.2, 3.0]])
    student_likelihood = torch.nn.functional.log_softmax(s / 1.5, dim=-1)
    targets_prob = torch.nn.functional.softmax(t / 1.5, dim=-1)
    reference = (-targets_prob * student_likelihood).mean()
    assert torch.allclose(losses.soft_cross_entropy(s, t, 1.5), reference, atol=1e-7)
    assert torch.allclose(losses.soft_cross_entropy(s, t, 1.5, "sum"), 3 * reference, atol=1e-6)  # a factor C


def test_patient_loss_normalises_before_the_distance():
    s = torch.tensor([[[3.0, 4.0]]])  # [B=1, L=1, H=2]; unit: (0.6, 0.8)
    t = torch.tensor([[[0.0, 10.0]]])  # unit: (0, 1)
    expected = 0.6**2 + 0.2**2
    assert math.isclose(losses.patient_loss(s, t, "sum").item(), expected, rel_tol=1e-6)
    assert math.isclose(losses.patient_loss(10 * s, t, "sum").item(), expected, rel_tol=1e-6)  # scale does not matter
    both = losses.patient_loss(torch.cat([s, t]), torch.cat([t, t]), "sum")
    assert math.isclose(both.item(), expected / 2, rel_tol=1e-6)  # averaged over the batch


def test_patient_loss_default_is_pkd_codes_mse_of_normalised_states():
    # PKD-for-BERT-Model-Compression: patience_loss(..., normalized_patience=True) =
    #   F.mse_loss(F.normalize(teacher, p=2, dim=2), F.normalize(student, p=2, dim=2)) over [B, layers, H]
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 3, 8, generator=g), torch.randn(4, 3, 8, generator=g)
    tn, sn = t / t.norm(dim=2, keepdim=True), s / s.norm(dim=2, keepdim=True)
    reference = ((tn - sn) ** 2).sum() / (4 * 3 * 8)
    assert torch.allclose(losses.patient_loss(s, t), reference, atol=1e-7)
    assert torch.allclose(losses.patient_loss(s, t, "sum"), reference * 3 * 8, atol=1e-5)  # H x L times larger


def test_kd_kl_elementwise_is_pkd_codes_kldivloss_mean():
    # PKD's distillation_loss: nn.KLDivLoss()(log_softmax(y / T), softmax(teacher / T)) * T * T, reduction 'mean'
    y = torch.tensor([[0.5, -0.5, 1.0], [0.0, 2.0, -1.0]])
    teacher = torch.tensor([[2.0, 0.0, 0.0], [-1.0, 1.0, 0.5]])
    T = 10.0
    q = torch.softmax(teacher / T, dim=1)
    reference = (q * (q.log() - torch.log_softmax(y / T, dim=1))).sum() / y.numel() * T * T
    assert torch.allclose(losses.kd_kl_elementwise(y, teacher, T), reference, atol=1e-7)


def test_attention_probs_are_a_masked_softmax_that_sums_to_one():
    scores = torch.tensor([[[[1.0, 2.0, 9.0], [0.0, 0.0, 9.0], [3.0, 1.0, 0.0]]]])  # [B=1, heads=1, T=3, T=3]
    mask = torch.tensor([[1, 1, 0]])
    probs = losses.attention_probs(scores, mask)
    e = math.exp(1.0)
    assert torch.allclose(probs[0, 0, 0], torch.tensor([1 / (1 + e), e / (1 + e), 0.0]), atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 1, 3))
    assert probs[..., 2].abs().max() == 0  # the padded key gets nothing


def test_cosine_loss_hand_computed():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert math.isclose(losses.cosine_loss(s, t).item(), ((1 - 0) + (1 - 1)) / 2, abs_tol=1e-6)


def test_attention_kl_is_teacher_first_per_row_and_skips_padded_queries():
    t = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])  # [B=1, heads=1, T=2, T=2]
    s = torch.tensor([[[[0.25, 0.75], [0.5, 0.5]]]])
    row1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row2 = 1.0 * math.log(1.0 / 0.5)
    both = torch.ones(1, 2)
    assert math.isclose(losses.attention_kl(s, t, both).item(), (row1 + row2) / 2, rel_tol=1e-6)
    first_only = torch.tensor([[1, 0]])
    assert math.isclose(losses.attention_kl(s, t, first_only).item(), row1, rel_tol=1e-6)
    reverse = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert not math.isclose(losses.attention_kl(t, s, first_only).item(), row1, rel_tol=1e-3)
    assert math.isclose(losses.attention_kl(t, s, first_only).item(), reverse, rel_tol=1e-6)


def test_masked_mse_averages_over_unmasked_entries_only():
    s = torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])  # [B=1, T=2, H=2]
    t = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])[:, :, None]
    assert math.isclose(losses.masked_mse(s, t, mask).item(), (1 + 4) / 2, rel_tol=1e-6)
