"""Fisher Spanish-English speech translation data (LDC speech + transcripts, Post et al. translations) as Kaldi data
dirs, with code-switched (CS), monolingual and mixed evaluation sets.

Inputs (nothing is downloaded):

* ``--fisher_speech``: LDC2010S01 (Fisher Spanish speech), any dir holding the ``<call>.sph`` files (searched
  recursively; ESPnet expects ``LDC2010S01/data/speech``);
* ``--fisher_trans``: LDC2010T04 (Fisher Spanish transcripts), any dir holding the ``<call>.tdf`` files (searched
  recursively; ESPnet expects ``LDC2010T04/fisher_spa_tr/data/transcripts``);
* ``--translations``: a clone of https://github.com/joshua-decoder/fisher-callhome-corpus with
  ``mapping/fisher_<split>`` and ``corpus/ldc/fisher_<split>.en`` (train) or ``fisher_<split>.en.{0,1,2,3}``
  (dev, dev2, test: four references); ``corpus/ldc/fisher_<split>.es`` is used when present (the corpus's
  ``bin/build_fisher.sh`` writes it from LDC2010T04), else the same lines are rebuilt from the ``.tdf`` files.

The joins follow ESPnet ``egs/fisher_callhome_spanish/st1`` (``egs2/fisher_callhome_spanish/st1/local`` links to
the same scripts) and the translation corpus's own scripts:

* ``.tdf`` (UTF-8, tab-separated ``file channel start end speaker speakerType speakerDialect transcript section turn
  segment ...``): ``local/fsp_make_trans.pl`` reads the lines after the 3 header lines (``file;unicode...`` and two
  ``;;MM ...`` lines); the side is ``A`` when the channel field is ``0`` (or empty), else ``B``; the segment id is
  ``<call>-<side>-<start>-<end>`` with times in centiseconds truncated and zero-padded to 6 digits
  (``sprintf("%06d", t * 100)``); the recording and speaker id is ``<call>-<side>``;
* a mapping line ``<call> <i>[_<j>...]`` (``mapping/fisher_<split>``) is one translation line: line ``n`` of the
  mapping file goes with line ``n`` of ``fisher_<split>.en``; ``i, j, ...`` are 1-based numbers of the ``.tdf``
  lines that are not header lines (``bin/build_fisher.sh`` drops lines containing ``;;MM`` or ``file;unicode``,
  ``bin/map_transcription.py`` counts the rest per file; ESPnet's ``local/concat_short_utt.py`` counts its own
  segments per call, the same lines);
* several segments on one line are merged as ``local/concat_short_utt.py`` does: utterance id
  ``<call>-<side of the first>-<start of the first>-<end of the last>``, segment from the first's start to the
  last's end on the first's recording, transcript = the segments' transcripts joined with spaces (also how
  ``map_transcription.py`` builds the ``.es`` line);
* the Spanish line of a segment is ``bin/strip_markup.pl`` applied to the transcript field (``( ) + * / #`` removed,
  ``<...>``, ``{...}``, ``[...]`` spans removed, whitespace collapsed);
* ``segments``: ``<utt> <call>-<side> <start> <end>`` in seconds, ``%.2f`` of the centiseconds
  (``local/fsp_data_prep.sh``); ``wav.scp``: ``<call>-A <sph2pipe> -f wav -p -c 1 <abs .sph> |`` and ``-c 2`` for
  ``B`` (``local/fsp_data_prep.sh``), or, without sph2pipe, ``sox -t sph <abs .sph> -t wav -e signed-integer -b 16
  - remix 1 |`` (``remix 2`` for ``B``). The audio stays 8 kHz as in the LDC release; salign's feature stage reads
  plain audio files, so a recipe converts these pipes to wav files before features;
* ``local/normalize_trans.sh`` (``st1``) drops an utterance whose start equals its end and one whose normalised
  Spanish or English side is empty (``emptyutterance``); so does :func:`prepare` (and one that ends before it
  starts), counting them in the summary. An utterance id that two mapping lines produce keeps the first line.

Text (``local/normalize_trans.sh`` with ``local/normalize_punctuation.pl``, ported as :func:`espnet_normalize`;
Moses' ``normalize-punctuation.perl`` and ``tokenizer.perl`` are not applied: sacreBLEU tokenises by itself):

* ``text`` (English target, ESPnet's ``text.tc.en``, untokenised): ``¿`` removed, :func:`espnet_normalize`, true
  case and punctuation kept, whitespace collapsed. Dev, dev2 and test have four references: ``text`` is the first
  (as ESPnet's ``local/data.sh``: "temporarily using first reference as target text"), ``text.en.0`` ..
  ``text.en.3`` hold all four;
* ``text.src`` (Spanish transcript, ESPnet's ``text.lc.rm.es``): :func:`espnet_normalize`, lower case, punctuation
  removed (:func:`salign.text.normalize.normalize_source`: accents, ``ñ`` and word-internal apostrophes kept).

Code-switch rule ``--rule words`` (default; :func:`tag_words`, :func:`classify`), on the words of ``text.src``:

1. a word inside an annotators' ``<foreign lang="English"> ... </foreign>`` span of the ``.tdf`` transcript is
   English (the LDC marking of English stretches; matched per word, as often as the span holds it; spans are read
   by :func:`foreign_spans` after the tag fixes of Weller et al. 2022); a word inside a span of another language is
   neutral;
2. else a word is English when it is in the built-in English list (:data:`EN_WORDS`), not in the Spanish list
   (:data:`ES_WORDS`), not in the neutral list (:data:`NEUTRAL_WORDS`: fillers, interjections, loanwords common in
   Spanish speech such as ``okay``, ``internet``) and (``use_translation``, default) also a word of one of the
   utterance's English translations (an English word spoken inside Spanish is normally carried over verbatim);
3. neutral (counted for neither language): words in both lists (``a no me he come son has red once``...), neutral
   words, words without a letter, and list-English words the translation does not contain;
4. every other word is Spanish (Fisher is a Spanish corpus: a word the lists do not know counts as Spanish).

An utterance is ``cs`` when it has at least ``k`` (``--min_words``) English and at least ``k`` Spanish words;
otherwise it is ``en`` when it has more English than Spanish words, else ``es``. With ``--cs_list FILE`` (one
utterance id a line, ``#`` comments) the listed utterances are ``cs`` and all others get ``en``/``es`` by the same
majority. Limits: an unmarked English word outside the list counts as Spanish (misses CS), a list-English word that
is also a Spanish name or brand and appears verbatim in the translation counts as English (false CS), English names
count as Spanish unless marked, and the lists are small (about 300 words each).

``--rule tags`` is the split of Weller et al. 2022, "End-to-end speech translation for code switched speech"
(apple/ml-code-switched-speech-translation, ``fisher/extract_cs_words_from_raw_data.py``): an utterance is ``cs``
when its transcript has a ``<foreign>`` span (any language) with at least one word, whatever else it holds (a line
entirely inside an English span is ``cs`` there, ``en`` under ``words``); ``--min_words`` does not apply.

Output ``<out>/<split>/`` for every split (default ``train dev dev2 test``): ``wav.scp segments utt2spk spk2utt
reco2file_and_channel text text.src utt2lang`` (+ ``text.en.{0..3}``); for each evaluation split (every split but
``train``) also ``<split>_cs`` (the CS utterances), ``<split>_mono`` (the others) and ``<split>_mix`` (all of them:
the split at its natural CS share); ``<out>/fisher_cs_summary.json`` (rule, options, counts per set, dropped
utterances); the stamp ``<out>/.prep_fisher_cs.json`` (an identical re-run is skipped). Everything is validated
before anything is written; each data dir is written atomically.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from salign.data.datadir import spk2utt_from_utt2spk
from salign.data.kaldi import write_table
from salign.text.normalize import normalize_source
from salign.utils.io import InputError, PathLike, atomic_dir, atomic_write
from salign.utils.stamp import Stamp

__all__ = ["SPLITS", "EN_WORDS", "ES_WORDS", "NEUTRAL_WORDS", "TdfSegment", "Utterance", "read_tdf", "strip_markup",
           "foreign_spans", "espnet_normalize", "read_mapping", "tag_words", "classify", "majority", "audio_command",
           "find_audio_tool", "prepare"]

SPLITS = ("train", "dev", "dev2", "test")
STAMP = ".prep_fisher_cs.json"
SUMMARY = "fisher_cs_summary.json"
FORMAT = 1  # bump when the output for the same inputs changes
SPEECH_FIX = "point --fisher_speech at LDC2010S01 (Fisher Spanish speech), e.g. LDC2010S01/data/speech"
TRANS_FIX = "point --fisher_trans at LDC2010T04 (Fisher Spanish transcripts), e.g. LDC2010T04/fisher_spa_tr"
CORPUS_URL = "https://github.com/joshua-decoder/fisher-callhome-corpus"
TRANSL_FIX = f"point --translations at a clone of {CORPUS_URL}"

# ----------------------------------------------------------------------------------------------- word lists
EN_WORDS = frozenset("""
the and of to in is it that you for on with as was are be this have from or by one had not but what all were we
when your can said there an each which she do how their if will up other about out many then them these so some her
would make like him into time look two more write go see number way could people my than first been who its now
find long down day did get made may part yeah yes know think really because just good right well very thing things
school work job party weekend business money happy birthday baby cool nice sorry please thank thanks fine love
friend friends boyfriend girlfriend high show shopping mall manager football basketball baseball game games team
movie movies music rock video check store text hey man guy guys girl boy boys kids mom dad daddy mommy sister
brother church college ticket card credit insurance apartment downtown highway holiday thanksgiving halloween
english spanish language speak says say tell told doing going got getting want wanna gonna stuff something anything
nothing everything anyway whatever maybe sure exactly actually probably already still only also too again always
never ever every much little big small new old last next same different where why our us they his hers theirs mine
yours myself yourself am being should must might shall does don't it's i'm that's you're can't won't didn't isn't
i i've i'll i'd we're they're what's there's let's would've home house car street city state country family
children kid wife husband mother father life world year years week month today tomorrow yesterday night morning
afternoon evening before after over under between through during without again here those such own any few most
while off once both whose until against above below a no me he come son has red pie sin real final normal hospital
hotel radio doctor general personal total animal idea plan
""".split())

ES_WORDS = frozenset("""
de la que el en y a los se del las un por con no una su para es al lo como más mas pero sus le ya o este sí si
porque esta entre cuando muy sin sobre también me hasta hay donde quien desde todo nos durante todos uno les ni
contra otros ese eso ante ellos e esto mí antes algunos qué unos yo otro otras otra él tanto esa estos mucho
quienes nada muchos cual poco ella estar estas algunas algo nosotros mi mis tú te ti tu tus ellas nosotras vosotros
os mío tuyo suyo nuestro bueno pues entonces bien sea ser fue era son está están estoy estaba tengo tiene tienen
tenía hace hacer dice dijo digo creo sé sabe saber verdad claro vez veces aquí allá allí ahí ahora así casa trabajo
año años día días gente cosa cosas mismo mejor tiempo vida hablar habla inglés español mamá papá hijo hija hijos
niños familia amigo amiga amigos país ciudad dinero mujer hombre cómo dónde cuándo quién cuál cuánto nunca siempre
todavía solamente solo sólo luego después tampoco acá oye mira vamos va voy vas van ir ha han había he hemos has
puede puedo pueden quiero quiere gusta gustan tal cada nuevo gran grande pequeño mucha muchas poca pocos alguien
nadie usted ustedes señor señora come comer red once pie real final normal hospital hotel radio doctor general
personal total animal idea plan hora horas semana mes meses hoy mañana noche tarde escuela colegio universidad
trabajar vivir vive vivo viven como estamos fueron tenemos somos soy eres eran estaban sería tener decir dicen
""".split())

NEUTRAL_WORDS = frozenset("""
okay ok o.k um uh uhm mm mhm hmm ah eh oh ay ey ajá aha huh hum ja je jaja jajaja wow bye hello hi internet email
e-mail chat web online blog fax club sandwich
""".split())

# ------------------------------------------------------------------------------------------------ transcripts
def strip_markup(text: str) -> str:
    """The translation corpus's ``bin/strip_markup.pl``: drop ``( ) + * / #``, ``<...>``, ``{...}`` and ``[...]``
    spans, collapse whitespace."""
    text = re.sub(r"[()+*/#]", "", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    return " ".join(text.split())


_TAG = re.compile(r"<\s*(/?)\s*foreign\b([^>]*)>", re.I)
_LANG = re.compile(r"lang\s*=\s*\"?([^\"\s>]*)", re.I)
# annotation slips of LDC2010T04 fixed before parsing, as Weller et al. (2022) do (apple/ml-code-switched-speech-
# translation, fisher/extract_cs_words_from_raw_data.py, fix_small_errors)
_TAG_FIXES = (('lang+"English"', 'lang="English"'), ('lan="English"', 'lang="English"'), (" /foreign>", "</foreign>"),
              ('<foreign lang="English"> meeting <foreign lang="English">',
               '<foreign lang="English"> meeting </foreign>'))


def foreign_spans(text: str) -> List[Tuple[str, List[str]]]:
    """``(language, words)`` of each ``<foreign lang="..."> ... </foreign>`` span of a raw transcript (words in the
    ``text.src`` form; language lower-cased). A span left open runs to the end of the text (as an HTML parser reads
    it); a span inside a span belongs to the inner one."""
    for bad, good in _TAG_FIXES:
        text = text.replace(bad, good)
    spans: List[Tuple[str, List[str]]] = []
    stack: List[str] = []
    pos = 0
    for m in [*_TAG.finditer(text), None]:
        chunk = text[pos: m.start() if m else len(text)]
        words = normalize_source(strip_markup(chunk)).split()
        if stack and words:
            spans.append((stack[-1], words))
        if m is None:
            break
        pos = m.end()
        if m.group(1):
            if stack:
                stack.pop()
        else:
            lang = _LANG.search(m.group(2))
            stack.append(lang.group(1).lower() if lang else "")
    return spans


# local/normalize_punctuation.pl of ESPnet's fisher_callhome_spanish st1, in its order: ("re", pattern) is a regex,
# anything else a literal replacement. Its ´ ¨ · rules are applied as intended (the Perl script lacks `use utf8`,
# so they never match decoded input there).
_ESPNET_RULES: Tuple[Tuple[str, str, str], ...] = (
    ("re", r"\([^)]+\)", " "), ("re", r"\[[^\]]+\]", " "),
    ("", "_", " "), ("", "`", "'"), ("", "\u00b4", "'"), ("", "\u00a8", "'"),
    ("", "noise", ""), ("", "laughter", ""), ("", "background noise", ""), ("", "background speech", ""),
    # fisher_train
    ("", "i/he", "i"), ("", "i/she", "i"), ("", " /?", "?"), ("", " / ", " "), ("", "a/c", ""), ("", "stay/", "stay"),
    ("", "boys/", "boys"), ("", "right/", "right"), ("", "follow/", "follow"), ("", "Jose/Josefina", "Jose"),
    ("", "welfare/foreign", "welfare"), ("", '<foreign lang="English"', ""), ("", "/foreign", ""),
    ("", "<plural>", ""), ("", "<barely makes any sense>", ""), ("", "<kind of a weird phrase>", ""),
    ("", "<last word does not fit there>", ""), ("", "<players with the meaning of singers>", ""),
    ("", "<this phrase barely made any sense whatsoever>", ""),
    ("", "<colorcito does not exist as a word so I have no ideea what he means about that>", ""),
    ("", "<foreign", ""), ("", "foreign>", ""),
    # fisher_dev
    ("", "her/his", "her"), ("", "o/", "o"), ("", "co/", "co"), ("", "L / ", ""), ("", "<???>", ""),
    ("", "<from Texas>", ""), ("", "<weird phrase>", ""), ("", "<this makes no sense>", ""),
    ("", "Salvador>", "Salvador"),
    # fisher_dev2
    ("", "A/C", ""), ("", "She/he", "She"), ("", "you/he", "you"), ("", "you/she", "you"), ("", "Um/", "Um"),
    ("", "name/", "name"), ("", "American/", "American"), ("", "<?>", ""), ("", "<metaphoric meaning>", ""),
    ("", "<missing text ? >", ""),
    ("", "<broken phrase but I tried to guess what would it mean if it was complete>", ""),
    # fisher_test
    ("", "she/he", "she"), ("", "her/him", "her"), ("", "is/", "is"), ("", "and/or", "and"), ("", "Then/Well", "Then"),
    ("", "fine/well", "fine"), ("", "Likewise/Equally", "Likewise"), ("", "boyfriend/girlfriend", "boyfriend"),
    ("", "living room / dining room", "living room"), ("", "<very bad phrase>", ""),
    ("", "<poorly written phrase>", ""), ("", "<this phrase barely even made sense>", ""),
    ("", "<very poorly written phrase but I think this is what was supposed to mean>", ""), ("", "what))", "what"),
    # callhome_train, callhome_devtest, callhome_evltest
    ("re", r"-*-", ""), ("", "He/she", "He"), ("", "he/she", "he"), ("", "he/se", "he"), ("", "his/her", "his"),
    ("", "him/her", "him"), ("re", r"right'\s*$", "right?"), ("", "so/", "so"),
)
_NOISY_PUNCT = re.compile(r"[()<>\[\]{}\\/;~=\u00b7*]")


def espnet_normalize(text: str) -> str:
    """ESPnet's ``local/normalize_punctuation.pl`` (fisher_callhome_spanish st1) on one line, in Unicode NFC (as every
    salign text reader: decomposed accents would not match the rules nor score as the same characters)."""
    text = f" {unicodedata.normalize('NFC', text).strip()} "
    for kind, pat, rep in _ESPNET_RULES:
        text = re.sub(pat, rep, text) if kind == "re" else text.replace(pat, rep)
    text = _NOISY_PUNCT.sub(" ", text)
    text = re.sub(r"^\s+", "", text)
    text = re.sub(r"^,\s*", "", text)
    text = re.sub(r"^\.+\s*", "", text)
    text = re.sub(r"^!\s*", "", text)
    text = re.sub(r"^\.\s*$", "", text)
    text = re.sub(r"^\?\s*$", "", text)
    return " ".join(text.split())


def normalize_en(text: str) -> str:
    """``text`` (English target): ESPnet's ``sed -e "s/¿//g" | normalize_punctuation.pl``, untokenised."""
    return espnet_normalize(text.replace("\u00bf", ""))


