"""MIXER: the schedule of m, MLE exactly while m is the full length, the REINFORCE loss after m."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, no_dropout_model, synthetic_task
from fairseq_erpo.criterions.mixer import truncated_references
from fairseq_erpo.sampling import PREFIX
from test_criterions import build, loss_and_grads


@pytest.fixture(scope="module")
def task_and_cfg():
    task, cfg = synthetic_task("erpo_translation")
    task.build_model(cfg.model)  # records the decoder's feature size, which the learned baseline reads
    return task, cfg


def test_schedule_moves_delta_tokens_per_step(task_and_cfg):
    task, cfg = task_and_cfg
    mixer = build(task, cfg, "mixer", mixer_delta=3, mixer_epochs_per_step=2)
    tails = []
    for epoch in range(1, 8):
        task.epoch = epoch
        tails.append(mixer.reinforce_tokens())
    task.epoch = None
    assert tails == [0, 0, 3, 3, 6, 6, 9]


def test_cross_entropy_phase_then_stages(task_and_cfg):
    """--mixer-xent-epochs: pure cross entropy first (Ranzato et al.'s 25 epochs), then Delta more
    tokens per stage; the same in updates with --mixer-xent-updates."""
    task, cfg = task_and_cfg
    mixer = build(task, cfg, "mixer", mixer_delta=2, mixer_epochs_per_step=2, mixer_xent_epochs=3)
    tails = []
    for epoch in range(1, 10):
        task.epoch = epoch
        tails.append(mixer.reinforce_tokens())
    task.epoch = None
    assert tails == [0, 0, 0, 2, 2, 4, 4, 6, 6]
    by_updates = build(task, cfg, "mixer", mixer_delta=3, mixer_updates_per_step=10, mixer_xent_updates=25)
    got = []
    for update in (0, 24, 25, 34, 35, 45):
        task.update_num = update
        got.append(by_updates.reinforce_tokens())
    task.update_num = None
    assert got == [0, 0, 3, 3, 6, 9]


def test_full_length_m_is_exactly_cross_entropy(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    sample = first_batch(task)
    ce = build(task, cfg, "cross_entropy")
    mixer = build(task, cfg, "mixer")  # epoch 1: m = T for every example
    loss_ce, size_ce, _, grads_ce = loss_and_grads(model, ce, sample)
    loss_mx, size_mx, log, grads_mx = loss_and_grads(model, mixer, sample)
    assert log["mixer_tail"] == 0 and size_ce == size_mx
    assert torch.equal(loss_ce, loss_mx)
    assert all(torch.equal(grads_ce[n], grads_mx[n]) for n in grads_ce)


@pytest.mark.parametrize("tail", [2, 1000])
def test_reinforce_loss_after_m(task_and_cfg, tail):
    """Loss = w NLL of y*_1:m + (1 - w) A * NLL of the sampled tokens, A = R(y) - R(y*_1:m) (no baseline);
    the EOS forced at the length cap is no sampled token and has no loss."""
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task, max_sentences=32)
    mixer = build(task, cfg, "mixer", mixer_delta=tail, mixer_baseline="none", mixer_xent_weight=0.3)
    task.epoch = 2
    try:
        torch.manual_seed(3)
        loss, sample_size, log = mixer(model, sample)
    finally:
        task.epoch = None
    refs, pad, eos = sample["target"], mixer.padding_idx, mixer.special.eos
    prefix = ((refs != pad).sum(1) - tail).clamp(min=0)
    twin = build(task, cfg, "mixer", mixer_delta=tail, mixer_baseline="none")
    torch.manual_seed(3)  # a fresh sampler seeded from the same torch seed: the same draws again
    drawn = twin.sampler.sample(model, sample, (1.0,), truth_prefix=prefix)
    y = drawn.sample["target"]
    # the first m tokens are the reference's and are marked as copied; the rest was drawn
    for i in range(y.size(0)):
        m = int(prefix[i])
        assert torch.equal(y[i, :m], refs[i, :m]) and bool((drawn.branch[i, :m] == PREFIX).all())
        assert bool((drawn.branch[i, m:][y[i, m:] != pad] == 0).all())
        assert int(y[i][y[i] != pad][-1]) == eos
    if tail == 1000:
        assert int(prefix.max()) == 0
    with torch.no_grad():
        lprobs = model.get_normalized_probs(model(**drawn.sample["net_input"]), log_probs=True)
        nll = -lprobs.gather(2, y.unsqueeze(2)).squeeze(2).masked_fill(y == pad, 0.0)
    reward = mixer.reward
    advantage = reward.score(y, refs) - reward.score(truncated_references(refs, prefix, eos, pad), refs)
    pos = torch.arange(y.size(1)).unsqueeze(0)
    after = pos >= prefix.unsqueeze(1)
    # a row still going at its cap (T* + 10 tokens) gets EOS there, which the sampler marks
    capped = (pos == twin.sampler.max_lengths(refs).unsqueeze(1)) & (y == eos)
    assert torch.equal(drawn.capped, capped) and int(capped.sum()) > 0  # an untrained model runs on
    nll = nll.masked_fill(capped, 0.0)
    expected = 0.3 * nll.masked_fill(after, 0.0).sum() + \
        0.7 * (advantage.unsqueeze(1).float() * nll.masked_fill(~after, 0.0)).sum()
    assert torch.allclose(loss.detach(), expected, rtol=1e-5, atol=1e-4)
    assert sample_size == int((y != pad).sum()) == log["ntokens"]
    assert log["mixer_reinforce_tokens"] == int((after & (y != pad) & ~capped).sum()) > 0
    assert log["mixer_gain"] == pytest.approx(float(advantage.sum()))


def test_learned_baseline_loss_and_gradient_isolation(task_and_cfg):
    """The default MIXER loss: 0.5 NLL of y*_1:m + 0.5 (G - b_t) NLL(y_t) + 0.01 (b_t - G)^2, with
    b_t = w . h_t + b on the decoder's features; the network gets the policy terms' gradient only,
    the regressor its squared error's only."""
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task, max_sentences=32)
    mixer = build(task, cfg, "mixer", mixer_delta=3)
    regressor = mixer.baseline_regressor
    assert float(regressor.weight.abs().sum()) == 0.0 and float(regressor.bias) == pytest.approx(0.01)
    with torch.no_grad():  # off its initial point, so that b_t differs between steps
        regressor.weight.copy_(0.05 * torch.randn(regressor.weight.shape, generator=torch.Generator().manual_seed(0)))
    task.epoch = 2
    try:
        model.zero_grad()
        regressor.zero_grad()
        torch.manual_seed(3)
        loss, _, log = mixer(model, sample)
        loss.backward()
    finally:
        task.epoch = None

    refs, pad, eos = sample["target"], mixer.padding_idx, mixer.special.eos
    prefix = ((refs != pad).sum(1) - 3).clamp(min=0)
    twin = build(task, cfg, "mixer", mixer_delta=3, mixer_baseline="none")
    torch.manual_seed(3)
    drawn = twin.sampler.sample(model, sample, (1.0,), truth_prefix=prefix)
    y = drawn.sample["target"]
    features, extra = model.extract_features(**drawn.sample["net_input"])
    lprobs = model.get_normalized_probs((model.decoder.output_layer(features), extra), log_probs=True)
    nll = -lprobs.gather(2, y.unsqueeze(2)).squeeze(2).masked_fill(y == pad, 0.0)
    gain = mixer.reward.score(y, refs) - mixer.reward.score(truncated_references(refs, prefix, eos, pad), refs)
    pos = torch.arange(y.size(1)).unsqueeze(0)
    reinforce = (pos >= prefix.unsqueeze(1)) & (y != pad) & ~drawn.capped
    before = (pos < prefix.unsqueeze(1)) & (y != pad)
    b = regressor(features).squeeze(-1)
    G = gain.float().unsqueeze(1).expand_as(b)
    policy = 0.5 * nll[before].sum() + 0.5 * ((G - b.detach()) * nll)[reinforce].sum()
    fit = 0.01 * ((b - G)[reinforce] ** 2).sum()
    assert float(b[reinforce].std()) > 0  # the baseline varies with t
    assert torch.allclose(loss.detach(), (policy + fit).detach(), rtol=1e-5, atol=1e-5)
    assert log["mixer_baseline_sse"] == pytest.approx(float(((b - G)[reinforce] ** 2).sum()), rel=1e-5)
    # the network: exactly the policy terms' gradient (the squared error does not reach it)
    expected = torch.autograd.grad(policy, list(model.parameters()), allow_unused=True)
    for (name, param), grad in zip(model.named_parameters(), expected):
        grad = torch.zeros_like(param) if grad is None else grad
        assert torch.allclose(param.grad, grad, rtol=1e-4, atol=1e-6), name
    # the regressor: d/db 0.01 sum (b_t - G)^2 = 0.02 sum (b_t - G), and no gradient from the policy
    assert float(regressor.bias.grad) == pytest.approx(0.02 * float((b - G)[reinforce].sum()), rel=1e-4)
    weight_grad = 0.02 * ((b - G).detach()[reinforce].unsqueeze(1) * features.detach()[reinforce]).sum(0)
    assert torch.allclose(regressor.weight.grad.squeeze(0), weight_grad, rtol=1e-4, atol=1e-7)


