"""``--reward NAME``: the reward registry.

Built-in: ``bleu``, ``rouge``, ``delta``, ``unigram_noise``, ``uniform_single_noise``. Register your own from any module
your fairseq ``--user-dir`` imports::

    from fairseq_erpo.rewards import Reward, register_reward

    @register_reward("my_reward")
    class MyReward(Reward):
        @classmethod
        def build(cls, dictionary, options): ...
        def score(self, hyps, refs): ...
        def start(self, refs): ...

``options`` is the criterion's config (any object with attributes); a reward reads the fields it
needs with :func:`option`, so criterions and rewards stay decoupled.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Type, TypeVar

from .base import Reward

REWARD_REGISTRY: Dict[str, Type[Reward]] = {}
R = TypeVar("R", bound=Type[Reward])


def register_reward(name: str) -> Callable[[R], R]:
    def wrap(cls: R) -> R:
        if name in REWARD_REGISTRY:
            raise ValueError(f"reward {name!r} is already registered (by {REWARD_REGISTRY[name].__name__})")
        if not (isinstance(cls, type) and issubclass(cls, Reward)):
            raise ValueError(f"reward {name!r}: {cls!r} must subclass fairseq_erpo.rewards.Reward")
        if not callable(getattr(cls, "build", None)):
            raise ValueError(f"reward {name!r}: {cls.__name__} needs a classmethod build(dictionary, options)")
        REWARD_REGISTRY[name] = cls
        return cls

    return wrap


def available_rewards() -> str:
    return ", ".join(sorted(REWARD_REGISTRY))


def option(options: Any, name: str, default: Any) -> Any:
    """``options.name``, or ``default`` when the config has no such field (or it is None)."""
    value = getattr(options, name, None) if options is not None else None
    return default if value is None else value


def build_reward(name: str, dictionary: Optional[Any] = None, options: Any = None) -> Reward:
    """The reward registered as ``name``, built for the target ``dictionary`` (fairseq Dictionary);
    with ``options.reward_level == "word"``, scored on the words of ``options.reward_bpe`` pieces."""
    if name not in REWARD_REGISTRY:
        raise ValueError(f"--reward {name!r} is unknown; choose from: {available_rewards()} "
                         "(or register one with fairseq_erpo.rewards.register_reward)")
    if dictionary is None:
        raise ValueError(f"--reward {name}: needs the task's target dictionary (its pad/eos/unk ids); "
                         "use a task with a target dictionary, e.g. --task translation")
    reward = REWARD_REGISTRY[name].build(dictionary, options)
    level = option(options, "reward_level", "token")
    if level == "word":  # sequence scores on the words the subword pieces make (rewards/words.py)
        from .words import WordLevelReward
        return WordLevelReward(reward, list(dictionary.symbols), option(options, "reward_bpe", None))
    if level != "token":
        raise ValueError(f"--reward-level {level!r}: choose token or word")
    return reward
