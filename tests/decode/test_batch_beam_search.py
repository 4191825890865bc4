"""Batched decoding (salign.decode) gives ESPnet's ``Speech2Text`` hypotheses on a really trained tiny model.

One MT pre-training + S-Align ST training run (with a target-side CTC, for joint CTC scoring) through the real
``salign.bin.st_train``; then every comparison decodes the same utterances one at a time with ESPnet and as
batches with ``salign.decode``: identical token sequences and n-best order, scores within 1e-4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch

from tests.conftest import REPO, run_tool, train_args

pytestmark = pytest.mark.slow
MT_CONFIG = REPO / "conf" / "tuning" / "train_mt_test.yaml"
TOL = 1e-4


@pytest.fixture(scope="module")
def model_dir(tiny_data, tmp_path_factory) -> Path:
    """MT pre-training on text, then S-Align ST (+ st_ctc) initialised from it."""
    work = tmp_path_factory.mktemp("decode")
    run_tool("salign.bin.st_train", train_args(tiny_data, work / "mt", speech=False, config=MT_CONFIG)
             + ["--max_epoch", "15"], work, "log_mt")
    args = train_args(tiny_data, work / "st") + ["--init_from_mt", work / "mt" / "valid.acc.best.pth",
                                                 "--max_epoch", "6", "--model_conf", "st_ctc_weight=0.3"]
    run_tool("salign.bin.st_train", args, work, "log_st")
    return work / "st"


@pytest.fixture(scope="module")
def inputs(tiny_data, model_dir) -> Dict[str, object]:
    """The test utterances as features and as source token ids."""
    import kaldiio

    import salign.tasks.st as t

    t.register_with_espnet()
    from espnet2.bin.st_inference import Speech2Text

    s2t = Speech2Text(st_train_config=str(model_dir / "config.yaml"),
                      st_model_file=str(model_dir / "valid.acc.ave.pth"))
    pre = t.SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False)
    feats = dict(kaldiio.load_scp(str(tiny_data / "feats.scp")))
    keys = sorted(feats)
    src = dict(line.split(maxsplit=1) for line in (tiny_data / "src_text").read_text().splitlines())
    return {"keys": keys, "speech": [torch.from_numpy(feats[k].copy()) for k in keys],
            "src": [torch.as_tensor(pre(k, {"src_text": src[k]})["src_text"]) for k in keys]}


def speech2text(model_dir: Path, **kw):
    from espnet2.bin.st_inference import Speech2Text

    torch.set_num_threads(1)
    return Speech2Text(st_train_config=str(model_dir / "config.yaml"),
                       st_model_file=str(model_dir / "valid.acc.ave.pth"), **kw)


def assert_same(ref: List[List[Tuple[List[int], float]]], got) -> None:
    for r, g in zip(ref, got, strict=True):
        assert [h[0] for h in r] == [h.yseq for h in g]
        for (_, a), h in zip(r, g):
            assert abs(a - h.score) < TOL, (a, h.score)


def espnet_st(s2t, speech) -> List[List[Tuple[List[int], float]]]:
    return [[(h.yseq.tolist(), float(h.score)) for *_, h in s2t(x)] for x in speech]


def espnet_mt(s2t, src, maxlenratio: float = 0.0, minlenratio: float = 0.0):
    out = []
    with torch.no_grad():
        for x in src:
            enc, _ = s2t.st_model.encode_text(x[None], torch.tensor([len(x)]))
            hyps = s2t.beam_search(x=enc[0], maxlenratio=maxlenratio, minlenratio=minlenratio)[: s2t.nbest]
            out.append([(h.yseq.tolist(), float(h.score)) for h in hyps])
    return out


@pytest.mark.parametrize("maxlenratio", [0.0, -8.0])
@pytest.mark.parametrize("beam", [1, 3, 5])
def test_st_matches_speech2text(beam, maxlenratio, model_dir, inputs):
    from salign.decode import BatchedDecoder

    s2t = speech2text(model_dir, beam_size=beam, nbest=beam, maxlenratio=maxlenratio)
    ref = espnet_st(s2t, inputs["speech"])
    got = BatchedDecoder.from_speech2text(s2t).st(inputs["speech"])
    assert_same(ref, got)
    if maxlenratio == 0.0:  # a model that responds to its input, not one output for every utterance
        assert len({tuple(h[0].yseq) for h in got}) > 3, got


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_mt_matches_espnet_beam_search(beam, model_dir, inputs, tiny_data):
    from salign.decode import BatchedDecoder

    s2t = speech2text(model_dir, beam_size=beam, nbest=beam)
    ref = espnet_mt(s2t, inputs["src"])
    got = BatchedDecoder.from_speech2text(s2t).mt(inputs["src"])
    assert_same(ref, got)
    target = dict(line.split(maxsplit=1) for line in (tiny_data / "text").read_text().splitlines())
    exact = sum(" ".join(s2t.converter.ids2tokens(h[0].yseq[1:-1])) == target[k]
                for k, h in zip(inputs["keys"], got))
    assert exact >= len(got) // 2, exact  # a model that really translates


@pytest.mark.parametrize("kw", [
    dict(beam_size=5, ctc_weight=0.3),
    dict(beam_size=4, ctc_weight=0.5, nbest=4),
    dict(beam_size=3, penalty=0.5, maxlenratio=-8.0, nbest=3),
    dict(beam_size=5, penalty=-0.2, normalize_length=True, nbest=5),
], ids=["ctc", "ctc-nbest", "penalty", "normlen"])
@pytest.mark.parametrize("fast", [True, False], ids=["cached", "generic"])
def test_st_options_match_speech2text(kw, fast, model_dir, inputs):
    """CTC joint scoring (ESPnet's CTCPrefixScoreTH, pre-beam), length bonus, normalize_length; both step kinds."""
    from salign.decode import BatchedDecoder

    s2t = speech2text(model_dir, **kw)
    ref = espnet_st(s2t, inputs["speech"])
    dec = BatchedDecoder.from_speech2text(s2t, fast=fast)
    assert_same(ref, dec.st(inputs["speech"][:5]) + dec.st(inputs["speech"][5:]))


def test_mt_min_length_retry_matches(model_dir, inputs):
    """minlen > maxlen: no hypothesis ends, so ESPnet decodes again with minlenratio - 0.1 (until < 0.1)."""
    from salign.decode import BatchedDecoder

    s2t = speech2text(model_dir, beam_size=3, nbest=3, maxlenratio=0.5, minlenratio=1.2)
    ref = espnet_mt(s2t, inputs["src"], 0.5, 1.2)
    got = BatchedDecoder.from_speech2text(s2t).mt(inputs["src"])
    assert_same(ref, got)
    assert all(got)


def test_asr_batched_equals_unbatched(model_dir, inputs):
    from salign.decode import BatchedDecoder

    s2t = speech2text(model_dir, beam_size=1)
    dec = BatchedDecoder.from_speech2text(s2t)
    one = [dec.asr([x])[0] for x in inputs["speech"]]
    many = dec.asr(inputs["speech"])
    assert [ids for ids, _ in one] == [ids for ids, _ in many]
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, many)) < TOL
    assert sum(len(ids) > 0 for ids, _ in many) > 0