def test_learned_baseline_is_criterion_state(task_and_cfg):
    """Saved and loaded with the criterion (fairseq keeps it in every checkpoint); a checkpoint
    without criterion state (an MLE model to fine-tune) leaves it at its values."""
    task, cfg = task_and_cfg
    mixer, fresh = build(task, cfg, "mixer"), build(task, cfg, "mixer")
    assert set(mixer.state_dict()) == {"baseline_regressor.weight", "baseline_regressor.bias"}
    assert mixer.baseline_regressor.weight.shape == (1, 256)  # the preset's decoder output size
    with torch.no_grad():
        mixer.baseline_regressor.bias.fill_(0.3)
    fresh.load_state_dict(mixer.state_dict())
    assert float(fresh.baseline_regressor.bias) == pytest.approx(0.3)
    fresh.load_state_dict(None)
    assert float(fresh.baseline_regressor.bias) == pytest.approx(0.3)
    assert not list(build(task, cfg, "mixer", mixer_baseline="mean").parameters())


def test_truncated_references():
    refs = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 1]])
    out = truncated_references(refs, torch.tensor([2, 0]), eos=2, pad=1)
    assert out.tolist() == [[5, 6, 2, 1], [2, 1, 1, 1]]


def test_running_mean_baseline(task_and_cfg):
    """b is the running mean of earlier batches' gains; the first batch has no baseline."""
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    mixer = build(task, cfg, "mixer", mixer_delta=1, mixer_baseline="mean", mixer_baseline_decay=0.5)
    plain = build(task, cfg, "mixer", mixer_delta=1, mixer_baseline="none")
    sample = first_batch(task, max_sentences=32)
    task.state.state_dict.pop("mixer_baseline", None)
    gains, losses = [], []
    task.epoch = 2
    try:
        for seed in (5, 6):
            torch.manual_seed(seed)
            loss_plain, _, log = plain(model, sample)
            gains.append(log["mixer_gain"] / 32)
            torch.manual_seed(seed)
            loss, _, log = mixer(model, sample)
            losses.append((float(loss_plain), float(loss)))
    finally:
        task.epoch = None
    assert log["mixer_tail"] == 1
    assert mixer.baseline == pytest.approx(0.5 * gains[0] + 0.5 * gains[1])
    # the baseline is task state, so it is in every checkpoint and comes back on resume
    saved = task.get_checkpoint_dict()["ErpoTranslationTask"]
    resumed, _ = synthetic_task("erpo_translation")
    resumed.set_checkpoint_dict(saved)
    assert build(resumed, cfg, "mixer", mixer_baseline="mean").baseline == mixer.baseline
    assert losses[0][0] == pytest.approx(losses[0][1])  # no baseline yet
    assert losses[1][0] != pytest.approx(losses[1][1])  # b = gains[0] shifts the advantage


