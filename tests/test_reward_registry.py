"""--reward NAME: built-in names, user registration, start-up errors that name the option."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from conftest import DATA_BIN
from fairseq.data import Dictionary
from fairseq_erpo.rewards import (REWARD_REGISTRY, BleuReward, Reward, RougeReward, UnigramNoiseReward,
                                  build_reward, register_reward)
from fairseq_erpo.rewards.noise import unigram_from_dictionary


@pytest.fixture(scope="module")
def tgt_dict():
    return Dictionary.load(str(DATA_BIN / "dict.en.txt"))


def test_builtin_names(tgt_dict):
    assert {"bleu", "rouge", "delta", "unigram_noise"} <= set(REWARD_REGISTRY)
    options = SimpleNamespace(bleu_smooth="exp", reward_scale=2.0, noise_prob=0.3)
    bleu = build_reward("bleu", tgt_dict, options)
    assert isinstance(bleu, BleuReward) and bleu.smooth == "exp" and bleu.scale == 2.0
    assert bleu.special.eos == tgt_dict.eos() and bleu.special.unk == tgt_dict.unk()
    assert isinstance(build_reward("rouge", tgt_dict), RougeReward)
    noise = build_reward("unigram_noise", tgt_dict, options)
    assert isinstance(noise, UnigramNoiseReward) and noise.gamma == 0.3


def test_unigram_comes_from_training_counts(tgt_dict):
    u = unigram_from_dictionary(tgt_dict)
    assert u[: tgt_dict.nspecial].eq(0).all() and u.sum().item() == pytest.approx(1.0)
    the = tgt_dict.index("the")
    words = [i for i in range(tgt_dict.nspecial, len(tgt_dict))]
    total = sum(tgt_dict.count[i] for i in words)
    assert u[the].item() == pytest.approx(tgt_dict.count[the] / total)


def test_unknown_reward_lists_the_choices(tgt_dict):
    with pytest.raises(ValueError, match=r"--reward 'bleuu' is unknown; choose from: bleu, delta, rouge"):
        build_reward("bleuu", tgt_dict)


def test_reward_needs_a_dictionary():
    with pytest.raises(ValueError, match="--reward bleu: needs the task's target dictionary"):
        build_reward("bleu", None)


@pytest.mark.parametrize("name, options, message", [
    ("bleu", {"reward_scale": -1.0}, "--reward-scale must be > 0"),
    ("rouge", {"reward_scale": 0.0}, "--reward-scale must be > 0"),
    ("bleu", {"bleu_smooth": "nope"}, "--bleu-smooth 'nope'"),
    ("unigram_noise", {"noise_prob": 1.5}, r"--noise-prob must be in \(0, 1\)"),
])
def test_bad_options_name_the_option(tgt_dict, name, options, message):
    with pytest.raises(ValueError, match=message):
        build_reward(name, tgt_dict, SimpleNamespace(**options))


def test_user_registered_reward(tgt_dict):
    @register_reward("test_length_match")
    class LengthMatch(Reward):
        @classmethod
        def build(cls, dictionary, options):
            return cls(None)

        def score(self, hyps, refs):
            return (hyps != 1).sum(1).double() - (refs != 1).sum(1).double()

        def start(self, refs):
            raise NotImplementedError

    try:
        reward = build_reward("test_length_match", tgt_dict)
        assert reward.score(torch.tensor([[5, 6, 1]]), torch.tensor([[5, 1, 1]])).item() == 1.0
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test_length_match")(LengthMatch)
    finally:
        REWARD_REGISTRY.pop("test_length_match")


def test_registration_checks_the_class():
    with pytest.raises(ValueError, match="must subclass"):
        register_reward("test_not_a_reward")(object)