def test_cli_batched_writes_the_one_by_one_outputs(model_dir, tiny_data, tmp_path):
    """``st_inference`` (in-process): --batched true (default) and false give the same files."""
    from salign.bin.st_inference import main

    for task in ("st", "mt", "asr"):
        data = f"{tiny_data}/src_text,src_text,text" if task == "mt" else f"{tiny_data}/feats.scp,speech,kaldi_ark"
        base = ["--task", task, "--st_train_config", str(model_dir / "config.yaml"), "--st_model_file",
                str(model_dir / "valid.acc.ave.pth"), "--data_path_and_name_and_type", data, "--beam_size", "3",
                "--nbest", "2", "--ngpu", "0"]
        main(base + ["--output_dir", str(tmp_path / task / "batched"), "--batch_size", "5"])
        main(base + ["--output_dir", str(tmp_path / task / "single"), "--batched", "false"])
        for n in ((1,) if task == "asr" else (1, 2)):
            a, b = tmp_path / task / "batched" / f"{n}best_recog", tmp_path / task / "single" / f"{n}best_recog"
            assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
            for name in ("token", "token_int", "text"):
                assert (a / name).read_text() == (b / name).read_text(), (task, n, name)
            sa, sb = [[ln.split() for ln in (d / "score").read_text().splitlines()] for d in (a, b)]
            assert [k for k, _ in sa] == [k for k, _ in sb]
            assert max(abs(float(x) - float(y)) for (_, x), (_, y) in zip(sa, sb)) < TOL


def test_cli_rejects_batches_on_the_one_by_one_path(model_dir, tiny_data, tmp_path):
    from salign.bin.st_inference import main

    with pytest.raises(SystemExit, match="one utterance at a time"):
        main(["--st_train_config", str(model_dir / "config.yaml"), "--st_model_file",
              str(model_dir / "valid.acc.ave.pth"), "--data_path_and_name_and_type",
              f"{tiny_data}/feats.scp,speech,kaldi_ark", "--output_dir", str(tmp_path), "--batched", "false",
              "--batch_size", "4"])


def test_length_bounds_follow_espnet():
    from salign.decode import length_bounds

    assert length_bounds(10, 0.0, 0.0) == (10, 0)
    assert length_bounds(10, 0.5, 0.3) == (5, 3)
    assert length_bounds(1, 0.3, 0.0) == (1, 0)  # max(1, int(ratio * len))
    assert length_bounds(10, -7.0, -2.0) == (7, 2)


def test_length_batches():
    from salign.decode import length_batches

    lengths = [5, 50, 7, 30, 6, 31]
    assert length_batches(lengths, 2) == [[1, 5], [3, 2], [4, 0]]
    assert length_batches(lengths, 10, batch_frames=70) == [[1], [5, 3], [2, 4, 0]]
    assert sorted(i for b in length_batches(lengths, 4, 40) for i in b) == list(range(6))
