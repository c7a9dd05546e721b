"""criterions/repeated_sources.py: each source's encoder output repeated for several targets (RAML's
samples, risk's candidates) with fairseq's values and a backward without index_add_."""
from __future__ import annotations

import pytest
import torch

from erpo_helpers import first_batch, no_dropout_model, synthetic_task
from fairseq_erpo.criterions.repeated_sources import _tensors, repeat_encoder_out
from test_criterions import TRANSFORMER


def tensors(value) -> list:
    """Every tensor in an encoder output (tuples, lists, dicts), in order."""
    return list(_tensors(value))


def graph_ops(outputs) -> set:
    """The names of every autograd node behind ``outputs``."""
    seen, stack = set(), [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


def encoder_gradients(model, encoder_out) -> list:
    """Gradients of the encoder's parameters under a fixed random weighting of every float output."""
    model.zero_grad()
    weights = torch.Generator().manual_seed(3)
    loss = sum((t * torch.rand(t.shape, generator=weights, dtype=t.dtype)).sum()
               for t in tensors(encoder_out) if t.is_floating_point() and t.requires_grad)
    loss.backward()
    return [p.grad.clone() for p in model.encoder.parameters() if p.grad is not None]


@pytest.mark.parametrize("overrides", [{}, TRANSFORMER], ids=["lstm", "transformer"])
def test_repeated_encoder_output_is_fairseqs_with_a_fixed_order_backward(overrides):
    task, cfg = synthetic_task("translation", **overrides)
    torch.manual_seed(0)
    model = no_dropout_model(task, cfg)
    sample = first_batch(task, max_sentences=6)
    sources, copies = sample["target"].size(0), 3
    encode = lambda: model.encoder(sample["net_input"]["src_tokens"], src_lengths=sample["net_input"]["src_lengths"])  # noqa: E731
    order = torch.arange(sources).repeat_interleave(copies)
    theirs = model.encoder.reorder_encoder_out(encode(), order)
    ours = repeat_encoder_out(model, encode(), sources, copies)
    # the same structure and values; the states ([T, B, C] in both models) grown from 6 to 18 rows
    assert type(ours) is type(theirs) and len(tensors(ours)) == len(tensors(theirs)) >= 3
    assert all(torch.equal(a, b) for a, b in zip(tensors(ours), tensors(theirs)))
    assert tensors(ours)[0].dim() == 3 and tensors(ours)[0].size(1) == 18
    # fairseq's reorder backpropagates through index_select (an index_add_, atomic on CUDA); ours
    # through expand (a sum over the copies)
    assert "IndexSelectBackward0" in graph_ops(tensors(theirs))
    assert "IndexSelectBackward0" not in graph_ops(tensors(ours)) and "ExpandBackward0" in graph_ops(tensors(ours))
    # the same gradients, up to float summation order
    for a, b in zip(encoder_gradients(model, ours), encoder_gradients(model, theirs)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    # one copy: the output itself
    out = encode()
    assert repeat_encoder_out(model, out, sources, 1) is out


def test_a_reorder_it_cannot_mirror_falls_back_to_fairseqs():
    """An encoder whose reorder is not a plain repeat (here: it also scales) keeps fairseq's path."""
    class ScalingEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.arange(1.0, 7.0).view(3, 2))

        def reorder_encoder_out(self, out, new_order):
            return {"out": [out["out"][0].index_select(0, new_order) * 2.0], "lengths": out["lengths"]}

    model = torch.nn.Module()
    model.encoder = ScalingEncoder()
    out = {"out": [model.encoder.weight * 1.0], "lengths": None}
    repeated = repeat_encoder_out(model, out, 3, 2)
    assert torch.equal(repeated["out"][0], torch.tensor([[2.0, 4.0], [2.0, 4.0], [6.0, 8.0], [6.0, 8.0],
                                                         [10.0, 12.0], [10.0, 12.0]]))
    repeated["out"][0].sum().backward()
    assert torch.equal(model.encoder.weight.grad, torch.full((3, 2), 4.0))  # 2 copies x the factor 2
