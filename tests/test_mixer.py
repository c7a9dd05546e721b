"""MIXER: the schedule of m, MLE exactly while m is the full length, the REINFORCE loss after m."""
from __future__ import annotations

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
    return synthetic_task("erpo_translation")


def test_schedule_moves_delta_tokens_per_step(task_and_cfg):
    task, cfg = task_and_cfg
    mixer = build(task, cfg, "mixer", mixer_delta=3, mixer_epochs_per_step=2)
    tails = []
    for epoch in range(1, 8):
        task.epoch = epoch
        tails.append(mixer.reinforce_tokens())
    task.epoch = None
    assert tails == [0, 0, 3, 3, 6, 6, 9]


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
    """Loss = NLL of y*_1:m + A * NLL of the sampled tokens, A = R(y) - R(y*_1:m) (no baseline);
    the EOS forced at the length cap is no sampled token and has no loss."""
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task, max_sentences=32)
    mixer = build(task, cfg, "mixer", mixer_delta=tail, mixer_baseline="none")
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
    expected = nll.masked_fill(after, 0.0).sum() + (advantage.unsqueeze(1).float() * nll.masked_fill(~after, 0.0)).sum()
    assert torch.allclose(loss.detach(), expected, rtol=1e-5, atol=1e-4)
    assert sample_size == int((y != pad).sum()) == log["ntokens"]
    assert log["mixer_reinforce_tokens"] == int((after & (y != pad) & ~capped).sum()) > 0
    assert log["mixer_gain"] == pytest.approx(float(advantage.sum()))


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
])
def test_bad_options_fail_at_start_up(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        build(task, cfg, "mixer", **fields)


def test_epoch_schedule_needs_a_task_that_records_epochs():
    task, cfg = synthetic_task("translation")
    with pytest.raises(ValueError, match="use --task erpo_translation, or schedule by updates"):
        build(task, cfg, "mixer")
    with pytest.raises(ValueError, match="--task TranslationTask does not restore state from checkpoints: use "
                                         "--task erpo_translation, or --mixer-baseline none"):
        build(task, cfg, "mixer", mixer_updates_per_step=100)
    mixer = build(task, cfg, "mixer", mixer_updates_per_step=100, mixer_baseline="none")
    # under fairseq's own task the update number is read off the trainer's per-update seed
    # (--seed 1 + updates): update 250 is in the schedule's third step, 2 x 2 tokens
    torch.manual_seed(1 + 250)
    assert mixer.reinforce_tokens() == 4
    torch.manual_seed(1 + 99)
    assert mixer.reinforce_tokens() == 0
