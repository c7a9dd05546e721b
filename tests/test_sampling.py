"""The shared token sampler: Eq. 4 probabilities, the z-mixture, the ground-truth branch, limits."""
from __future__ import annotations

import math

import pytest
import torch

from erpo_helpers import TOY_SPECIAL, ToyDictionary, ToyModel, toy_sample
from fairseq_erpo.algorithms import ErpoPoint, interpolation_branches
from fairseq_erpo.rewards import build_reward
from fairseq_erpo.sampling import SequenceSampler, sample_from_deltas

V = 12
DICT = ToyDictionary(V)


def refs_batch(rows, width=None):
    width = width or max(len(r) for r in rows) + 1
    out = torch.full((len(rows), width), TOY_SPECIAL.pad)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
        out[i, len(r)] = TOY_SPECIAL.eos
    return out


def make_sampler(branches, reward_names=(), **kw):
    rewards = {n: build_reward(n, DICT, None) for n in reward_names}
    return SequenceSampler(branches, rewards, TOY_SPECIAL, bos=0, vocab_size=V, **kw)


class RecordingSampler(SequenceSampler):
    """Keeps, per step, the distribution each branch's rows were drawn from (the dense path; the
    compact reward-only draw is checked against it in test_compact_draws_follow_the_dense_softmax)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, compact=False, **kw)
        self.records = []

    def draw_tokens(self, logits, branches, gen):
        masked = logits.double()  # (the draw overwrites logits with unnormalised probabilities)
        masked[:, [TOY_SPECIAL.pad, 0]] = -math.inf  # pad and bos are never drawn
        probs = torch.softmax(masked, dim=1)
        tokens = super().draw_tokens(logits, branches, gen)
        self.records.append((branches, probs, tokens.clone()))
        return tokens


@pytest.mark.parametrize("reward, alpha, beta", [("bleu", 1.0, 0.0), ("bleu", 0.5, 2.0), ("bleu", 0.0, 1.0),
                                                 ("rouge", 2.0, 0.5)])
def test_step_probabilities_are_the_eq4_softmax(reward, alpha, beta):
    torch.manual_seed(0)
    refs = refs_batch([[4, 5, 6, 5], [7, 7, 8], [9, 10, 11, 4, 5], [3, 4]])
    model = ToyModel(V, seed=1)
    branch = ErpoPoint(reward, alpha, beta).branch()
    sampler = RecordingSampler([branch], {reward: build_reward(reward, DICT, None)}, TOY_SPECIAL, bos=0,
                               vocab_size=V, max_len_a=1.0, max_len_b=2)
    scorer = build_reward(reward, DICT, None)
    out = sampler.sample(model, toy_sample(refs), [1.0])
    y = out.sample["target"]
    assert len(sampler.records) >= 4
    for t, (_, probs, tokens) in enumerate(sampler.records):
        rows = torch.arange(refs.size(0))
        rows = rows[(y[:, :t] != TOY_SPECIAL.eos).all(1) & (y[:, :t] != TOY_SPECIAL.pad).all(1)] if t else rows
        free = t < sampler.max_lengths(refs)[rows]  # at the cap EOS is forced, whatever was drawn
        assert torch.equal(tokens[free], y[rows[free], t])
        prefix = y[rows, :t]
        prev = torch.cat([torch.full((rows.numel(), 1), TOY_SPECIAL.eos), prefix], 1)[:, -1]
        logp = model.log_probs(prev, rows % 64).detach().double()
        # dR by brute force: R(prefix + v) - R(prefix) for every v (item 4 of the rewards issue)
        base = scorer.score(prefix if t else torch.full((rows.numel(), 1), TOY_SPECIAL.pad), refs[rows])
        dr = torch.stack([scorer.score(torch.cat([prefix, torch.full((rows.numel(), 1), v)], 1), refs[rows])
                          - base for v in range(V)], 1)
        dr[:, TOY_SPECIAL.eos] = 0.0  # appending EOS leaves the scored sequence unchanged
        logits = alpha * logp + dr if alpha > 0 else dr
        logits = logits / (alpha + beta)
        logits[:, [0, 1]] = -math.inf
        expected = torch.softmax(logits, dim=1)
        assert torch.allclose(probs, expected, atol=1e-5, rtol=0), (t, (probs - expected).abs().max())


def test_unigram_noise_steps_are_the_noising_distribution():
    refs = refs_batch([[4, 5, 6], [7, 8, 9]])
    reward = build_reward("unigram_noise", DICT, type("O", (), {"noise_prob": 0.3})())
    sampler = RecordingSampler([ErpoPoint("unigram_noise", 0, 1).branch()], {"unigram_noise": reward},
                               TOY_SPECIAL, bos=0, vocab_size=V)
    out = sampler.sample(ToyModel(V), toy_sample(refs), [1.0])
    u = torch.tensor(DICT.count, dtype=torch.float64) / sum(DICT.count)
    assert len(sampler.records) == 4
    for t, (_, probs, _) in enumerate(sampler.records[:3]):
        expected = 0.3 * u.expand(2, V).clone()
        expected[torch.arange(2), refs[:, t]] += 0.7
        assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.equal(out.sample["target"][:, 3], torch.full((2,), TOY_SPECIAL.eos))  # lengths kept


def test_delta_reward_reproduces_the_reference_without_the_decoder():
    refs = refs_batch([[4, 5, 6, 5], [7], [3, 9, 9]])
    model = ToyModel(V)
    sampler = make_sampler([ErpoPoint("delta", 0.0, 1.0).branch()], ["delta"])
    out = sampler.sample(model, toy_sample(refs), [1.0])
    assert torch.equal(out.sample["target"], refs)
    assert model.decoder_calls == 0  # alpha = 0 everywhere: the model is never run
    # with alpha > 0 the decoder runs, but -inf increments still force y*
    sampler = make_sampler([ErpoPoint("delta", 1.0, 0.0).branch()], ["delta"])
    assert torch.equal(sampler.sample(model, toy_sample(refs), [1.0]).sample["target"], refs)
    assert model.decoder_calls > 0


def test_ground_truth_branch_reproduces_the_reference_and_prev_tokens_match_fairseq():
    refs = refs_batch([[4, 5, 6, 5], [7], [3, 9, 9]])
    sampler = make_sampler(interpolation_branches("bleu", 1.0), ["bleu"])
    out = sampler.sample(ToyModel(V), toy_sample(refs), [0.0, 0.0, 1.0])
    assert torch.equal(out.sample["target"], refs)
    expected_prev = torch.tensor([[2, 4, 5, 6, 5], [2, 7, 1, 1, 1], [2, 3, 9, 9, 1]])
    assert torch.equal(out.sample["net_input"]["prev_output_tokens"], expected_prev)
    assert out.sample["ntokens"] == 5 + 2 + 4
    assert torch.equal(out.branch[refs != 1], torch.full(((refs != 1).sum().item(),), 2))


def chi_square(counts, probs):
    n = counts.sum()
    expected = n * probs
    keep = expected > 0
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())


def test_branch_frequencies_follow_the_lambdas():
    torch.manual_seed(3)
    refs = refs_batch([[4 + (i % 8)] * 6 for i in range(400)])
    lambdas = [0.2, 0.3, 0.5]
    sampler = make_sampler(interpolation_branches("bleu", 1.0), ["bleu"], max_len_a=1.0, max_len_b=0)
    out = sampler.sample(ToyModel(V, eos_bias=-30.0), toy_sample(refs), lambdas)
    counts = torch.bincount(out.branch[out.branch >= 0], minlength=3).double()
    # z is drawn independently of the state, so every drawn token counts (rows may stop early: the
    # reward branch can draw EOS, whose dR is 0)
    assert counts.sum() > 1500
    # chi-square, 2 degrees of freedom: 13.8 is the 0.999 quantile
    assert chi_square(counts, torch.tensor(lambdas, dtype=torch.float64)) < 13.8


def test_step_granularity_shares_one_branch_per_step():
    torch.manual_seed(4)
    refs = refs_batch([[4, 5, 6, 7, 8, 9]] * 50)
    sampler = make_sampler(interpolation_branches("bleu", 1.0), ["bleu"], granularity="step",
                           max_len_a=1.0, max_len_b=0)
    out = sampler.sample(ToyModel(V, eos_bias=-30.0), toy_sample(refs), [0.4, 0.3, 0.3])
    shared = []
    for t in range(out.branch.size(1)):
        drawn = set(out.branch[:, t].tolist()) - {-1}
        assert len(drawn) <= 1
        shared += list(drawn)
    assert len(set(shared)) > 1  # different steps do draw different branches


def test_samples_end_with_eos_within_the_length_cap():
    torch.manual_seed(5)
    refs = refs_batch([[4, 5, 6], [7, 8, 9, 10, 11, 4, 5], [6]])
    sampler = make_sampler(interpolation_branches("bleu", 1.0), ["bleu"], max_len_a=1.5, max_len_b=1)
    out = sampler.sample(ToyModel(V, eos_bias=-50.0), toy_sample(refs), [1.0, 0.0, 0.0])
    y = out.sample["target"]
    lengths = (y != TOY_SPECIAL.pad).sum(1) - 1
    assert lengths.tolist() == [5, 11, 2]  # floor(1.5 T* + 1): the model never stops by itself here
    assert (y[torch.arange(3), lengths] == TOY_SPECIAL.eos).all()
    body = torch.arange(y.size(1)) < lengths.unsqueeze(1)
    assert not (y[body] == 0).any() and not (y[body] == TOY_SPECIAL.pad).any()  # bos/pad never drawn


@pytest.mark.parametrize("reward", ["bleu", "rouge", "delta", "unigram_noise", "uniform_single_noise"])
def test_no_nan_and_no_all_masked_row(reward):
    """Edge references (empty, all <unk>, length 1) under every reward: valid finite sampling."""
    torch.manual_seed(6)
    refs = refs_batch([[], [3, 3, 3], [4], [5, 5, 5, 5, 5, 5]])
    for alpha, beta in [(0.0, 1.0), (1.0, 0.0), (0.3, 0.7)]:
        sampler = make_sampler([ErpoPoint(reward, alpha, beta).branch()], [reward])
        out = sampler.sample(ToyModel(V), toy_sample(refs), [1.0])
        y = out.sample["target"]
        assert ((y == TOY_SPECIAL.eos).sum(1) == 1).all()


def test_uniform_single_noise_changes_exactly_one_word():
    torch.manual_seed(7)
    rows = [[4, 5, 6, 7], [8, 9], [10, 11, 4, 5, 6, 7, 8]] * 30
    refs = refs_batch(rows)
    sampler = make_sampler([ErpoPoint("uniform_single_noise", 0.0, 1.0).branch()], ["uniform_single_noise"])
    y = sampler.sample(ToyModel(V), toy_sample(refs), [1.0]).sample["target"]
    assert y.shape == refs.shape
    assert ((y != refs).sum(1) == 1).all()
    changed = y[y != refs]
    assert (changed >= 4).all()  # never a special token
    # the reward is the exact log-probability of the process: 1/T for the position, 1/7 for the
    # token (8 non-special tokens in this dictionary, minus the reference's own)
    score = build_reward("uniform_single_noise", DICT, None).score(y, refs)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.float64)
    assert torch.allclose(score, -torch.log(lengths) - math.log(7), atol=1e-12)
    assert torch.isinf(build_reward("uniform_single_noise", DICT, None).score(refs, refs)).all()
    positions = (y != refs).float().argmax(1)
    # the replaced position is uniform: every position of every row is hit
    for k, row in enumerate(rows[:3]):
        hit = set(positions[k::3].tolist())
        assert hit == set(range(len(row)))


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="--z-granularity"):
        make_sampler(interpolation_branches("bleu", 1.0), ["bleu"], granularity="sentence")
    with pytest.raises(ValueError, match="--max-len-a"):
        make_sampler(interpolation_branches("bleu", 1.0), ["bleu"], max_len_a=-1)


@pytest.mark.parametrize("reward, weight", [("bleu", 1.0), ("bleu", 40.0), ("rouge", 3.0), ("delta", 1.0),
                                            ("unigram_noise", 1.0), ("uniform_single_noise", 1.0)])
def test_compact_draws_follow_the_dense_softmax(reward, weight):
    """The reward-only draw never builds [B, V]; its frequencies match softmax(weight * dR)."""
    V_big = 40
    dictionary = ToyDictionary(V_big)
    scorer = build_reward(reward, dictionary, None)
    base_refs = refs_batch([[4, 5, 6, 5, 30], [7, 7, 8], [3, 9]])
    copies = 4000
    refs = base_refs.repeat_interleave(copies, dim=0)
    state = scorer.start(refs)
    prefix = torch.tensor([4, 5]).repeat(refs.size(0), 1) if reward not in ("delta",) else refs[:, :2]
    for t in range(2):
        state.advance(prefix[:, t])
    deltas = state.deltas()
    rows = torch.arange(refs.size(0))
    gen = torch.Generator().manual_seed(11)
    drawn = sample_from_deltas(deltas, rows, weight, V_big, (TOY_SPECIAL.pad, 0), gen, max_rounds=2)
    dense = weight * deltas.expand(V_big, torch.float64)
    dense[:, [TOY_SPECIAL.pad, 0]] = -math.inf
    probs = torch.softmax(dense, dim=1)
    for g in range(base_refs.size(0)):
        block = slice(g * copies, (g + 1) * copies)
        assert torch.allclose(probs[block], probs[block][:1].expand(copies, -1))
        counts = torch.bincount(drawn[block], minlength=V_big).double()
        p = probs[g * copies]
        assert (counts[p == 0] == 0).all()  # impossible tokens (pad, bos, -inf increments) never drawn
        df = int((p > 0).sum()) - 1
        if df > 0:  # chi-square against its 0.9999 quantile (Wilson-Hilferty approximation)
            z = 3.719
            limit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
            assert chi_square(counts, p) < limit, (reward, g)


@pytest.mark.parametrize("name, fields", [
    ("erpo", {"reward": "bleu", "alpha": 0.5, "beta": 0.5}),
    ("spg", {}),
    ("mixer", {"mixer_delta": 1000, "mixer_baseline": "none"}),
])
def test_samples_fit_a_learned_position_table(name, fields):
    """A Transformer with learned positions and --max-target-positions 42 on references of up to 41
    tokens (EOS included): the length cap (T* + 10) would index past the table; the sampler stops
    at the decoder's limit instead, and the M-step on the samples runs."""
    from erpo_helpers import synthetic_task
    from test_criterions import build

    task, cfg = synthetic_task("erpo_translation", "--decoder-learned-pos", "--encoder-learned-pos", **{
        "--arch": "transformer", "--max-target-positions": "42", "--max-source-positions": "42", "--encoder-layers": "1",
        "--decoder-layers": "1", "--encoder-embed-dim": "16", "--decoder-embed-dim": "16",
        "--encoder-ffn-embed-dim": "32", "--decoder-ffn-embed-dim": "32", "--encoder-attention-heads": "2",
        "--decoder-attention-heads": "2"})
    task.load_dataset("train")
    data = task.dataset("train")
    longest = sorted(range(len(data)), key=lambda i: int(data.tgt_sizes[i]))[-16:]
    sample = data.collater([data[i] for i in longest])
    assert int(data.tgt_sizes[longest[-1]]) == 41
    torch.manual_seed(1)
    model = task.build_model(cfg.model).train()
    assert model.max_decoder_positions() == 42
    criterion = build(task, cfg, name, **fields)
    task.epoch = 2  # MIXER: its schedule's second step, every token after the start is sampled
    try:
        drawn = criterion.sampler.sample(model, sample, (1.0,) * len(criterion.sampler.branches),
                                         truth_prefix=torch.zeros(16, dtype=torch.long) if name == "mixer" else None)
        loss, _, _ = criterion(model, sample)
    finally:
        task.epoch = None
    lengths = (drawn.sample["target"] != task.target_dictionary.pad()).sum(1)
    assert int(lengths.max()) == 42  # an untrained model runs on to the limit: 41 tokens + EOS
    assert bool(drawn.capped.any()) and torch.isfinite(loss)
    loss.backward()


