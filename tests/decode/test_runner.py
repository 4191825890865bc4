"""One decode's pieces (salign.decode.runner, salign.decode.loader) without a trained model."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest
import torch

from salign.decode.batch_beam_search import Hyp
from salign.decode.runner import PLACEHOLDER, batched_results, check_options, check_target_ctc, windows
from salign.utils.io import InputError


class FakeVocab:
    def target(self, yseq, score):
        return ("t", [], list(yseq)[1:-1], score)

    def source(self, ids, score):
        return ("s", [], ids, score)


class FakeDecoder:
    """Translates an input of length n to the token n (n-best: n, n+1, ...); records its batches."""

    nbest = 2

    def __init__(self):
        self.batches = []

    def st(self, xs):
        self.batches.append([x.size(0) for x in xs])
        return [[Hyp([0, x.size(0) + i, 9], -float(i)) for i in range(self.nbest)] for x in xs]

    mt = st

    def asr(self, xs):
        return [([x.size(0)], -1.0) for x in xs]


def test_batched_results_keep_item_order_and_give_placeholders():
    dec = FakeDecoder()
    items = [("a", torch.zeros(3, 2)), ("b", None), ("c", torch.zeros(7, 2)), ("d", torch.zeros(5, 2))]
    out = list(batched_results(dec, FakeVocab(), items, "st", batch_size=2, batch_frames=0))
    assert [k for k, _ in out] == ["a", "b", "c", "d"]
    assert [r[2] for r in out[0][1]] == [[3], [4]] and out[1][1] == [PLACEHOLDER]
    assert dec.batches == [[7, 5], [3]]  # longest first, two at a time
    mt = dict(batched_results(dec, FakeVocab(), items, "mt", 4, 0))
    assert mt["b"] == [PLACEHOLDER] * 2  # an empty transcript: ESPnet's placeholder for each of the n best
    asr = dict(batched_results(dec, FakeVocab(), items, "asr", 4, 0))
    assert asr["c"] == [("s", [], [7], -1.0)] and asr["b"] == [PLACEHOLDER]


def test_windows():
    assert list(windows(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(windows([], 3)) == []


def options(**kw) -> argparse.Namespace:
    base = dict(batch_size=None, batched=True, ngpu=0, task="st", data_path_and_name_and_type=[("f", "speech", "x")],
                ctc_weight=0.0, ctc_greedy=False)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("kw, msg", [
    (dict(batch_size=0), "--batch_size 0 must be >= 1"),
    (dict(batched=False, batch_size=4), "one utterance at a time"),
    (dict(ngpu=2), "single-GPU"),
    (dict(task="mt"), "--task mt needs one source text"),
])
def test_check_options(kw, msg):
    check_options(options())
    check_options(options(task="mt", data_path_and_name_and_type=[("t", "src_text", "text")]))
    with pytest.raises(InputError, match=msg):
        check_options(options(**kw))


def test_check_target_ctc():
    with_ctc, without = SimpleNamespace(st_ctc=object()), SimpleNamespace(st_ctc=None)
    check_target_ctc(options(ctc_weight=0.3), with_ctc)
    check_target_ctc(options(ctc_weight=0.3, task="asr"), without)  # ASR has no use for it
    with pytest.raises(InputError, match=r"--ctc_weight 0.3 needs .* \(fix: --ctc_weight 0\)"):
        check_target_ctc(options(ctc_weight=0.3), without)
    with pytest.raises(InputError, match=r"--ctc_greedy true needs .* \(fix: --ctc_greedy false\)"):
        check_target_ctc(options(ctc_greedy=True, task="mt"), without)


def test_vocab_drops_sos_eos_and_blanks():
    from espnet2.text.token_id_converter import TokenIDConverter

    from salign.decode.loader import Vocab

    conv = TokenIDConverter(["<blank>", "<unk>", "a", "b", "<sos/eos>"])
    v = Vocab(conv, None, conv, None)
    assert v.target([4, 2, 0, 3, 4], -1.5) == (None, ["a", "b"], [2, 3], -1.5)
    assert v.target(torch.tensor([4, 3, 4]), -1.0)[2] == [3]
    assert v.source([3, 2], -2.0) == (None, ["b", "a"], [3, 2], -2.0)
