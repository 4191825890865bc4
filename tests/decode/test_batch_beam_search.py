"""Batched decoding (salign.decode) gives ESPnet's ``Speech2Text`` hypotheses on a really trained tiny model.

One MT pre-training + S-Align ST training run (with a target-side CTC, for joint CTC scoring, and global CMVN as the
recipe's models have) through the real ``salign.bin.st_train``; then every comparison decodes the same utterances one
at a time with ESPnet and as batches with ``salign.decode`` built from the same options: identical token sequences
and n-best order, scores within 1e-4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch

pytestmark = pytest.mark.slow
TOL = 1e-4  # model_dir: the trained tiny model of tests/conftest.py


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


def ours(model_dir: Path, fast: bool = True, **kw):
    """salign's batched decoder for the ``Speech2Text(**kw)`` options, from the parsed ``st_inference`` options and
    its own model load (nothing taken from a ``Speech2Text``)."""
    from salign.bin.st_inference import parse
    from salign.decode import BatchedDecoder, DecodeSettings
    from salign.decode.loader import load_model

    flags = [x for k, v in kw.items() for x in (f"--{k}", str(v))]
    settings = DecodeSettings.from_args(parse(flags))
    model, _ = load_model(str(model_dir / "config.yaml"), str(model_dir / "valid.acc.ave.pth"))
    return BatchedDecoder.from_settings(model, settings, fast=fast)


def assert_same(ref: List[List[Tuple[List[int], float]]], got) -> None:
    for r, g in zip(ref, got, strict=True):
        assert [h[0] for h in r] == [h.yseq for h in g]
        for (_, a), h in zip(r, g):
            assert abs(a - h.score) < TOL, (a, h.score)


def espnet_st(s2t, speech) -> List[List[Tuple[List[int], float]]]:
    """ESPnet's n-best per utterance, each given a copy: its global CMVN normalises its input in place."""
    return [[(h.yseq.tolist(), float(h.score)) for *_, h in s2t(x.clone())] for x in speech]


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
    s2t = speech2text(model_dir, beam_size=beam, nbest=beam, maxlenratio=maxlenratio)
    ref = espnet_st(s2t, inputs["speech"])
    got = ours(model_dir, beam_size=beam, nbest=beam, maxlenratio=maxlenratio).st(inputs["speech"])
    assert_same(ref, got)
    if maxlenratio == 0.0:  # a model that responds to its input, not one output for every utterance
        assert len({tuple(h[0].yseq) for h in got}) > 3, got


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_mt_matches_espnet_beam_search(beam, model_dir, inputs, tiny_data):
    s2t = speech2text(model_dir, beam_size=beam, nbest=beam)
    ref = espnet_mt(s2t, inputs["src"])
    got = ours(model_dir, beam_size=beam, nbest=beam).mt(inputs["src"])
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
    s2t = speech2text(model_dir, **kw)
    ref = espnet_st(s2t, inputs["speech"])
    dec = ours(model_dir, fast=fast, **kw)
    assert_same(ref, dec.st(inputs["speech"][:5]) + dec.st(inputs["speech"][5:]))


@pytest.mark.parametrize("espnet_first", [True, False], ids=["espnet-first", "ours-first"])
def test_interleaved_with_espnet_in_one_process(espnet_first, model_dir, inputs):
    """ESPnet's ``Speech2Text`` and our decoder, built from the same options, take turns twice on the same tensors in
    one process (both orders): every run gives the same hypotheses and scores, and no run changes the inputs.

    (The "shared state" once seen here was the input: ESPnet's global CMVN normalises in place, and ``Speech2Text``
    hands the model a view of the caller's tensor, so a later decode read normalised features again; the ESPnet side
    is given copies, as ``st_inference --batched false`` does.)"""
    kw = dict(beam_size=4, nbest=2, ctc_weight=0.3)
    speech = [x.clone() for x in inputs["speech"]]
    before = [x.clone() for x in speech]
    s2t, dec = speech2text(model_dir, **kw), ours(model_dir, **kw)
    runs = []
    for _ in range(2):
        for who in ("espnet", "ours") if espnet_first else ("ours", "espnet"):
            got = espnet_st(s2t, speech) if who == "espnet" else \
                [[(h.yseq, h.score) for h in hyps] for hyps in dec.st(speech)]
            runs.append((who, got))
            assert all(torch.equal(a, b) for a, b in zip(before, speech)), f"{who} changed its inputs"
    ref = runs[0][1]
    for who, got in runs[1:]:
        assert [[h[0] for h in r] for r in got] == [[h[0] for h in r] for r in ref], who
        assert max(abs(a[1] - b[1]) for r, g in zip(ref, got) for a, b in zip(r, g)) < TOL, who
    assert len({tuple(r[0][0]) for r in ref}) > 3  # a model that responds to its input


