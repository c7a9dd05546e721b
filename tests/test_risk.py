"""``--criterion risk`` (minimum risk training): the loss and its gradient by hand on a fixed candidate
set, the candidate sets (fairseq's beam search, the shared sampler under the per-update seed, the
reference), start-up errors, and the CLI with the LSTM and a Transformer."""
from __future__ import annotations

import re

import pytest
import torch

import fairseq_erpo  # noqa: F401
from conftest import cli, generate_args, train_args
from erpo_helpers import first_batch, no_dropout_model, synthetic_task
from fairseq_erpo.sampling import prev_output_tokens
from test_criterions import TRANSFORMER, build


PAD, EOS = 1, 2  # fairseq's Dictionary


@pytest.fixture(scope="module")
def task_and_cfg():
    task, cfg = synthetic_task("translation")
    assert (task.target_dictionary.pad(), task.target_dictionary.eos()) == (PAD, EOS)
    return task, cfg


def sequence_log_probs(model, sample: dict, targets: torch.Tensor, per_set: int) -> torch.Tensor:
    """log p(u | x) of each candidate row by plain teacher forcing through model(...): source i's
    rows are per_set consecutive rows."""
    repeat = lambda t: t.repeat_interleave(per_set, dim=0)  # noqa: E731
    net_output = model(repeat(sample["net_input"]["src_tokens"]), repeat(sample["net_input"]["src_lengths"]),
                       prev_output_tokens(targets, EOS, PAD))
    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    tok = lprobs.gather(2, targets.unsqueeze(2)).squeeze(2)
    return tok.masked_fill(targets == PAD, 0.0).sum(1)


def fixed_set(task, sample: dict, per_set: int) -> torch.Tensor:
    """A candidate set of per_set rows per source: the reference with 0..per_set-1 of its first
    words replaced by a fixed word (so the costs differ), EOS-terminated."""
    refs = sample["target"]
    rows = refs.repeat_interleave(per_set, dim=0).clone()
    word = task.target_dictionary.nspecial + 5
    for i in range(rows.size(0)):
        changed = i % per_set
        length = int((rows[i] != PAD).sum()) - 1  # words before EOS
        rows[i, : min(changed, length)] = word
    return rows


@pytest.mark.parametrize("alpha,sharpness,normalize", [(0.5, 1.0, True), (0.2, 3.0, False)])
def test_loss_and_gradient_by_hand_on_a_fixed_candidate_set(task_and_cfg, alpha, sharpness, normalize):
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task)
    k = 4
    risk = build(task, cfg, "risk", risk_candidates=k, risk_nll_weight=alpha, risk_sharpness=sharpness,
                 risk_length_normalize=normalize)
    candidates = fixed_set(task, sample, k)
    risk.candidates = lambda model, sample: candidates  # the set is given: only the loss is under test

    model.zero_grad()
    loss, sample_size, log = risk(model, sample)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert sample_size == 1 and log["sample_size"] == 1 and log["risk_sets"] == sample["target"].size(0)
    assert log["candidate_tokens"] == int((candidates != PAD).sum())  # what the update trains on, besides y*

    # by hand: q = softmax(s * log p(u) / |u|) per set, cost = 1 - BLEU/100 (the reward's own scale)
    model.zero_grad()
    refs, bsz = sample["target"], sample["target"].size(0)
    logp = sequence_log_probs(model, sample, candidates, k)
    lengths = (candidates != PAD).sum(1).to(logp.dtype)
    score = (logp / lengths if normalize else logp).view(bsz, k)
    cost = 1.0 - risk.reward.score(candidates, refs.repeat_interleave(k, dim=0)).view(bsz, k)
    assert float(cost[:, 0].max()) < float(cost[:, 3].min())  # the unchanged reference costs least
    q = torch.softmax(sharpness * score, dim=1)
    expected_risk = (q * cost.to(q.dtype)).sum(1)
    ref_logp = sequence_log_probs(model, sample, refs, 1)
    by_hand = alpha * -ref_logp.sum() / sample["ntokens"] + (1 - alpha) * expected_risk.sum() / bsz
    assert torch.allclose(loss, by_hand, rtol=1e-5, atol=0)
    assert log["risk_sum"] == pytest.approx(float(expected_risk.sum()), rel=1e-5)
    assert log["candidate_reward_sum"] == pytest.approx(float((1 - cost).sum()), rel=1e-12)

    # the gradient in closed form: d risk / d score(u) = s q(u) (cost(u) - E_q[cost]), q held fixed
    centred = (cost.to(q.dtype) - expected_risk.unsqueeze(1)).detach()
    surrogate = alpha * -ref_logp.sum() / sample["ntokens"] + \
        (1 - alpha) * (sharpness * q.detach() * centred * score).sum() / bsz
    surrogate.backward()
    for name, grad in grads.items():
        scale = grad.abs().max().clamp(min=1e-12)
        assert ((grad - model.get_parameter(name).grad).abs() <= 2e-5 * scale).all(), name


