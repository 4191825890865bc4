"""SentencePiece models and token lists: ESPnet loads them, determinism, idempotence, vocabulary lowering."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from salign.bin import make_tokens
from salign.text.tokens import BLANK, SOS_EOS, UNK, read_kaldi_text
from salign.utils.io import InputError

EN = ("the quick brown fox jumps over a lazy dog while we talk about science and music in the "
      "old house near river").split()
ES = ("el rapido zorro marron salta sobre un perro perezoso mientras hablamos de ciencia y musica en "
      "la vieja casa cerca del rio").split()


def write_texts(root: Path, n: int = 300) -> tuple[Path, Path]:
    rng = random.Random(0)
    en, es = root / "text.en", root / "text.es"
    with en.open("w") as f, es.open("w") as g:
        for i in range(n):
            f.write(f"utt{i:04d} " + " ".join(rng.choice(EN) for _ in range(10)) + "\n")
            g.write(f"utt{i:04d} " + " ".join(rng.choice(ES) for _ in range(10)) + "\n")
        f.write("utt_empty\n")
    return en, es


def test_joint_model_round_trips_through_espnet(tmp_path):
    en, es = write_texts(tmp_path)
    out = tmp_path / "token_list"
    make_tokens.main(["--text", str(en), "--text", str(es), "--mode", "joint", "--nbpe", "60", "--out", str(out)])
    tokens = (out / "joint" / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert tokens[0] == BLANK and tokens[1] == UNK and tokens[-1] == SOS_EOS
    assert "<s>" not in tokens and "</s>" not in tokens and tokens.count(UNK) == 1
    assert len(tokens) == 60  # spm's 3 control symbols replaced by ESPnet's 3
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.token_id_converter import TokenIDConverter

    tok = build_tokenizer(token_type="bpe", bpemodel=str(out / "joint" / "bpe.model"))
    conv = TokenIDConverter(token_list=str(out / "joint" / "tokens.txt"), unk_symbol=UNK)
    for sent in ("the quick brown fox jumps over a lazy dog", "el perro salta sobre la casa"):
        ids = conv.tokens2ids(tok.text2tokens(sent))
        assert 1 not in ids and 0 not in ids  # no <unk>, no <blank>
        assert tok.tokens2text(conv.ids2tokens(ids)) == sent


def test_matches_espnet_vocab_order(tmp_path):
    """ESPnet's st.sh: blank, unk, then bpe.vocab minus its first three lines, then sos/eos."""
    en, es = write_texts(tmp_path)
    out = tmp_path / "tl"
    make_tokens.main(["--text", str(en), "--text", str(es), "--nbpe", "50", "--out", str(out),
                      "--model_type", "bpe"])
    vocab = [line.split("\t")[0] for line in (out / "joint" / "bpe.vocab").read_text().splitlines()]
    assert (out / "joint" / "tokens.txt").read_text().splitlines() == [BLANK, UNK] + vocab[3:] + [SOS_EOS]


def test_separate_models_deterministic_and_idempotent(tmp_path, capsys):
    en, es = write_texts(tmp_path)
    args = ["--text", str(en), "--text", str(es), "--mode", "separate", "--nbpe", "40"]
    make_tokens.main(args + ["--out", str(tmp_path / "a")])
    make_tokens.main(args + ["--out", str(tmp_path / "b")])
    for side in ("src", "tgt"):
        a, b = tmp_path / "a" / side, tmp_path / "b" / side
        assert (a / "bpe.model").read_bytes() == (b / "bpe.model").read_bytes()
        assert (a / "tokens.txt").read_text() == (b / "tokens.txt").read_text()
    src = (tmp_path / "a" / "src" / "tokens.txt").read_text()
    assert "▁perro" not in src and "▁perro" in (tmp_path / "a" / "tgt" / "tokens.txt").read_text()
    capsys.readouterr()
    mtime = (tmp_path / "a" / "src" / "bpe.model").stat().st_mtime_ns
    make_tokens.main(args + ["--out", str(tmp_path / "a")])
    assert "up to date, skipped" in capsys.readouterr().err
    assert (tmp_path / "a" / "src" / "bpe.model").stat().st_mtime_ns == mtime
    make_tokens.main(args[:-1] + ["41", "--out", str(tmp_path / "a")])  # changed options: retrained
    assert "skipped" not in capsys.readouterr().err


def test_too_large_vocab_is_lowered_with_warning(tmp_path, capsys):
    en, _ = write_texts(tmp_path, n=20)
    out = tmp_path / "tl"
    make_tokens.main(["--text", str(en), "--nbpe", "5000", "--out", str(out)])
    err = capsys.readouterr().err
    assert "WARNING: --nbpe 5000 is too large" in err
    n = len((out / "joint" / "tokens.txt").read_text().splitlines())
    assert 10 < n < 5000


def test_user_defined_symbols_and_errors(tmp_path):
    en, es = write_texts(tmp_path)
    out = tmp_path / "tl"
    make_tokens.main(["--text", str(en), "--nbpe", "50", "--out", str(out), "--user_defined_symbols", "<laugh>,@@"])
    tokens = (out / "joint" / "tokens.txt").read_text().splitlines()
    assert tokens[2:4] == ["<laugh>", "@@"]
    with pytest.raises(InputError, match="exactly two"):
        make_tokens.main(["--text", str(en), "--mode", "separate", "--nbpe", "50", "--out", str(out)])
    with pytest.raises(InputError, match="missing"):
        make_tokens.main(["--text", str(tmp_path / "nope"), "--nbpe", "50", "--out", str(out)])
    assert list(read_kaldi_text(en))[0].startswith(tuple(EN))
