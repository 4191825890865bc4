"""Source and target text normalisation for MuST-C style transcripts.

``normalize_source`` produces the form used for CTC/ASR targets and as the MT input: lower-case, no punctuation
(apostrophes inside words are kept, e.g. ``don't``), no MuST-C sound annotations such as ``(Laughter)`` or
``[inaudible]``, single spaces. It is Unicode-aware: accented letters and non-Latin scripts are kept.
``normalize_target`` only collapses whitespace, drops byte-order marks and composes accents (Unicode NFC): targets
stay true-cased and punctuated for BLEU. Both sides are NFC (as SentencePiece and sacreBLEU see text): a reference
with decomposed accents (NFD, e.g. from macOS) would otherwise score identical sentences far below 100.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_source", "normalize_target", "remove_annotations"]

# Parenthesised sound/event annotations: "(Laughter)", "(Applause)", "(Music ends)", "(Video) ". Short (<= 3 words)
# parenthesised spans are annotations in MuST-C; longer ones are kept as text (only the brackets go).
_PAREN = re.compile(r"\(\s*[^()]{0,40}?\s*\)")
_BRACKET = re.compile(r"\[[^\[\]]*\]")
_ASCII_PUNCT = re.compile(r"[^a-z0-9']+")
_ASCII_LONE_APOS = re.compile(r"(?<![a-z0-9])'|'(?![a-z0-9])")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _drop_short_paren(match: "re.Match[str]") -> str:
    inner = match.group(0)[1:-1].split()
    return " " if len(inner) <= 3 else " " + " ".join(inner) + " "


def remove_annotations(text: str) -> str:
    """Remove MuST-C annotations: ``[...]`` spans and short ``(...)`` spans such as ``(Laughter)``."""
    text = _BRACKET.sub(" ", text)
    return _PAREN.sub(_drop_short_paren, text)


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN"


def normalize_source(text: str) -> str:
    """Lower-case, strip annotations and punctuation (keeping word-internal apostrophes), collapse whitespace.

    >>> normalize_source("(Applause) Don't worry -- it's Émile's café, OK?")
    "don't worry it's émile's café ok"
    """
    text = unicodedata.normalize("NFC", remove_annotations(text)).translate(_APOSTROPHES).lower()
    if text.isascii():  # fast path (most English transcripts): same result as the loop below
        text = _ASCII_PUNCT.sub(" ", text)
        return " ".join(_ASCII_LONE_APOS.sub(" ", text).split())
    out = []
    n = len(text)
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            out.append(ch)
        elif ch == "'" and 0 < i < n - 1 and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1]):
            out.append(ch)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


def normalize_target(text: str) -> str:
    """Drop byte-order marks (U+FEFF), compose accents (NFC), collapse runs of whitespace to one space and strip the
    ends; nothing else changes."""
    return " ".join(unicodedata.normalize("NFC", text.replace("\ufeff", "")).split())