def test_candidates_run_the_output_layer_at_their_tokens_only(task_and_cfg, monkeypatch):
    """The candidates' NLL projects only their non-pad tokens onto the vocabulary (the padded
    [K B, L, V] log-probabilities were what outgrew memory): the same loss and gradient as the
    full decoder pass, and the packed path is the one taken for fairseq's LSTM."""
    import fairseq_erpo.criterions.risk as risk_module
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task)
    k = 3
    risk = build(task, cfg, "risk", risk_candidates=k)
    candidates = fixed_set(task, sample, k)
    candidates = torch.cat([candidates, candidates.new_full((candidates.size(0), 4), PAD)], 1)  # wider
    risk.candidates = lambda model, sample: candidates
    packed_rows = []
    packed = risk_module.nll_at_targets

    def recording(model, features, extra, targets, padding_idx):
        packed_rows.append(targets.size(0))
        return packed(model, features, extra, targets, padding_idx)

    def loss_and_grads():
        model.zero_grad()
        loss, _, _ = risk(model, sample)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    monkeypatch.setattr(risk_module, "nll_at_targets", recording)
    loss, grads = loss_and_grads()
    bsz = sample["target"].size(0)
    assert packed_rows == [bsz, bsz * k]  # the references, then the candidates
    monkeypatch.setattr(risk_module, "decoder_features_given_encoder", lambda *args: None)
    full_loss, full_grads = loss_and_grads()  # the decoder's own forward over the padded rows
    assert packed_rows == [bsz, bsz * k]
    assert torch.allclose(loss, full_loss, rtol=1e-6, atol=0)
    for grad, full in zip(grads, full_grads):
        assert torch.allclose(grad, full, rtol=1e-4, atol=1e-7)


def test_nll_weight_1_is_fairseqs_cross_entropy_per_token(task_and_cfg):
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task)
    risk = build(task, cfg, "risk", risk_candidates=2, risk_nll_weight=1.0)
    loss, _, log = risk(model, sample)
    ce_loss, ce_size, _ = build(task, cfg, "cross_entropy")(model, sample)
    assert ce_size == sample["ntokens"] and torch.allclose(loss * ce_size, ce_loss, rtol=1e-6, atol=0)
    assert log["nll_sum"] == pytest.approx(float(ce_loss), rel=1e-6)


def test_validation_scores_the_references_with_cross_entropy(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model).eval()
    sample = first_batch(task, "valid")
    loss, size, log = build(task, cfg, "risk")(model, sample)
    ce_loss, ce_size, _ = build(task, cfg, "cross_entropy")(model, sample)
    assert torch.equal(loss, ce_loss) and size == ce_size and "risk_sets" not in log


def test_beam_candidates_are_fairseqs_k_best_and_the_reference_is_kept_last(task_and_cfg):
    from fairseq.sequence_generator import SequenceGenerator

    task, cfg = task_and_cfg
    torch.manual_seed(5)
    model = task.build_model(cfg.model).train()
    sample = first_batch(task, max_sentences=6)
    risk = build(task, cfg, "risk", risk_candidates=3, risk_keep_reference=True)
    sets = risk.candidates(model, sample)
    assert model.training  # restored after the no-dropout decode
    model.eval()
    hypos = SequenceGenerator([model], task.target_dictionary, beam_size=3, max_len_a=1.5,
                              max_len_b=5).generate([model], sample)
    refs = sample["target"]
    assert sets.size(0) == refs.size(0) * 4
    for i, per_source in enumerate(hypos):
        for j, hypo in enumerate(per_source[:3]):
            row = sets[4 * i + j]
            assert torch.equal(row[row != PAD], hypo["tokens"]), (i, j)
        ref_row = sets[4 * i + 3]
        assert torch.equal(ref_row[ref_row != PAD], refs[i][refs[i] != PAD])
    assert torch.equal(risk.candidates(model, sample), sets)  # beam search draws nothing


