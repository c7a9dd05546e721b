"""The plugin through the real fairseq command line: registration, train -> generate round trip."""
from __future__ import annotations

import argparse
import re

import torch

import fairseq_erpo  # noqa: F401  (registers the plugin in this process too)
from conftest import cli, generate_args
from fairseq.models import ARCH_MODEL_REGISTRY, ARCH_CONFIG_REGISTRY
from fairseq import checkpoint_utils

ARCH = "lstm_erpo_iwslt_de_en"


def test_train_cli_lists_plugin_components():
    # fairseq lists the --arch choices when the one given is unknown
    proc = cli("fairseq-train", "--user-dir", "fairseq_erpo", "--arch", "nope", check=False)
    assert proc.returncode == 2 and f"'{ARCH}'" in proc.stderr
    assert ARCH not in cli("fairseq-train", "--arch", "nope", check=False).stderr  # plugin's own


def test_preset_is_registered_on_fairseqs_lstm():
    assert ARCH_MODEL_REGISTRY[ARCH].__name__ == "LSTMModel"


def test_preset_defaults_and_user_overrides():
    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[ARCH](args)
    assert (args.encoder_embed_dim, args.encoder_hidden_size, args.decoder_embed_dim,
            args.decoder_hidden_size, args.decoder_out_embed_dim) == (256, 256, 256, 256, 256)
    assert (args.encoder_layers, args.decoder_layers) == (1, 1)
    assert args.encoder_bidirectional is True and args.decoder_attention == "1"
    assert (args.encoder_dropout_in, args.encoder_dropout_out) == (0.2, 0.0)
    assert (args.decoder_dropout_in, args.decoder_dropout_out) == (0.2, 0.2)
    # an explicit command-line value wins over the preset, as for fairseq's own presets
    args = argparse.Namespace(encoder_hidden_size=128, dropout=0.3)
    ARCH_CONFIG_REGISTRY[ARCH](args)
    assert args.encoder_hidden_size == 128 and args.decoder_dropout_in == 0.3


def test_train_generate_round_trip(mle_checkpoint):
    assert mle_checkpoint.is_file()
    proc = cli("fairseq-generate", *generate_args(mle_checkpoint))
    assert re.search(r"Generate test with beam=5: BLEU4 = \d+\.\d+", proc.stdout)
    hyps = [line for line in proc.stdout.splitlines() if line.startswith("H-")]
    assert len(hyps) == 500  # every test sentence: no batch dropped by the size-multiple rounding


def test_checkpoint_holds_the_paper_model(mle_checkpoint):
    models, cfg = checkpoint_utils.load_model_ensemble([str(mle_checkpoint)])
    model = models[0]
    assert cfg.model.arch == ARCH
    lstm = model.encoder.lstm
    assert lstm.bidirectional and lstm.hidden_size == 256 and lstm.num_layers == 1
    assert model.encoder.embed_tokens.embedding_dim == 256
    assert model.decoder.hidden_size == 256 and model.decoder.attention is not None
    # 512-dim bidirectional encoder states are projected to the 256-dim decoder state
    assert model.decoder.encoder_hidden_proj.weight.shape == torch.Size([256, 512])
