"""Stage 3 with --feats_type whisper (salign.bin.make_encoder_feats): a Whisper encoder's outputs stored once."""
from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import torch

from salign.bin import make_encoder_feats
from salign.data.datadir import read_data_dir
from salign.feats.fbank import iter_waves
from salign.st.whisper import WhisperEncoder
from salign.testing.tiny_formats import tiny_hf_whisper
from salign.utils.io import InputError
from tests.feats.test_fbank import make_data


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("whisper") / "hf"
    tiny_hf_whisper(max_source_positions=200).save_pretrained(path)  # a 4 s window
    return path


def run(data, out, ckpt, *extra):
    make_encoder_feats.main(["--data", str(data), "--out", str(out), "--nj", "2", "--checkpoint", str(ckpt),
                             *map(str, extra)])


def test_features_are_the_encoders_output_on_each_utterance_alone(tmp_path, ckpt):
    data = make_data(tmp_path, n_rec=2, n_seg=3)
    out = tmp_path / "dump"
    run(data, out, ckpt, "--layer", "1")
    feats = dict(kaldiio.load_scp(str(out / "feats.scp")))
    enc = WhisperEncoder(checkpoint=str(ckpt), layer=1).eval()
    segs, wav_scp = read_data_dir(data)
    assert len(feats) == 6
    for seg, wave in iter_waves(segs, wav_scp):
        with torch.no_grad():
            ref, lens, _ = enc(torch.from_numpy(wave)[None].float(), torch.tensor([len(wave)]))
        np.testing.assert_allclose(feats[seg.utt], ref[0, : int(lens[0])].numpy(), atol=1e-5)
    n = {line.split()[0]: int(line.split()[1]) for line in (out / "utt2num_frames").read_text().splitlines()}
    assert n == {u: f.shape[0] for u, f in feats.items()} and all(v == 125 for v in n.values())  # 2.5 s / 20 ms
    stats = np.load(out / "cmvn.npz")
    allf = np.concatenate(list(feats.values()))
    assert int(stats["count"]) == len(allf)
    np.testing.assert_allclose(stats["sum"], allf.sum(0), rtol=1e-4, atol=1e-3)


def test_stamp_holds_the_encoder_layer_and_dtype(tmp_path, ckpt, capsys):
    data = make_data(tmp_path, n_rec=1, n_seg=2)
    out = tmp_path / "dump"
    run(data, out, ckpt)
    capsys.readouterr()
    run(data, out, ckpt)
    assert capsys.readouterr().err.count("already complete, skipped") == 2
    run(data, out, ckpt, "--layer", "1")  # another layer: extracted again
    assert "already complete" not in capsys.readouterr().err
    f32 = dict(kaldiio.load_scp(str(out / "feats.scp")))
    run(data, out, ckpt, "--layer", "1", "--dtype", "float16")
    assert "already complete" not in capsys.readouterr().err
    f16 = dict(kaldiio.load_scp(str(out / "feats.scp")))
    for u in f32:  # 16-bit compressed: one global range per matrix
        rng = f32[u].max() - f32[u].min()
        np.testing.assert_allclose(f16[u], f32[u], atol=rng / 30000)
    other = tmp_path / "other"
    tiny_hf_whisper(seed=1, max_source_positions=200).save_pretrained(other)
    run(data, out, other, "--layer", "1", "--dtype", "float16")  # other weights, same shapes: extracted again
    assert "already complete" not in capsys.readouterr().err


def test_missing_checkpoint_or_too_long_utterance_is_a_one_line_error(tmp_path, ckpt):
    data = make_data(tmp_path, n_rec=1, n_seg=1)
    with pytest.raises(InputError, match="no such encoder checkpoint"):
        run(data, tmp_path / "d1", tmp_path / "nothing")
    small = tmp_path / "small"
    tiny_hf_whisper().save_pretrained(small)  # a 1.28 s window: 2.5 s utterances do not fit
    with pytest.raises(InputError, match="rec0_00.*longer than the encoder's 1.28 s window"):
        run(data, tmp_path / "d2", small)


def test_window_padding_encodes_in_the_full_window_and_keeps_the_utterances_frames(tmp_path, ckpt, capsys):
    """--padding window: Whisper run as trained, on the utterance and silence up to its window (here 4 s), every
    frame attending to the silence; the stored frames are the utterance's (as many as unpadded), and a new stamp."""
    data = make_data(tmp_path, n_rec=1, n_seg=2)
    out = tmp_path / "dump"
    run(data, out, ckpt)
    alone = dict(kaldiio.load_scp(str(out / "feats.scp")))
    capsys.readouterr()
    run(data, out, ckpt, "--padding", "window")
    assert "already complete" not in capsys.readouterr().err
    windowed = dict(kaldiio.load_scp(str(out / "feats.scp")))
    enc = WhisperEncoder(checkpoint=str(ckpt)).eval()
    segs, wav_scp = read_data_dir(data)
    for seg, wave in iter_waves(segs, wav_scp):
        full = np.zeros(enc.max_frames * 160, dtype=np.float32)
        full[: len(wave)] = wave
        with torch.no_grad():
            ref, _, _ = enc(torch.from_numpy(full)[None], torch.tensor([len(full)]))
        assert windowed[seg.utt].shape == alone[seg.utt].shape == (125, ref.size(-1))
        np.testing.assert_allclose(windowed[seg.utt], ref[0, :125].numpy(), atol=1e-5)
        assert np.abs(windowed[seg.utt] - alone[seg.utt]).mean() > 1e-3  # the silence is seen