def test_sampled_candidates_follow_the_per_update_seed(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    sample = first_batch(task, max_sentences=8)
    risk = build(task, cfg, "risk", risk_candidates=5, risk_generation="sample")
    drawn = {}
    for seed in (3, 4, 3):  # fairseq reseeds torch with (seed + update number) before every update
        torch.manual_seed(seed)
        drawn.setdefault(seed, []).append(risk.candidates(model, sample))
    assert torch.equal(*drawn[3]) and not torch.equal(drawn[3][0][:, :5], drawn[4][0][:, :5])
    sets = drawn[3][0]
    assert sets.size(0) == 8 * 5 and bool((sets == EOS).any(1).all())  # every candidate ends with EOS
    # the five draws of a source differ from each other (an untrained model spreads its mass)
    assert len({tuple(row.tolist()) for row in sets[:5]}) > 1


def test_min_max_cost_normalisation(task_and_cfg):
    task, cfg = task_and_cfg
    sample = first_batch(task)
    risk = build(task, cfg, "risk", risk_candidates=4, risk_normalize_costs=True)
    candidates = fixed_set(task, sample, 4)
    cost, reward = risk.costs(candidates, sample["target"])
    raw = 1.0 - reward
    low, high = raw.min(1, keepdim=True).values, raw.max(1, keepdim=True).values
    assert torch.allclose(cost, (raw - low) / (1e-6 + high - low), rtol=0, atol=1e-12)
    assert float(cost.min()) == 0.0 and float(cost.max()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("fields,message", [
    ({"risk_candidates": 0}, "--risk-candidates must be >= 1"),
    ({"risk_candidates": 1}, "a set of one candidate has q = 1"),
    ({"risk_nll_weight": 1.5}, r"--risk-nll-weight must be in \[0, 1\]"),
    ({"risk_sharpness": 0.0}, "--risk-sharpness must be a finite number > 0"),
    ({"risk_max_len_a": 0.0, "risk_max_len_b": 0}, "need a >= 0, b >= 0 and a positive maximum length"),
    ({"reward": "delta"}, "log-domain reward"),
    ({"reward": "meteor"}, "meteor"),
])
def test_bad_options_fail_at_start_up(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message):
        build(task, cfg, "risk", **fields)
    if fields == {"risk_candidates": 1}:  # one candidate and the reference is a set of two
        build(task, cfg, "risk", risk_keep_reference=True, **fields)


def test_beam_risk_trains_a_transformer_and_decodes(tmp_path):
    """Beam candidates with fairseq's Transformer (the LSTM fine-tuned from an MLE model through
    train.sh --init: tests/test_recipes.py); the risk is logged and the checkpoint decodes."""
    args = train_args(tmp_path, "--task", "erpo_translation", "--no-anneal", "--criterion", "risk",
                      "--risk-candidates", "4", *[a for k, v in TRANSFORMER.items() for a in (k, v)], updates=10)
    log = cli("fairseq-train", *args).stdout
    assert "num_updates 10" in log
    risks = [float(v) for v in re.findall(r"\| risk ([\d.]+)", log)]
    assert risks and all(0.0 < r < 1.0 for r in risks)
    assert re.search(r"candidate_reward [\d.]+", log) and re.search(r"nll_loss [\d.]+", log)
    proc = cli("fairseq-generate", *generate_args(tmp_path / "checkpoint_last.pt"))
    assert len([line for line in proc.stdout.splitlines() if line.startswith("H-")]) == 500


def test_defaults_are_edunov_et_al_and_sit_beside_figure_1():
    from fairseq_erpo.algorithms import MINIMUM_RISK
    from fairseq_erpo.criterions.risk import RiskConfig

    cfg = RiskConfig()
    assert (MINIMUM_RISK.alpha, MINIMUM_RISK.beta) == (1.0, 0.0)  # the policy-gradient corner
    assert (cfg.reward, cfg.risk_candidates, cfg.risk_generation) == ("bleu", 16, "beam")
    assert (cfg.risk_nll_weight, cfg.risk_max_len_a, cfg.risk_max_len_b, cfg.risk_keep_reference) == (0.5, 1.5, 5, False)