def test_mt_min_length_retry_matches(model_dir, inputs):
    """minlen > maxlen: no hypothesis ends, so ESPnet decodes again with minlenratio - 0.1 (until < 0.1)."""
    s2t = speech2text(model_dir, beam_size=3, nbest=3, maxlenratio=0.5, minlenratio=1.2)
    ref = espnet_mt(s2t, inputs["src"], 0.5, 1.2)
    got = ours(model_dir, beam_size=3, nbest=3, maxlenratio=0.5, minlenratio=1.2).mt(inputs["src"])
    assert_same(ref, got)
    assert all(got)


def test_asr_batched_equals_unbatched(model_dir, inputs):
    dec = ours(model_dir, beam_size=1)
    one = [dec.asr([x])[0] for x in inputs["speech"]]
    many = dec.asr(inputs["speech"])
    assert [ids for ids, _ in one] == [ids for ids, _ in many]
    assert max(abs(a - b) for (_, a), (_, b) in zip(one, many)) < TOL
    assert sum(len(ids) > 0 for ids, _ in many) > 0


def cli_args(model_dir: Path, tiny_data: Path, task: str, *extra: str) -> List[str]:
    """``st_inference`` options decoding the tiny data as ``task`` (beam 3, 2-best) with the model of ``model_dir``."""
    data = f"{tiny_data}/src_text,src_text,text" if task == "mt" else f"{tiny_data}/feats.scp,speech,kaldi_ark"
    return ["--task", task, "--st_train_config", str(model_dir / "config.yaml"), "--st_model_file",
            str(model_dir / "valid.acc.ave.pth"), "--data_path_and_name_and_type", data, "--beam_size", "3",
            "--nbest", "2", "--ngpu", "0", *extra]


def read_scores(out: Path) -> Dict[str, float]:
    return {k: float(v) for k, v in (ln.split() for ln in (out / "1best_recog" / "score").read_text().splitlines())}


def assert_same_outputs(a_dir: Path, b_dir: Path, nbest: int) -> None:
    """Two ``st_inference`` output dirs hold the same files, hypotheses and (within TOL) scores."""
    for n in range(1, nbest + 1):
        a, b = a_dir / f"{n}best_recog", b_dir / f"{n}best_recog"
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for name in ("token", "token_int", "text"):
            assert (a / name).read_text() == (b / name).read_text(), (a, name)
        sa, sb = [[ln.split() for ln in (d / "score").read_text().splitlines()] for d in (a, b)]
        assert [k for k, _ in sa] == [k for k, _ in sb]
        assert max(abs(float(x) - float(y)) for (_, x), (_, y) in zip(sa, sb)) < TOL


def test_cli_batched_writes_the_one_by_one_outputs(model_dir, tiny_data, tmp_path):
    """``st_inference`` (in-process): --batched true (default) and false give the same files."""
    from salign.bin.st_inference import main

    for task in ("st", "mt", "asr"):
        base = cli_args(model_dir, tiny_data, task)
        main(base + ["--output_dir", str(tmp_path / task / "batched"), "--batch_size", "5"])
        main(base + ["--output_dir", str(tmp_path / task / "single"), "--batched", "false"])
        assert_same_outputs(tmp_path / task / "batched", tmp_path / task / "single", 1 if task == "asr" else 2)


@pytest.mark.parametrize("task", ["st", "mt"])
def test_cli_joint_ctc_decoding_batched_equals_one_by_one(task, model_dir, tiny_data, tmp_path):
    """``--ctc_weight 0.3`` on a model with a target-side CTC: joint CTC/attention decoding on both paths, the same
    files, and really scored with the CTC (other scores than attention alone)."""
    from salign.bin.st_inference import main

    base = cli_args(model_dir, tiny_data, task, "--ctc_weight", "0.3")
    main(base + ["--output_dir", str(tmp_path / "batched"), "--batch_size", "5"])
    main(base + ["--output_dir", str(tmp_path / "single"), "--batched", "false"])
    assert_same_outputs(tmp_path / "batched", tmp_path / "single", 2)
    main(cli_args(model_dir, tiny_data, task) + ["--output_dir", str(tmp_path / "attention")])
    joint, att = read_scores(tmp_path / "batched"), read_scores(tmp_path / "attention")
    assert joint.keys() == att.keys() and any(abs(joint[k] - att[k]) > 1e-3 for k in joint)


