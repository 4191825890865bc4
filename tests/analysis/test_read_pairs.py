"""The analysis tools read their dev set through the decoding loader: fbank (feats.scp) and raw audio (wav.scp,
--feats_type raw) alike, transcripts tokenised by the model's preprocessor, utterances without a token skipped."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from salign.analysis.representations import is_sound_scp, read_pairs
from salign.bin import make_fbank, make_raw
from salign.utils.io import InputError
from tests.conftest import TEST_CONFIG
from tests.feats.test_fbank import make_data


@pytest.fixture()
def untrained(tmp_path):
    """An untrained tiny model (80-dim fbank input) with a word token list of the test's transcripts."""
    from salign.tasks.st import SAlignSTTask

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\na\nb\nc\n<sos/eos>\n")
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word", "--token_list", str(tokens),
        "--src_token_list", str(tokens), "--input_size", "80"])
    return SAlignSTTask.build_model(args).eval(), args


def test_raw_and_fbank_dev_sets(tmp_path, untrained):
    model, train_args = untrained
    data = make_data(tmp_path, n_rec=1, n_seg=3)
    (tmp_path / "text.en").write_text("rec0_00 a b\nrec0_01 zzz\nrec0_02 c\n")
    make_raw.main(["--data", str(data), "--out", str(tmp_path / "raw")])
    make_fbank.main(["--data", str(data), "--out", str(tmp_path / "fbank")])
    wav_scp, feats_scp = tmp_path / "raw" / "wav.scp", tmp_path / "fbank" / "feats.scp"
    assert is_sound_scp(str(wav_scp)) and not is_sound_scp(str(feats_scp))
    raw, skipped = read_pairs(model, train_args, str(wav_scp), str(tmp_path / "text.en"))
    assert [(k, t.tolist()) for k, _, t in raw] == [("rec0_00", [2, 3]), ("rec0_01", [1]), ("rec0_02", [4])]
    assert skipped == []  # "zzz" is <unk>: a token
    x = raw[2][1].numpy()
    assert x.dtype == np.float32 and x.shape == (40000,)
    want = sf.read(tmp_path / "rec0.wav", dtype="float32")[0][6 * 16000:6 * 16000 + 40000]
    np.testing.assert_array_equal(x, want)
    fb, _ = read_pairs(model, train_args, str(feats_scp), str(tmp_path / "text.en"), max_utts=1)
    assert len(fb) == 1 and fb[0][1].shape == (248, 80)
    (tmp_path / "empty.en").write_text("rec0_00\nrec0_02 c\n")
    fb, skipped = read_pairs(model, train_args, str(feats_scp), str(tmp_path / "empty.en"))
    assert [k for k, _, _ in fb] == ["rec0_02"] and skipped == ["rec0_00"]
    (tmp_path / "other.en").write_text("nobody a\n")
    with pytest.raises(InputError, match="no utterance id is in both"):
        read_pairs(model, train_args, str(feats_scp), str(tmp_path / "other.en"))
