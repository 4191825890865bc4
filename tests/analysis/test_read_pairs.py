"""The analysis tools' dev-set reader takes fbank (feats.scp) and raw audio (wav.scp, --feats_type raw) alike."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from salign.analysis.retrieval import is_sound_scp, read_pairs
from salign.bin import make_fbank, make_raw
from tests.feats.test_fbank import make_data


def test_raw_and_fbank_dev_sets(tmp_path):
    data = make_data(tmp_path, n_rec=1, n_seg=3)
    (tmp_path / "text.en").write_text("rec0_00 a b\nrec0_02 c\n")
    make_raw.main(["--data", str(data), "--out", str(tmp_path / "raw")])
    make_fbank.main(["--data", str(data), "--out", str(tmp_path / "fbank")])
    wav_scp, feats_scp = tmp_path / "raw" / "wav.scp", tmp_path / "fbank" / "feats.scp"
    assert is_sound_scp(str(wav_scp)) and not is_sound_scp(str(feats_scp))
    raw = read_pairs(str(wav_scp), str(tmp_path / "text.en"))
    assert [(k, t) for k, _, t in raw] == [("rec0_00", "a b"), ("rec0_02", "c")]
    x = raw[1][1]
    assert x.dtype == np.float32 and x.shape == (40000,)
    want = sf.read(tmp_path / "rec0.wav", dtype="float32")[0][6 * 16000:6 * 16000 + 40000]
    np.testing.assert_array_equal(x, want)
    fb = read_pairs(str(feats_scp), str(tmp_path / "text.en"), max_utts=1)
    assert len(fb) == 1 and fb[0][1].shape == (248, 80)
