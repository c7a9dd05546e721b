"""The M-step's negative log-likelihood with the output layer run at the target tokens only.

fairseq's ``cross_entropy`` projects every position of the padded ``[B, L]`` batch onto the
vocabulary. On references that padding is small (batches are length-sorted); on samples it is not:
one sample that runs on to the length cap widens the whole batch, and on IWSLT14 batches SPG's and
the interpolation's samples were 20-40% wider than their references (e.g. 29 columns for 21) while
holding 5-7% more tokens. The projection, log-softmax and their backward dominate the update (V =
23K against a hidden size of 256), so the M-step paid for the padding. Here the decoder runs as
usual and only its features at the target tokens go through the output layer: the same loss and
gradients (fairseq's nll over non-pad tokens), up to float summation order, and the same dropout
masks (the same modules run in the same order).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..sampling import linear_output_projection, logits_are_log_probs


def _packable_kind(model) -> Optional[str]:
    """"transformer" or "lstm" where the output layer can be split off the model's own forward
    (fairseq's LSTM and Transformer encoder-decoders with a linear output layer), else None."""
    # (not LinearOutputLayer.of, which copies the weight: this runs at every update)
    if linear_output_projection(model) is None or not logits_are_log_probs(model):
        return None
    from fairseq.models import FairseqEncoderDecoderModel
    from fairseq.models.lstm import LSTMDecoder, LSTMModel
    model_class, decoder_class = type(model), type(model.decoder)
    try:
        from fairseq.models.transformer import TransformerDecoderBase, TransformerModelBase
        if model_class.forward is TransformerModelBase.forward and \
                decoder_class.forward is TransformerDecoderBase.forward:
            return "transformer"
    except ImportError:
        pass
    # LSTMModel.forward is the base class's encoder-then-decoder, with an incremental state
    if model_class.forward in (FairseqEncoderDecoderModel.forward, LSTMModel.forward) and \
            model_class.extract_features is FairseqEncoderDecoderModel.extract_features and \
            decoder_class.forward is LSTMDecoder.forward:
        return "lstm"
    return None


def decoder_features(model, net_input: dict) -> Optional[Tuple[Tensor, Any]]:
    """(features ``[B, L, C]``, extra) from the model's own forward without its output layer, for
    fairseq's LSTM and Transformer encoder-decoders; None for any other model."""
    kind = _packable_kind(model)
    if kind == "transformer":
        return model(**net_input, features_only=True)
    return model.extract_features(**net_input) if kind == "lstm" else None


def decoder_features_given_encoder(model, prev_output_tokens: Tensor, encoder_out: Any) -> Optional[Tuple[Tensor, Any]]:
    """:func:`decoder_features` for a decoder pass over an encoder output already computed (risk's
    candidates decode against the references' encoder pass, repeated); None where it does not apply."""
    # both decoders' forward is extract_features then output_layer (checked by _packable_kind)
    if _packable_kind(model) is None:
        return None
    return model.decoder.extract_features(prev_output_tokens, encoder_out=encoder_out)


def nll_at_targets(model, features: Tensor, extra: Any, target: Tensor, padding_idx: int) -> Tensor:
    """-log p_theta(y_t | y_<t, x) per target token from the decoder's ``features``, ``[B, L]`` with
    0 at padding, the output layer run at the non-pad target tokens only."""
    at = target != padding_idx
    logits = model.decoder.output_layer(features[at])
    lprobs = model.get_normalized_probs((logits, extra), log_probs=True)
    nll = F.nll_loss(lprobs, target[at], reduction="none")
    return torch.zeros(target.shape, dtype=nll.dtype, device=nll.device).masked_scatter(at, nll)


def target_nll(model, sample: dict, padding_idx: int) -> Optional[Tensor]:
    """-log p_theta(y_t | y_<t, x) per target token, ``[B, L]`` with 0 at padding, computed with the
    output layer at the target tokens only; None where :func:`decoder_features` does not apply."""
    out = decoder_features(model, sample["net_input"])
    if out is None:
        return None
    return nll_at_targets(model, *out, sample["target"], padding_idx)