@pytest.mark.parametrize("fields, message", [
    ({"mixer_delta": 0}, "--mixer-delta must be >= 1"),
    ({"mixer_epochs_per_step": 0}, "--mixer-epochs-per-step must be >= 1"),
    ({"mixer_updates_per_step": -1}, "--mixer-updates-per-step must be >= 0"),
    ({"mixer_baseline_decay": 1.0}, "--mixer-baseline-decay must be in [0, 1)"),
    ({"reward": "delta"}, "cannot be a REINFORCE return"),
    ({"mixer_xent_epochs": -1}, "--mixer-xent-epochs must be >= 0"),
    ({"mixer_xent_updates": -2}, "--mixer-xent-updates must be >= 0"),
    ({"mixer_xent_weight": 0.0}, "--mixer-xent-weight must be in (0, 1]"),
    ({"mixer_xent_weight": 1.5}, "--mixer-xent-weight must be in (0, 1]"),
    ({"mixer_baseline_weight": 0.0}, "--mixer-baseline-weight must be > 0"),
])
def test_bad_options_fail_at_start_up(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=re.escape(message)):
        build(task, cfg, "mixer", **fields)


def test_epoch_schedule_needs_a_task_that_records_epochs():
    task, cfg = synthetic_task("translation")
    with pytest.raises(ValueError, match="use --task erpo_translation, or schedule by updates"):
        build(task, cfg, "mixer", mixer_baseline="none")
    with pytest.raises(ValueError, match="--task TranslationTask does not restore state from checkpoints: use "
                                         "--task erpo_translation, or --mixer-baseline none"):
        build(task, cfg, "mixer", mixer_updates_per_step=100, mixer_baseline="mean")
    with pytest.raises(ValueError, match="--mixer-baseline learned needs the size of the decoder's features.*"
                                         "use --task erpo_translation, or --mixer-baseline none"):
        build(task, cfg, "mixer", mixer_updates_per_step=100)
    mixer = build(task, cfg, "mixer", mixer_updates_per_step=100, mixer_baseline="none")
    # under fairseq's own task the update number is read off the trainer's per-update seed
    # (--seed 1 + updates): update 250 is in the schedule's third step, 2 x 2 tokens
    torch.manual_seed(1 + 250)
    assert mixer.reinforce_tokens() == 4
    torch.manual_seed(1 + 99)
    assert mixer.reinforce_tokens() == 0
