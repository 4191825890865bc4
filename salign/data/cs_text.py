"""Text side of the code-switch mini corpus (:mod:`salign.data.cs_mini`): English phrase chunks and their Spanish
translations, aligned chunk by chunk without a word aligner.

Rule (also in ``docs/cs_corpus.md``): an English sentence of the mini MuST-C pool
(:func:`salign.data.mini_mustc.translated_pool`, the sentences Apertium translates without unknown words) is cut

1. after ``, ; :`` (the mark stays with the chunk before it);
2. before a function word that opens a phrase (:data:`BREAK_BEFORE`: prepositions, conjunctions, relative/wh-words),
   never before the first word of a piece;
3. pieces shorter than ``min_words`` are merged into the next piece (the last one into the previous), pieces longer
   than ``max_words`` are cut into equal spans of at most ``max_words`` words.

Each chunk is translated by ``apertium eng-spa`` as a sentence of its own (a line ending in `` .`` that is removed
again: Apertium otherwise moves words across line breaks inside a sentence), the chunks of the whole pool in a fixed
order and fixed batches, cached; so chunk i of the Spanish side is the translation of chunk i of the English side
and of nothing else. A sentence is dropped when a chunk's translation is empty or carries an unknown-word mark
(``* # @``).
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from salign.data.mini_mustc import CHUNK, _cache_dir, translated_pool
from salign.utils.io import InputError, PathLike, atomic_write

__all__ = ["BREAK_BEFORE", "split_chunks", "spanish_chunk", "chunked_pool"]

BREAK_BEFORE = frozenset(
    "about above after against along among around at before behind below beneath beside between beyond by during "
    "except for from in inside into near of off on onto outside over since through throughout till to toward "
    "towards under until upon with within without and but or nor so yet because although though while whereas if "
    "unless when whenever where wherever whether than as that which who whom whose what".split())
FORMAT = 1  # bump when the chunking or the cleaning of translations changes

Pair = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (English chunks, Spanish chunks), same length


def split_chunks(sentence: str, min_words: int = 2, max_words: int = 6) -> List[str]:
    """English phrase chunks of ``sentence`` in order; ``" ".join(chunks) == " ".join(sentence.split())``."""
    pieces: List[List[str]] = []
    for part in re.split(r"(?<=[,;:])\s+", " ".join(sentence.split())):
        cur: List[str] = []
        for w in part.split():
            if cur and w.lower() in BREAK_BEFORE:
                pieces.append(cur)
                cur = []
            cur.append(w)
        if cur:
            pieces.append(cur)
    merged: List[List[str]] = []
    carry: List[str] = []
    for piece in pieces:
        carry = carry + piece
        if len(carry) >= min_words:
            merged.append(carry)
            carry = []
    if carry:
        if merged:
            merged[-1] = merged[-1] + carry
        else:
            merged.append(carry)
    out: List[str] = []
    for piece in merged:
        n = -(-len(piece) // max_words)
        out += [" ".join(piece[i * len(piece) // n:(i + 1) * len(piece) // n]) for i in range(n)]
    return out


def _apertium_chunks(lines: List[str]) -> List[str]:
    """Translate every line as a sentence of its own: Apertium reorders words across newlines inside a sentence,
    so a line not ending in ``.!?`` gets a sentinel `` .`` (removed again); the first letter is lower-cased (an
    upper-case unknown word is passed through unmarked) except for the pronoun ``I``."""
    marked = [not re.search(r"[.!?]$", ln) for ln in lines]
    text = "".join((ln if re.match(r"I\b", ln) else ln[0].lower() + ln[1:]) + (" .\n" if m else "\n")
                   for ln, m in zip(lines, marked))
    res = subprocess.run(["apertium", "-f", "txt", "eng-spa"], input=text, capture_output=True, text=True)
    out = res.stdout.split("\n")
    if res.returncode != 0 or len(out) < len(lines) or any(o.strip() for o in out[len(lines):]):
        raise InputError(f"apertium eng-spa failed ({res.stderr.strip()[:200] or 'line count mismatch'})",
                         fix="sudo apt-get install --reinstall apertium apertium-eng-spa")
    return [re.sub(r"\s*\.\s*$", "", o) if m else o.strip() for o, m in zip(out, marked)]


def spanish_chunk(raw: str, english: str, first: bool) -> str:
    """Clean one Apertium chunk output: spaces collapsed, none before punctuation; the first letter upper-cased in
    the sentence's first chunk and lower-cased in a later one whose English starts in lower case (Apertium
    capitalises every line); empty when it carries an unknown-word mark or has no letter."""
    out = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(raw.split()))
    if re.search(r"[*#@]", out) or not re.search(r"[^\W\d_]", out):
        return ""
    if first:
        return out[0].upper() + out[1:]
    return out[0].lower() + out[1:] if english[:1].islower() else out


def chunked_pool(nj: int = 2, min_words: int = 2, max_words: int = 6,
                 cache_dir: Optional[PathLike] = None) -> List[Pair]:
    """(English chunks, Spanish chunks) for every usable sentence of the pool, in pool order; cached like
    :func:`salign.data.mini_mustc.translated_pool` (``$SALIGN_CACHE``, default ``~/.cache/salign``)."""
    sentences = [en for en, _ in translated_pool(nj, cache_dir)]
    chunks = [split_chunks(s, min_words, max_words) for s in sentences]
    lines = [c for cs in chunks for c in cs]
    h = hashlib.sha1(("\n".join(lines) + f"\n{CHUNK}\n{FORMAT}").encode())
    for mode in sorted(Path("/usr/share/apertium/modes").glob("eng-spa*.mode")):
        h.update(mode.read_bytes())
    cache = Path(cache_dir) if cache_dir else _cache_dir()
    cache_file = cache / f"cs_mini_eng-spa_chunks_{h.hexdigest()[:16]}.txt"
    if cache_file.is_file():
        spanish = cache_file.read_text(encoding="utf-8").split("\n")[:-1]
    else:
        batches = [lines[i:i + CHUNK] for i in range(0, len(lines), CHUNK)]
        with ThreadPoolExecutor(max(1, nj)) as ex:
            spanish = [" ".join(s.split()) for part in ex.map(_apertium_chunks, batches) for s in part]
        try:
            with atomic_write(cache_file) as f:
                f.writelines(s + "\n" for s in spanish)
        except OSError:
            pass  # a read-only cache only costs time
    pairs: List[Pair] = []
    pos = 0
    for en in chunks:
        es = [spanish_chunk(s, e, i == 0) for i, (s, e) in enumerate(zip(spanish[pos:pos + len(en)], en))]
        pos += len(en)
        if all(es):
            pairs.append((tuple(en), tuple(es)))
    return pairs


def source_text(chunks: Sequence[str]) -> str:
    """The spoken source transcript: the chunk texts joined by single spaces."""
    return " ".join(chunks)