def test_two_level_cdf_inversion_is_the_float64_inversion_draw_by_draw():
    """draw_tokens inverts the CDF in blocks (float32 block sums, float64 inside one block): for the
    same uniform it returns the token of the whole-row float64 inversion, and its frequencies are
    the softmax's. Rows span blocks of mass 0, -inf logits, banned tokens, a short tail block and
    probabilities down to ~1e-30."""
    from fairseq_erpo.sampling import CDF_BLOCK, draw_tokens

    vocab, copies = 2 * CDF_BLOCK + 88, 20000
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(4, vocab, generator=gen) * 3
    logits[1, : 2 * CDF_BLOCK] = -math.inf  # all the mass in the tail block
    logits[2, CDF_BLOCK: 2 * CDF_BLOCK] = -math.inf  # a middle block of mass 0
    logits[2, 7] = 12.0  # one dominant token
    logits[3] = torch.linspace(-70.0, 0.0, vocab)  # probabilities from ~1e-30 to ~1e-2
    banned = (1, 0)
    batch = logits.repeat_interleave(copies, dim=0)
    state = torch.Generator().manual_seed(17)
    replay = torch.Generator().manual_seed(17)
    drawn = draw_tokens(batch.clone(), banned, state)

    dense = batch.double()
    dense[:, list(banned)] = -math.inf
    probs = torch.softmax(dense, dim=1)
    cdf = probs.cumsum(1)
    u = torch.rand(batch.size(0), 1, generator=replay, dtype=torch.float64) * cdf[:, -1:]
    expected = torch.searchsorted(cdf, u, right=True).squeeze(1)
    assert torch.equal(drawn, expected)

    for g in range(logits.size(0)):
        block = slice(g * copies, (g + 1) * copies)
        counts = torch.bincount(drawn[block], minlength=vocab).double()
        p = probs[g * copies]
        assert (counts[p == 0] == 0).all()  # banned and -inf tokens are never drawn
        big = p * copies >= 5  # chi-square over the tokens with expected count >= 5, the rest pooled
        cells = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
        cell_p = torch.cat([p[big], p[~big].sum().unsqueeze(0)])
        df = int(big.sum())
        z = 3.719  # the 0.9999 quantile (Wilson-Hilferty approximation)
        limit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
        assert chi_square(cells, cell_p) < limit, g