@pytest.fixture(scope="module")
def no_ctc_model(model_dir, tmp_path_factory) -> Path:
    """The trained model without its target-side CTC: config with st_ctc_weight 0, checkpoint without st_ctc.*."""
    import yaml

    out = tmp_path_factory.mktemp("no_st_ctc")
    conf = yaml.safe_load((model_dir / "config.yaml").read_text())
    conf["model_conf"]["st_ctc_weight"] = 0.0
    (out / "config.yaml").write_text(yaml.safe_dump(conf))
    state = torch.load(model_dir / "valid.acc.ave.pth", map_location="cpu")
    torch.save({k: v for k, v in state.items() if not k.startswith("st_ctc.")}, out / "valid.acc.ave.pth")
    return out


NO_CTC = ("{} needs a model trained with a target-side CTC (model_conf.st_ctc_weight > 0) "
          "(fix: {})")


def last_error(capsys, main, argv: List[str]) -> str:
    """Run ``main`` as its command line does: exit status 2 and a last stderr line ``ERROR [tool]: <message>``;
    returns the message."""
    from salign.utils.io import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    assert exc.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("ERROR [")
    return line.split("]: ", 1)[1]


@pytest.mark.parametrize("opts, fix", [
    (["--ctc_weight", "0.3"], "--ctc_weight 0"),
    (["--ctc_weight", "0.3", "--batched", "false"], "--ctc_weight 0"),
    (["--ctc_weight", "0.3", "--task", "mt"], "--ctc_weight 0"),
    (["--ctc_greedy", "true"], "--ctc_greedy false"),
], ids=["batched", "one-by-one", "mt", "ctc_greedy"])
def test_cli_refuses_target_ctc_options_without_target_ctc(opts, fix, no_ctc_model, tiny_data, tmp_path, capsys):
    """One line, exit status 2, before anything is decoded (no output dir)."""
    from salign.bin.st_inference import main

    args = cli_args(no_ctc_model, tiny_data, "st") + opts + ["--output_dir", str(tmp_path / "out")]
    if "--task" in opts:  # the later --task wins; give MT its text input too
        args += ["--data_path_and_name_and_type", f"{tiny_data}/src_text,src_text,text"]
    given = " ".join(opts[:2]) if opts[0] == "--ctc_weight" else "--ctc_greedy true"
    assert last_error(capsys, main, args) == NO_CTC.format(given, fix)
    assert not (tmp_path / "out").exists()


def test_cli_plan_is_checked_whole_before_decoding(no_ctc_model, tiny_data, tmp_path, capsys):
    """A plan whose second decode asks for --ctc_weight on a model without target CTC decodes nothing; ASR (which
    has no use for the target CTC) is not refused."""
    import shlex

    from salign.bin.st_inference import main

    speech = f"{tiny_data}/feats.scp,speech,kaldi_ark"
    plan = tmp_path / "plan"
    plan.write_text(shlex.join(["--task", "asr", "--data_path_and_name_and_type", speech, "--output_dir",
                                str(tmp_path / "asr")]) + "\n" +
                    shlex.join(["--task", "st", "--data_path_and_name_and_type", speech, "--ctc_weight", "0.5",
                                "--output_dir", str(tmp_path / "st")]) + "\n")
    common = ["--st_train_config", str(no_ctc_model / "config.yaml"), "--st_model_file",
              str(no_ctc_model / "valid.acc.ave.pth"), "--ngpu", "0"]
    err = last_error(capsys, main, common + ["--plan", str(plan)])
    assert err == NO_CTC.format("--ctc_weight 0.5", "--ctc_weight 0")
    assert not (tmp_path / "asr").exists() and not (tmp_path / "st").exists()
    main(common + ["--task", "asr", "--ctc_weight", "0.3", "--data_path_and_name_and_type", speech,
                   "--output_dir", str(tmp_path / "asr")])
    assert (tmp_path / "asr" / "1best_recog" / "text").is_file()


def test_batched_decoder_refuses_ctc_weight_without_target_ctc(no_ctc_model):
    with pytest.raises(ValueError, match="target-side CTC"):
        ours(no_ctc_model, beam_size=3, ctc_weight=0.3)


def test_cli_rejects_batches_on_the_one_by_one_path(model_dir, tiny_data, tmp_path):
    from salign.bin.st_inference import main
    from salign.utils.io import InputError

    with pytest.raises(InputError, match="one utterance at a time"):
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
