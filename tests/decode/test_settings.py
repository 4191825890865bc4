"""Decoding settings from ``st_inference`` options (salign.decode.settings)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def parse():
    from salign.bin.st_inference import parse

    return parse


def test_from_args_takes_espnet_options_and_defaults(parse):
    from salign.decode import DecodeSettings

    s = DecodeSettings.from_args(parse(["--beam_size", "4", "--ctc_weight", "0.3", "--penalty", "-0.5", "--nbest",
                                        "2", "--maxlenratio", "0.5", "--minlenratio", "0.1", "--ngpu", "1"]))
    assert (s.beam_size, s.ctc_weight, s.penalty, s.nbest, s.maxlenratio, s.minlenratio, s.device) == \
        (4, 0.3, -0.5, 2, 0.5, 0.1, "cuda")
    d = DecodeSettings.from_args(parse([]))
    assert (d.beam_size, d.ctc_weight, d.nbest, d.device, d.dtype) == (20, 0.0, 1, "cpu", "float32")
    # as ESPnet's Speech2Text, whose attention beam search is built without it
    assert not DecodeSettings.from_args(parse(["--normalize_length", "true"])).normalize_length


def test_batched_unsupported(parse):
    from salign.decode import DecodeSettings

    model = SimpleNamespace(use_multidecoder=False, st_use_transducer_decoder=False, decoder=object())
    assert DecodeSettings().batched_unsupported(model) is None
    assert "language-model" in DecodeSettings(ngram_file="x.arpa").batched_unsupported(model)
    multi = SimpleNamespace(**{**vars(model), "use_multidecoder": True})
    assert "attention" in DecodeSettings().batched_unsupported(multi)