@pytest.mark.parametrize("flags, overrides", [
    ((), {}),
    (("--share-decoder-input-output-embed",), {}),
    (("--share-decoder-input-output-embed",), {
        "--arch": "transformer", "--encoder-layers": "1", "--decoder-layers": "1", "--encoder-embed-dim": "16",
        "--decoder-embed-dim": "16", "--encoder-ffn-embed-dim": "32", "--decoder-ffn-embed-dim": "32",
        "--encoder-attention-heads": "2", "--decoder-attention-heads": "2"}),
])
def test_linear_output_layer_is_the_decoders_and_bounds_every_logit(flags, overrides):
    """fairseq's LSTM (own or tied output embedding) and Transformer decoders: the plain product is
    their output layer, and ||h|| max||w|| + max b bounds every logit of a row."""
    from erpo_helpers import synthetic_task
    from fairseq_erpo.sampling import LinearOutputLayer

    task, cfg = synthetic_task("translation", *flags, **overrides)
    torch.manual_seed(4)
    model = task.build_model(cfg.model)
    output = LinearOutputLayer.of(model)
    assert output is not None and (output.bias is None) == bool(flags)
    width = output.weight.size(1)
    features = torch.randn(6, width) * torch.tensor([0.1, 1.0, 3.0, 10.0, 30.0, 100.0]).unsqueeze(1)
    with torch.no_grad():
        expected = model.decoder.output_layer(features.unsqueeze(1)).squeeze(1)
    scale = expected.abs().amax(1, keepdim=True)  # float32 products differ in rounding only
    assert ((output.logits(features) - expected).abs() <= 1e-5 * scale).all()
    tokens = torch.randint(0, len(task.target_dictionary), (6, 9))
    assert ((output.logits_of(features, tokens) - expected.gather(1, tokens)).abs() <= 1e-5 * scale).all()
    assert (expected.double().amax(1) <= output.bound(features)).all()