def normalize_es(text: str) -> str:
    """``text.src`` (Spanish transcript): :func:`espnet_normalize`, lower case, no punctuation."""
    return normalize_source(espnet_normalize(text))


@dataclass
class TdfSegment:
    """One numbered (non-header) line of a ``.tdf`` file."""

    call: str
    side: str
    start: int  # centiseconds, as fsp_make_trans.pl (truncated)
    end: int
    transcript: str  # the raw transcript field
    lineno: int  # line in the file (for messages)

    @property
    def seg_id(self) -> str:
        return f"{self.call}-{self.side}-{self.start:06d}-{self.end:06d}"


def _centi(value: str, path: Path, lineno: int) -> int:
    try:
        t = float(value)
    except ValueError:
        raise InputError(f"time {value!r} is not a number", path, lineno, "restore the file from LDC2010T04") from None
    if t < 0 or t * 100 >= 1_000_000:
        raise InputError(f"time {value!r} out of range (fsp_make_trans.pl: 'Time too long')", path, lineno,
                         "restore the file from LDC2010T04")
    return int(t * 100)


def read_tdf(path: Path) -> List[Optional[TdfSegment]]:
    """The numbered lines of a ``.tdf``: entry ``n - 1`` is line ``n`` of the mapping's numbering (header lines, those
    holding ``;;MM`` or ``file;unicode``, are not numbered); ``None`` for a line too short to be a segment."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path, fix="restore the file from LDC2010T04") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 ({exc.reason})", path, line, "restore the file from LDC2010T04") from None
    call = path.name[: -len(".tdf")]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: List[Optional[TdfSegment]] = []
    for lineno, line in enumerate(lines, 1):
        line = line[:-1] if line.endswith("\r") else line
        if ";;MM" in line or "file;unicode" in line:
            continue
        f = line.split("\t")
        if len(f) < 8:
            out.append(None)
            continue
        side = "A" if f[1].strip() in ("", "0") else "B"
        out.append(TdfSegment(call, side, _centi(f[2], path, lineno), _centi(f[3], path, lineno), f[7], lineno))
    return out


def read_mapping(path: Path) -> List[Tuple[str, List[int], int]]:
    """``(call, [tdf line numbers], line)`` per line of ``mapping/fisher_<split>``."""
    out = []
    for lineno, line in enumerate(_read_lines(path, "mapping file"), 1):
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9]+(_[0-9]+)*", parts[1]):
            raise InputError(f"bad mapping line {line!r}", path, lineno,
                             f"write '<call> <n>[_<m>...]' as in {CORPUS_URL} mapping/")
        out.append((parts[0], [int(x) for x in parts[1].split("_")], lineno))
    return out


def _read_lines(path: Path, what: str) -> List[str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found", path, fix=TRANSL_FIX) from None
    except OSError as exc:
        raise InputError(f"cannot read {what} ({exc.strerror})", path, fix=TRANSL_FIX) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 ({exc.reason})", path, line, "convert the file to UTF-8") from None
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ------------------------------------------------------------------------------------------ language ID
def tag_words(words: Sequence[str], marked: Iterable[str] = (), translation: Optional[Set[str]] = None,
              use_translation: bool = True, marked_other: Iterable[str] = ()) -> List[str]:
    """Tag each word ``en``, ``es`` or ``-`` (neutral) by the module's rule; ``marked``: the words inside the
    transcript's English ``foreign`` spans, ``marked_other``: those inside spans of other languages (neutral),
    ``translation``: the words of the English translation(s)."""
    left, other = Counter(marked), Counter(marked_other)
    tags = []
    for w in words:
        if left[w] > 0:
            left[w] -= 1
            tags.append("en")
        elif other[w] > 0:
            other[w] -= 1
            tags.append("-")
        elif not any(ch.isalpha() for ch in w) or w in NEUTRAL_WORDS or (w in EN_WORDS and w in ES_WORDS):
            tags.append("-")
        elif w in EN_WORDS:
            ok = not use_translation or (translation is not None and w in translation)
            tags.append("en" if ok else "-")
        else:
            tags.append("es")
    return tags


def classify(tags: Sequence[str], min_words: int = 1) -> str:
    """``cs`` with at least ``min_words`` English and Spanish words; else the majority (``en`` only if more)."""
    n_en, n_es = tags.count("en"), tags.count("es")
    if n_en >= min_words and n_es >= min_words:
        return "cs"
    return majority(tags)


def majority(tags: Sequence[str]) -> str:
    """``en`` when more words are English than Spanish, else ``es`` (the corpus language)."""
    return "en" if tags.count("en") > tags.count("es") else "es"


# --------------------------------------------------------------------------------------------------- audio
def find_audio_tool(tool: str = "auto") -> Tuple[str, str]:
    """``(kind, path)`` of sph2pipe (preferred, as ESPnet) or sox; a one-line error when neither is installed."""
    kinds = ("sph2pipe", "sox") if tool == "auto" else (tool,)
    if tool not in ("auto", "sph2pipe", "sox"):
        raise InputError(f"unknown --audio_tool {tool!r}", fix="use auto, sph2pipe or sox")
    for kind in kinds:
        path = shutil.which(kind)
        if path:
            return kind, path
    raise InputError(f"{' or '.join(kinds)} not found on PATH (wav.scp reads the .sph files through it)",
                     fix="install sox (apt-get install sox) or put sph2pipe (Kaldi tools/sph2pipe_v2.5) on PATH")


def audio_command(kind: str, tool: str, sph: Path, side: str) -> str:
    """The ``wav.scp`` value of one side of a call (a pipe; channel 1 is side A)."""
    ch = 1 if side == "A" else 2
    tool, path = shlex.quote(str(tool)), shlex.quote(str(sph))
    if kind == "sph2pipe":
        return f"{tool} -f wav -p -c {ch} {path} |"
    return f"{tool} -t sph {path} -t wav -e signed-integer -b 16 - remix {ch} |"


# --------------------------------------------------------------------------------------------------- corpus
@dataclass
class Utterance:
    """One translation line joined to its ``.tdf`` segments."""

    utt: str
    rec: str
    start: int
    end: int
    src: str  # text.src
    tgt: List[str]  # text (reference 0) and further references
    foreign: List[Tuple[str, List[str]]] = field(default_factory=list)  # the transcript's foreign spans
    lang: str = "es"
    tags: List[str] = field(default_factory=list)


def _index(root: Path, suffix: str, what: str, fix: str) -> Dict[str, Path]:
    """``{stem: path}`` of every ``*<suffix>`` file (any case) under ``root``; one name twice is an error."""
    if not root.is_dir():
        raise InputError(f"{what} dir not found", root, fix=fix)
    found: Dict[str, Path] = {}
    for dirpath, _, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith(suffix) and not name.startswith("."):
                stem = name[: -len(suffix)]
                p = Path(dirpath) / name
                if stem in found and found[stem].resolve() != p.resolve():
                    raise InputError(f"two {suffix} files for call {stem}: {found[stem]} and {p}", root,
                                     fix="keep one copy of each LDC file")
                found[stem] = p
    if not found:
        raise InputError(f"no {suffix} files under the {what} dir", root, fix=fix)
    return found


def _translation_files(tr: Path, split: str) -> Tuple[Path, List[Path], Optional[Path]]:
    """mapping file, English reference files (1 or 4) and the optional ``.es`` file of one split."""
    if not tr.is_dir():
        raise InputError("translations dir not found", tr, fix=TRANSL_FIX)
    mapping = tr / "mapping" / f"fisher_{split}"
    if not mapping.is_file():
        raise InputError(f"no mapping file for split {split}", mapping, fix=TRANSL_FIX)
    ldc = tr / "corpus" / "ldc"
    single = ldc / f"fisher_{split}.en"
    multi = [ldc / f"fisher_{split}.en.{i}" for i in range(4)]
    if single.is_file():
        refs = [single]
    elif multi[0].is_file():
        refs = [p for p in multi if p.is_file()]
        if len(refs) != 4:
            missing = next(p for p in multi if not p.is_file())
            raise InputError("reference file missing (dev/dev2/test have 4)", missing, fix=TRANSL_FIX)
    else:
        raise InputError(f"no English translations for split {split} (fisher_{split}.en or .en.0)", single,
                         fix=TRANSL_FIX)
    es = ldc / f"fisher_{split}.es"
    return mapping, refs, es if es.is_file() else None


def read_split(split: str, tr: Path, tdfs: Dict[str, Path], sphs: Dict[str, Path], tdf_cache: Dict[str, list],
               ) -> Tuple[List[Utterance], Dict[str, Path], Dict[str, int], Set[str]]:
    """Join one split; return its utterances (sorted), call -> .sph, dropped counts and every id it maps."""
    mapping_path, ref_paths, es_path = _translation_files(tr, split)
    mapping = read_mapping(mapping_path)
    refs = [_read_lines(p, "translation file") for p in ref_paths]
    for p, lines in zip(ref_paths, refs):
        if len(lines) != len(mapping):
            raise InputError(f"{len(lines)} lines, but {mapping_path.name} has {len(mapping)}", p,
                             fix=f"use the mapping and corpus/ldc files of the same {CORPUS_URL} checkout")
    es_lines = _read_lines(es_path, "Spanish file") if es_path else None
    if es_lines is not None and len(es_lines) != len(mapping):
        raise InputError(f"{len(es_lines)} lines, but {mapping_path.name} has {len(mapping)}", es_path,
                         fix="rebuild it with bin/build_fisher.sh LDC2010T04/fisher_spa_tr, or delete it")
    dropped = Counter({"zero_length": 0, "empty_text": 0, "duplicate_id": 0})
    utts: Dict[str, Utterance] = {}
    calls: Dict[str, Path] = {}
    all_ids: Set[str] = set()
    for i, (call, nums, lineno) in enumerate(mapping):
        if call not in tdfs:
            raise InputError(f"no transcript {call}.tdf for mapping line {lineno}", mapping_path, lineno,
                             fix=TRANS_FIX)
        if call not in sphs:
            raise InputError(f"no speech file {call}.sph for mapping line {lineno}", mapping_path, lineno,
                             fix=SPEECH_FIX)
        if call not in tdf_cache:
            tdf_cache[call] = read_tdf(tdfs[call])
        segs = tdf_cache[call]
        picked = []
        for n in nums:
            seg = segs[n - 1] if 1 <= n <= len(segs) else None
            if seg is None:
                what = f"has {len(segs)} numbered lines" if not 1 <= n <= len(segs) else "line is not a segment"
                raise InputError(f"segment {call} {n} not found ({tdfs[call].name} {what})", mapping_path, lineno,
                                 fix=f"use the .tdf files of LDC2010T04 with the mapping of {CORPUS_URL}")
            picked.append(seg)
        first, last = picked[0], picked[-1]
        utt = f"{call}-{first.side}-{first.start:06d}-{last.end:06d}"
        all_ids.add(utt)
        raw = " ".join(s.transcript for s in picked)
        es_raw = es_lines[i] if es_lines is not None else " ".join(strip_markup(s.transcript) for s in picked)
        src = normalize_es(es_raw)
        tgt = [normalize_en(r[i]) for r in refs]
        if last.end <= first.start:
            dropped["zero_length"] += 1
            continue
        if not src or not all(tgt):
            dropped["empty_text"] += 1
            continue
        if utt in utts:
            dropped["duplicate_id"] += 1
            continue
        utts[utt] = Utterance(utt, f"{call}-{first.side}", first.start, last.end, src, tgt, foreign_spans(raw))
        calls[call] = sphs[call]
    if not utts:
        raise InputError(f"split {split}: no utterance left", mapping_path, fix=TRANSL_FIX)
    return [utts[k] for k in sorted(utts)], calls, dict(dropped), all_ids


def read_cs_list(path: Path) -> List[Tuple[str, int]]:
    """Utterance ids of a ``--cs_list`` file with their line numbers (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise InputError("--cs_list file not found", path, fix="pass a file of utterance ids, one a line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read --cs_list ({exc})", path, fix="pass a UTF-8 file of utterance ids") from None
    out = []
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((line.split()[0], lineno))
    return out


def _write_dir(out: Path, utts: Sequence[Utterance], calls: Dict[str, Path], kind: str, tool: str) -> None:
    with atomic_dir(out) as tmp:
        recs = sorted({u.rec for u in utts})
        write_table(tmp / "wav.scp", {r: audio_command(kind, tool, calls[r[:-2]], r[-1]) for r in recs})
        write_table(tmp / "reco2file_and_channel", {r: f"{r[:-2]} {r[-1]}" for r in recs})
        write_table(tmp / "segments", {u.utt: f"{u.rec} {u.start * 0.01:.2f} {u.end * 0.01:.2f}" for u in utts})
        utt2spk = {u.utt: u.rec for u in utts}
        write_table(tmp / "utt2spk", utt2spk)
        write_table(tmp / "spk2utt", spk2utt_from_utt2spk(utt2spk))
        write_table(tmp / "text", {u.utt: u.tgt[0] for u in utts})
        if len(utts[0].tgt) > 1:
            for i in range(len(utts[0].tgt)):
                write_table(tmp / f"text.en.{i}", {u.utt: u.tgt[i] for u in utts})
        write_table(tmp / "text.src", {u.utt: u.src for u in utts})
        write_table(tmp / "utt2lang", {u.utt: u.lang for u in utts})


def prepare(fisher_speech: PathLike, fisher_trans: PathLike, translations: PathLike, out: PathLike,
            splits: Sequence[str] = SPLITS, min_words: int = 1, cs_list: Optional[PathLike] = None,
            use_translation: bool = True, audio_tool: str = "auto", rule: str = "words",
            log: Callable[[str], None] = print) -> Optional[dict]:
    """Validate everything, then write the data dirs and the summary; ``None`` when an identical run is done."""
    if rule not in ("words", "tags"):
        raise InputError(f"unknown --rule {rule!r}", fix="use words (word-level language ID) or tags")
    if min_words < 1:
        raise InputError(f"--min_words {min_words} is below 1", fix="pass --min_words 1 or more")
    if not splits or len(set(splits)) != len(splits) or any(s not in SPLITS for s in splits):
        raise InputError(f"bad --splits {','.join(splits)}", fix=f"a comma-separated subset of {','.join(SPLITS)}")
    speech, trans, tr, out = Path(fisher_speech), Path(fisher_trans), Path(translations), Path(out)
    if not speech.is_dir():
        raise InputError("Fisher Spanish speech dir not found", speech, fix=SPEECH_FIX)
    if not trans.is_dir():
        raise InputError("Fisher Spanish transcripts dir not found", trans, fix=TRANS_FIX)
    if not tr.is_dir():
        raise InputError("translations dir not found", tr, fix=TRANSL_FIX)
    kind, tool = find_audio_tool(audio_tool)
    for split in splits:
        _translation_files(tr, split)
    sphs = _index(speech, ".sph", "Fisher Spanish speech", SPEECH_FIX)
    tdfs = _index(trans, ".tdf", "Fisher Spanish transcripts", TRANS_FIX)
    tr_inputs = [p for s in splits for p in _flat(_translation_files(tr, s))]
    options = {"tool": "salign.bin.prep_fisher_cs", "format": FORMAT, "splits": list(splits),
               "rule": rule, "min_words": min_words, "use_translation": use_translation, "audio": [kind, tool],
               "speech": {k: [str(p.resolve()), p.stat().st_size] for k, p in sorted(sphs.items())},
               "transcripts": str(trans.resolve())}
    inputs: List[PathLike] = [trans, *tr_inputs] + ([Path(cs_list)] if cs_list else [])
    if cs_list and not Path(cs_list).is_file():
        raise InputError("--cs_list file not found", cs_list, fix="pass a file of utterance ids, one a line")
    stamp = Stamp(out / STAMP, inputs, options)
    if stamp.reason() is None:
        log(f"{out}: up to date (same inputs and options), skipped")
        return None

    cache: Dict[str, list] = {}
    loaded = {s: read_split(s, tr, tdfs, sphs, cache) for s in splits}  # validate every split before writing
    listed: Optional[Set[str]] = None
    if cs_list:
        known = set().union(*(ids for _, _, _, ids in loaded.values()))
        listed = set()
        for utt, lineno in read_cs_list(Path(cs_list)):
            if utt not in known:
                raise InputError(f"utterance id {utt!r} is not in splits {','.join(splits)}", cs_list, lineno,
                                 "use ids <call>-<A|B>-<start>-<end> as in <out>/<split>/text")
            listed.add(utt)
    summary: dict = {"rule": "cs_list" if cs_list else rule, "min_words": min_words,
                     "use_translation": use_translation, "cs_list": str(cs_list) if cs_list else None,
                     "audio_tool": kind, "sets": {}, "dropped": {}}
    for split, (utts, _, dropped, _) in loaded.items():
        for u in utts:
            words = set(" ".join(normalize_source(t) for t in u.tgt).split())
            en = [w for lang, ws in u.foreign if lang == "english" for w in ws]
            other = [w for lang, ws in u.foreign if lang != "english" for w in ws]
            u.tags = tag_words(u.src.split(), en, words, use_translation, other)
            if listed is not None:
                u.lang = "cs" if u.utt in listed else majority(u.tags)
            elif rule == "tags":
                u.lang = "cs" if u.foreign else majority(u.tags)
            else:
                u.lang = classify(u.tags, min_words)
        summary["dropped"][split] = dropped
    written = []
    for split, (utts, calls, _, _) in loaded.items():
        calls_by_rec = {c: p.resolve() for c, p in calls.items()}
        sets = {split: utts}
        if split != "train":
            cs = [u for u in utts if u.lang == "cs"]
            mono = [u for u in utts if u.lang != "cs"]
            sets.update({f"{split}_cs": cs, f"{split}_mono": mono, f"{split}_mix": utts})
        for name, members in sets.items():
            counts = Counter(u.lang for u in members)
            hours = round(sum(u.end - u.start for u in members) / 360000, 3)
            summary["sets"][name] = {"utterances": len(members), "cs": counts["cs"], "es": counts["es"],
                                     "en": counts["en"], "hours": hours}
            if not members:
                shutil.rmtree(out / name, ignore_errors=True)
                log(f"{out / name}: empty (no utterance of this kind), not written")
                continue
            _write_dir(out / name, members, calls_by_rec, kind, tool)
            written.append(out / name)
            c = summary["sets"][name]
            log(f"{out / name}: {c['utterances']} utterances (cs {c['cs']}, es {c['es']}, en {c['en']}), "
                f"{c['hours']:.2f} h")
    with atomic_write(out / SUMMARY) as f:
        f.write(json.dumps(summary, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    stamp.write([*written, out / SUMMARY])
    return summary


def _flat(files: Tuple[Path, List[Path], Optional[Path]]) -> List[Path]:
    mapping, refs, es = files
    return [mapping, *refs] + ([es] if es else [])
