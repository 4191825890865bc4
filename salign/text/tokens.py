"""SentencePiece models and ESPnet token lists for source and target texts.

A token list follows what ESPnet's ``st.sh`` writes for ``token_type=bpe``: ``<blank>`` first, ``<unk>`` second, the
model's pieces in id order without SentencePiece's own ``<unk>``/``<s>``/``</s>``, and ``<sos/eos>`` last, one per line.
ESPnet loads the pair with ``--token_list OUT/tokens.txt --bpemodel OUT/bpe.model``.

Training is deterministic (one thread, fixed seed, no sentence sampling below 10^8 lines), idempotent (a ``stamp.json``
of the inputs' content and the options, :mod:`salign.utils.stamp`; a matching stamp skips the work) and atomic (each
model dir is built under a temporary name and renamed when complete). A vocabulary too large for the corpus is
lowered to the largest size SentencePiece accepts, with a warning.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import sentencepiece as spm

from salign.data.kaldi import iter_table
from salign.utils.io import InputError, PathLike, atomic_dir
from salign.utils.stamp import Stamp

BLANK = "<blank>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"
MODEL_TYPES = ("unigram", "bpe", "char", "word")
SEED = 1234
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def warn(msg: str) -> None:
    """A warning line on stderr."""
    print(f"make_tokens: WARNING: {msg}", file=sys.stderr, flush=True)


def read_kaldi_text(path: PathLike) -> Iterator[str]:
    """Yield the text of each ``utt text`` line of a Kaldi text file (the id stripped; empty texts skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("text file is missing", path, fix="run data preparation first or fix --text")
    for _, _, text in iter_table(path):
        if text:
            yield text


def token_list(model: PathLike) -> List[str]:
    """ESPnet's token list for a SentencePiece model: blank, unk, pieces (no control/unk symbols), sos/eos."""
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
              if not (sp.is_control(i) or sp.is_unknown(i))]
    return [BLANK, UNK] + pieces + [SOS_EOS]


def _sentences(texts: Sequence[PathLike]) -> Iterator[str]:
    for t in texts:
        yield from read_kaldi_text(t)


def _train(texts: Sequence[PathLike], out_dir: Path, vocab_size: int, model_type: str, character_coverage: float,
           user_defined_symbols: Sequence[str]) -> None:
    """Train in memory (the model then holds no temporary paths, so equal inputs give byte-equal models)."""
    writer = io.BytesIO()
    kwargs = dict(sentence_iterator=_sentences(texts), model_writer=writer, vocab_size=vocab_size,
                  model_type=model_type, character_coverage=character_coverage, input_sentence_size=100_000_000,
                  shuffle_input_sentence=False, num_threads=1, minloglevel=2)
    if user_defined_symbols:
        kwargs["user_defined_symbols"] = list(user_defined_symbols)
    spm.set_random_generator_seed(SEED)
    spm.SentencePieceTrainer.train(**kwargs)
    model = writer.getvalue()
    (out_dir / "bpe.model").write_bytes(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    with (out_dir / "bpe.vocab").open("w", encoding="utf-8") as f:  # spm_train's vocab file: piece<TAB>score
        f.writelines(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))


def train_model(texts: Sequence[PathLike], out_dir: PathLike, vocab_size: int, model_type: str = "unigram",
                character_coverage: float = 1.0, user_defined_symbols: Sequence[str] = ()) -> Path:
    """Train one SentencePiece model on the union of ``texts`` into ``out_dir/{bpe.model,bpe.vocab,tokens.txt}``.

    Skips the work if ``out_dir/stamp.json`` matches the inputs and options. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    if model_type not in MODEL_TYPES:
        raise InputError(f"unknown model type '{model_type}'", fix=f"use one of {', '.join(MODEL_TYPES)}")
    if vocab_size < 1:
        raise InputError(f"vocabulary size must be positive, got {vocab_size}", fix="pass --nbpe N with N > 0")
    for t in texts:
        if not Path(t).is_file():
            raise InputError("text file is missing", t, fix="run data preparation first or fix --text")
    stamp = Stamp(out_dir / "stamp.json", texts,
                  {"vocab_size": vocab_size, "model_type": model_type, "character_coverage": character_coverage,
                   "user_defined_symbols": list(user_defined_symbols), "seed": SEED, "spm": spm.__version__})
    if stamp.reason() is None:
        print(f"make_tokens: {out_dir} is up to date, skipped", file=sys.stderr)
        return out_dir
    n = sum(1 for _ in _sentences(texts))
    if n == 0:
        raise InputError("no text to train on (every line is empty or only an utterance id)", texts[0],
                         fix="check the text files given with --text")
    with atomic_dir(out_dir) as tmp:
        size = vocab_size
        for _ in range(3):
            try:
                _train(texts, tmp, size, model_type, character_coverage, user_defined_symbols)
                break
            except RuntimeError as exc:
                m = _TOO_HIGH.search(str(exc))
                if not m or int(m.group(2)) >= size:
                    raise InputError(f"SentencePiece training failed: {str(exc).splitlines()[0]}", texts[0],
                                     fix="check the text and the --nbpe/--model_type options") from None
                warn(f"--nbpe {size} is too large for this corpus ({n} lines); using the largest feasible size "
                     f"{m.group(2)} for {out_dir.name}")
                size = int(m.group(2))
        else:
            raise InputError(f"SentencePiece could not find a feasible vocabulary size below {vocab_size}", texts[0])
        (tmp / "tokens.txt").write_text("\n".join(token_list(tmp / "bpe.model")) + "\n", encoding="utf-8")
    stamp.write([out_dir / "bpe.model", out_dir / "tokens.txt"])
    return out_dir


def make_tokens(texts: Sequence[PathLike], out: PathLike, mode: str, nbpe: int, model_type: str = "unigram",
                character_coverage: float = 1.0, user_defined_symbols: Sequence[str] = (),
                tgt_nbpe: Optional[int] = None) -> List[Path]:
    """Joint (``OUT/joint``) or separate (``OUT/src`` from ``texts[0]``, ``OUT/tgt`` from ``texts[1]``) models."""
    out = Path(out)
    if mode == "joint":
        if not texts:
            raise InputError("joint mode needs at least one --text")
        return [train_model(texts, out / "joint", nbpe, model_type, character_coverage, user_defined_symbols)]
    if mode == "separate":
        if len(texts) != 2:
            raise InputError(f"separate mode needs exactly two --text (source, then target), got {len(texts)}")
        return [train_model([texts[0]], out / "src", nbpe, model_type, character_coverage, user_defined_symbols),
                train_model([texts[1]], out / "tgt", tgt_nbpe or nbpe, model_type, character_coverage,
                            user_defined_symbols)]
    raise InputError(f"unknown mode '{mode}'", fix="use --mode joint or --mode separate")