def test_a_decoder_with_its_own_output_layer_gets_no_shortcut():
    from fairseq_erpo.sampling import LinearOutputLayer

    assert LinearOutputLayer.of(ToyModel(V)) is None


def test_dominant_reward_draws_are_the_dense_softmax():
    """Where the reward increments of a row's override tokens put every other token more than 88
    below them (in log-weight, for every possible logit), the draw over the overrides alone has the
    dense softmax's distribution; rows where that cannot be shown are left to the dense draw."""
    from erpo_helpers import synthetic_task
    from fairseq_erpo.rewards import TokenDeltas
    from fairseq_erpo.sampling import LOG_NEGLIGIBLE, LinearOutputLayer, draw_dominant_overrides

    task, cfg = synthetic_task("translation")
    torch.manual_seed(2)
    model = task.build_model(cfg.model)
    output = LinearOutputLayer.of(model)
    vocab, pad, bos = len(task.target_dictionary), task.target_dictionary.pad(), task.target_dictionary.bos()
    gen = torch.Generator().manual_seed(9)
    features = torch.randn(5, output.weight.size(1), generator=gen)
    features[3] *= 400.0  # a bound so loose that no gain below ~10^3 decides the row
    base = torch.tensor([[0.2], [0.0], [-1.0], [0.1], [0.0]], dtype=torch.float64)
    tokens = torch.tensor([[5, 9, 11, 14], [5, 9, -1, -1], [7, 7, pad, 12], [5, 6, 8, -1], [bos, 6, 6, 30]])
    gain = torch.tensor([[300.0, 298.0, 294.0, 20.0],  # three tokens share the mass
                         [60.0, 70.0, 0.0, 0.0],  # 70 < 88: cannot decide
                         [250.0, 250.0, 900.0, 249.0],  # a token listed twice counts once; pad never drawn
                         [300.0, 300.0, 300.0, 0.0],  # decided only if the loose bound allows it
                         [5000.0, 1000.0, 1000.0, 999.0]], dtype=torch.float64)  # bos banned
    weight = 1e4
    deltas = TokenDeltas(base, tokens, base + gain / weight)
    rows = torch.arange(5)
    decided, _ = draw_dominant_overrides(features, deltas, rows, 1.0, weight, output, (pad, bos), gen)

    with torch.no_grad():
        logits = model.decoder.output_layer(features.unsqueeze(1)).squeeze(1).double()
    dense = logits.clone()
    for i in range(5):
        for j in range(4):
            if tokens[i, j] >= 0:
                dense[i, tokens[i, j]] = logits[i, tokens[i, j]] + float(gain[i, j])  # listed twice: one value
    dense[:, [pad, bos]] = -math.inf
    probs = torch.softmax(dense, dim=1)
    listed = torch.zeros(5, vocab, dtype=torch.bool)
    for i in range(5):
        listed[i, tokens[i][tokens[i] >= 0]] = True
    outside = torch.where(listed, torch.zeros_like(probs), probs).amax(1)
    bound_gap = output.bound(features) - dense.masked_fill(~listed, -math.inf).amax(1)
    assert decided.tolist() == [True, False, True, False, True]
    assert (bound_gap[decided] < LOG_NEGLIGIBLE - 1).all()  # as the rule states, recomputed here
    assert (outside[decided] < 2.0 ** -124).all()  # the dense draw gives those tokens probability 0

    copies = 20000
    many = rows.repeat_interleave(copies)
    decided, drawn = draw_dominant_overrides(features[many], deltas, many, 1.0, weight, output, (pad, bos), gen)
    for i in (0, 2, 4):
        block = slice(i * copies, (i + 1) * copies)
        assert decided[block].all()
        before = int(decided[: i * copies].sum())
        counts = torch.bincount(drawn[before: before + copies], minlength=vocab).double()
        p = probs[i]
        assert (counts[p < 1e-12] == 0).all()  # banned and negligible tokens are never drawn
        keep = p * copies >= 5
        df = int(keep.sum()) - 1
        cells = torch.cat([counts[keep], counts[~keep].sum().unsqueeze(0)])
        cell_p = torch.cat([p[keep], p[~keep].sum().unsqueeze(0)])
        if df > 0:
            z = 3.719  # the 0.9999 quantile (Wilson-Hilferty approximation)
            limit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
            assert chi_square(cells, cell_p) < limit, i
        else:
            assert counts[keep].sum() == copies
