"""Rewards on token ids: sequence scores R(y | y*) and token-level increments dR (paper Eq. 3).

``--reward`` names: see :mod:`fairseq_erpo.rewards.registry`.
"""
from .base import Reward, RewardState
from .bleu import BleuReward, bleu_from_stats, sentence_bleu
from .delta import DeltaReward
from .ngrams import SpecialTokens, TokenDeltas
from .noise import UniformSingleNoiseReward, UnigramNoiseReward, unigram_from_dictionary
from .registry import REWARD_REGISTRY, available_rewards, build_reward, register_reward
from .rouge import RougeReward, rouge_scores, rouge_sum

__all__ = [
    "Reward", "RewardState", "SpecialTokens", "TokenDeltas", "REWARD_REGISTRY", "available_rewards",
    "build_reward", "register_reward", "BleuReward", "RougeReward", "DeltaReward",
    "UnigramNoiseReward", "UniformSingleNoiseReward", "sentence_bleu", "bleu_from_stats", "rouge_scores", "rouge_sum",
    "unigram_from_dictionary",
]
