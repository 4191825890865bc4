"""The code-switch recipe's results page (``egs/cs_mini/RESULTS.md``): systems x test sets, routing, wall times.

Reads what the recipe's stages wrote, nothing else:

* ``<exp>/st_<row>/decode_{st,asr}_<set>/score/result.json`` (the shared driver's stages 12-13, ``salign.bin.score``);
* ``mix_test`` = ``cs_test`` + ``es_test`` (the corpus builds it from exactly those utterances): its BLEU and chrF are
  corpus scores over the two sets' hypotheses and references together (``decode_st_*/1best_recog/text``,
  ``<dump>/<set>/text.<tgt>``), not an average;
* ``routing.json`` (``salign.bin.moe_routing``);
* ``timing.tsv`` (``part<TAB>seconds`` lines the recipe appends; the last line of a part counts).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from salign.data.kaldi import read_table
from salign.scoring.score import MISSING, read_text, score_translation
from salign.utils.io import InputError, PathLike, atomic_write

ST_SETS = ("cs_test", "es_test", "mix_test")
ASR_SETS = ("cs_test", "en_test", "es_test")
MIX = ("cs_test", "es_test")


def _result(exp: Path, row: str, task: str, dset: str) -> Dict[str, object]:
    """The ``result.json`` of ``row``'s decode of ``dset`` as ``task`` (an error if it was not scored)."""
    path = exp / f"st_{row}" / f"decode_{task}_{dset}" / "score" / "result.json"
    if not path.is_file():
        raise InputError("no score", path, fix="run the decoding and scoring stages first")
    return json.loads(path.read_text(encoding="utf-8"))


def mix_scores(exp: Path, row: str, dump: Path, tgt: str) -> Dict[str, object]:
    """BLEU/chrF of ``mix_test``: the hypotheses and references of ``cs_test`` and ``es_test`` scored together."""
    hyps: List[str] = []
    refs: List[str] = []
    for dset in MIX:
        hyp = read_table(exp / f"st_{row}" / f"decode_st_{dset}" / "1best_recog" / "text",
                         fix="run the decoding stage first")
        ref = read_text(dump / dset / f"text.{tgt}")
        hyps += [hyp.get(u, "") for u in ref]
        refs += list(ref.values())
    return score_translation(hyps, refs)


def _fmt(value: object, digits: int = 2) -> str:
    """A number with ``digits`` decimals; the table's dash for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{float(value):.{digits}f}"


def results_page(exp: PathLike, dump: PathLike, rows: Sequence[Tuple[str, str]], command: str,
                 routing: Optional[PathLike] = None, timing: Optional[PathLike] = None, tgt: str = "en",
                 title: str = "Results", notes: Optional[str] = None) -> str:
    """The Markdown page: ``rows`` are (name, description) of the systems (``<exp>/st_<name>``)."""
    exp, dump = Path(exp), Path(dump)
    head = (["System", "what differs"] + [f"{s} {m}" for s in ST_SETS for m in ("BLEU", "chrF")]
            + [f"WER {s}" for s in ASR_SETS])
    lines = [f"# {title}", "", "## ST (→ English) and ASR", "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    sig = ""
    for name, what in rows:
        cells = [name, what]
        for dset in ST_SETS:
            r = mix_scores(exp, name, dump, tgt) if dset == "mix_test" else _result(exp, name, "st", dset)
            sig = sig or str(r.get("bleu_signature", ""))
            cells += [_fmt(r.get("bleu")), _fmt(r.get("chrf"))]
        cells += [_fmt(_result(exp, name, "asr", dset).get("wer")) for dset in ASR_SETS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"BLEU: sacreBLEU `{sig}` (case-sensitive); chrF: sacreBLEU defaults; WER: jiwer, lower-cased, "
              "punctuation removed. `mix_test` = cs_test + es_test scored as one corpus.", ""]
    if routing is not None and Path(routing).is_file():
        table = json.loads(Path(routing).read_text(encoding="utf-8"))
        lines += ["## Routing (MoE projector, argmax routing on the test sets)", "",
                  "`route en`/`route es`: share of the frames labelled with that language (corpus spans at the "
                  "projector's frame rate, pauses left out) whose argmax group is that language's group; `entropy`: "
                  "mean group-router entropy in nats (ln 2 = 0.69: no preference); `load`: share of all frames per "
                  "expert (argmax group, then argmax expert in it; en experts first).", ""]
        lines += ["| System | set | frames | route en | route es | route all | entropy | load per expert |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, _ in rows:
            for dset, st in (table.get(f"st_{name}") or {}).items():
                if st is None:
                    lines.append(f"| {name} | {dset} | – | – | – | – | – | (no routing: not an MoE projector) |")
                    continue
                load = " / ".join(f"{st[k]:.2f}" for k in sorted((k for k in st if k.startswith("load_e")),
                                                                   key=lambda k: int(k[6:])))
                lines.append(f"| {name} | {dset} | {int(st['frames'])} | {_fmt(st.get('route_en'), 3)} | "
                             f"{_fmt(st.get('route_es'), 3)} | {_fmt(st.get('route_all'), 3)} | "
                             f"{_fmt(st.get('entropy'), 3)} | {load} |")
        lines.append("")
    if timing is not None and Path(timing).is_file():
        parts: Dict[str, float] = {}
        for line in Path(timing).read_text(encoding="utf-8").splitlines():
            f = line.split("\t")
            if len(f) == 2:
                parts[f[0]] = float(f[1])
        lines += ["## Wall time of each part (this run's last execution of each)", "", "| part | seconds |",
                  "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in parts.items()]
        lines += [f"| **total** | **{sum(parts.values()):.0f}** |", ""]
    if notes:
        lines += [notes.rstrip(), ""]
    lines += ["Reproduce:", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def write_results_page(out: PathLike, *args: object, **kwargs: object) -> str:
    """:func:`results_page` written atomically to ``out``; returns it."""
    page = results_page(*args, **kwargs)  # type: ignore[arg-type]
    with atomic_write(out) as f:
        f.write(page)
    return page
