"""Fisher Spanish-English preparation (salign.data.fisher, salign.bin.prep_fisher_cs) on a tiny fake LDC layout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salign.bin.prep_fisher_cs import main
from salign.data.fisher import classify, espnet_normalize, foreign_spans, read_tdf, strip_markup, tag_words
from salign.data.kaldi import read_table
from salign.utils.io import InputError

C1, C2, C3 = "20051009_182032_217_fsp", "20051010_212418_225_fsp", "20051017_215732_274_fsp"
HEADER = ("file;unicode\tchannel;int\tstart;float\tend;float\tspeaker;unicode\tspeakerType;unicode\t"
          "speakerDialect;unicode\ttranscript;unicode\tsection;int\tturn;int\tsegment;int\tsectionType;unicode\t"
          "suType;unicode\n;;MM sectionTypes\t[u'None', None]\n;;MM sectionBoundaries\t[0.0, 9999999.0]\n")
# (channel, start, end, transcript) per numbered .tdf line
TDF = {
    C1: [("0", "0.0", "1.5", "hola ¿cómo estás?"),
         ("1", "1.5", "2.3", "bien gracias"),
         ("1", "2.3", "3.1", "y tú"),
         ("0", "3.5", "3.5", "eh")],  # zero length: dropped
    C2: [("0", "0.509", "2.0", 'pero el <foreign lang="English"> weekend /foreign> fue muy bueno'),  # marked CS
         ("1", "2.0", "4.25", "yo trabajo en la school de mi hijo"),  # list word + in translation: CS
         ("0", "4.3", "6.0", "sí claro"),  # Spanish
         ("1", "6.0", "7.0", '<foreign lang="English"> oh my god </foreign>'),  # English only
         ("0", "7.0", "8.0", "la red es lenta"),  # 'red' is in both lists: neutral -> es
         ("1", "8.0", "9.0", "fue al mall")],  # 'mall' not in the translation: neutral -> es
    C3: [("0", "0.0", "1.0", "no sé"),
         ("0", "1.0", "2.0", "<laugh> bueno"),
         ("1", "2.0", "3.0", "(( ))"),
         ("1", "3.0", "4.0", "me gusta el rock and roll"),
         ("0", "4.0", "5.0", "[noise]")],  # empty transcript: dropped
}
MAPPING = {"train": [(C1, "1"), (C1, "2_3"), (C1, "4")],
           "dev": [(C2, str(i)) for i in range(1, 7)],
           "dev2": [(C3, "1"), (C3, "2")],
           "test": [(C3, "1_2"), (C3, "4"), (C3, "5")]}
EN = {"train": ["Hello, how are you?", "Fine thanks, and you?", "Uh."],
      "dev": ["But the weekend was very good.", "I work at my son's school.", "Yes, of course.", "Oh my God.",
              "The network is slow.", "He went to the store."],
      "dev2": ["I don't know.", "Well."],
      "test": ["I don't know. Well.", "I like rock and roll.", "Noise."]}
# corpus/ldc/fisher_test.es as build_fisher.sh writes it; 'pues' is not in the .tdf: shows the .es line is used
ES_TEST = ["No sé, pues bueno.", "me gusta el rock and roll", ""]


def make_layout(root: Path) -> dict:
    """A fake LDC2010S01 / LDC2010T04 / fisher-callhome-corpus layout under ``root``; return the CLI dirs."""
    speech = root / "LDC2010S01" / "data" / "speech"
    trans = root / "LDC2010T04" / "fisher_spa_tr" / "data" / "transcripts"
    tr = root / "fisher-callhome-corpus"
    for d in (speech, trans, tr / "mapping", tr / "corpus" / "ldc"):
        d.mkdir(parents=True)
    for call, rows in TDF.items():
        (speech / f"{call}.sph").write_bytes(b"NIST_1A\n   1024\n")  # never decoded
        body = "".join(f"{call}.sph\t{ch}\t{s}\t{e}\tspk\tfemale\tnative\t{t}\t0\t0\t-1\t\t\n" for ch, s, e, t in rows)
        (trans / f"{call}.tdf").write_text(HEADER + body, encoding="utf-8")
    for split, lines in MAPPING.items():
        (tr / "mapping" / f"fisher_{split}").write_text("".join(f"{c} {ids}\n" for c, ids in lines))
        ldc = tr / "corpus" / "ldc"
        if split == "train":
            (ldc / "fisher_train.en").write_text("\n".join(EN[split]) + "\n")
        else:
            for i in range(4):
                refs = EN[split] if i == 0 else [f"{t} r{i}" if t != "Noise." else t for t in EN[split]]
                (ldc / f"fisher_{split}.en.{i}").write_text("\n".join(refs) + "\n")
    (tr / "corpus" / "ldc" / "fisher_test.es").write_text("\n".join(ES_TEST) + "\n")
    return {"speech": root / "LDC2010S01", "trans": root / "LDC2010T04", "tr": tr}


def run(lay: dict, out: Path, *extra: str) -> int:
    return main(["--fisher_speech", str(lay["speech"]), "--fisher_trans", str(lay["trans"]),
                 "--translations", str(lay["tr"]), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fisher")
    lay = make_layout(root)
    out = root / "data"
    assert run(lay, out) == 0
    return lay, out


def uid(call, side, start, end):
    return f"{call}-{side}-{start:06d}-{end:06d}"


def test_joins_and_files(prepared):
    lay, out = prepared
    train = out / "train"
    assert sorted(p.name for p in train.iterdir()) == sorted(
        ["wav.scp", "segments", "utt2spk", "spk2utt", "reco2file_and_channel", "text", "text.src", "utt2lang"])
    text, src, segs = read_table(train / "text"), read_table(train / "text.src"), read_table(train / "segments")
    merged = uid(C1, "B", 150, 310)  # ids 2_3: first's side and start, last's end (concat_short_utt.py)
    assert list(text) == [uid(C1, "A", 0, 150), merged]  # line 4 (start == end) dropped
    assert text[uid(C1, "A", 0, 150)] == "Hello, how are you?"
    assert text[merged] == "Fine thanks, and you?" and src[merged] == "bien gracias y tú"
    assert src[uid(C1, "A", 0, 150)] == "hola cómo estás"
    assert segs[merged] == f"{C1}-B 1.50 3.10"
    assert read_table(train / "utt2spk")[merged] == f"{C1}-B"
    wav = read_table(train / "wav.scp")
    sph = (lay["speech"] / "data" / "speech" / f"{C1}.sph").resolve()
    assert wav[f"{C1}-A"].endswith(f"{sph} -t wav -e signed-integer -b 16 - remix 1 |") or \
        wav[f"{C1}-A"].endswith(f"-f wav -p -c 1 {sph} |")
    assert ("remix 2" in wav[f"{C1}-B"]) or ("-c 2" in wav[f"{C1}-B"])
    assert read_table(train / "reco2file_and_channel")[f"{C1}-B"] == f"{C1} B"
    dev = read_table(out / "dev" / "text")
    assert dev[uid(C2, "A", 50, 200)] == "But the weekend was very good."  # 0.509 s -> 50 cs (truncated)
    assert read_table(out / "dev" / "segments")[uid(C2, "A", 50, 200)] == f"{C2}-A 0.50 2.00"
    assert read_table(out / "dev" / "text.src")[uid(C2, "A", 50, 200)] == "pero el weekend fue muy bueno"
    assert read_table(out / "dev" / "text.en.2")[uid(C2, "B", 200, 425)] == "I work at my son's school. r2"
    assert read_table(out / "dev" / "text.en.0") == dev
    # test: .es file used; ids 1_2 merged, line 3 skipped by the mapping, line 5 empty -> dropped
    test_src = read_table(out / "test" / "text.src")
    assert test_src == {uid(C3, "A", 0, 200): "no sé pues bueno", uid(C3, "B", 300, 400): "me gusta el rock and roll"}
    assert read_table(out / "test" / "text")[uid(C3, "A", 0, 200)] == "I don't know. Well."
    # dev2 (no .es file): rebuilt from the .tdf with strip_markup, '<laugh>' gone
    assert read_table(out / "dev2" / "text.src")[uid(C3, "A", 100, 200)] == "bueno"
    summary = json.loads((out / "fisher_cs_summary.json").read_text())
    assert summary["dropped"]["train"]["zero_length"] == 1 and summary["dropped"]["test"]["empty_text"] == 1


def test_cs_classification(prepared):
    _, out = prepared
    lang = read_table(out / "dev" / "utt2lang")
    assert lang == {uid(C2, "A", 50, 200): "cs", uid(C2, "B", 200, 425): "cs", uid(C2, "A", 430, 600): "es",
                    uid(C2, "B", 600, 700): "en", uid(C2, "A", 700, 800): "es", uid(C2, "B", 800, 900): "es"}
    assert set(read_table(out / "dev_cs" / "text")) == {uid(C2, "A", 50, 200), uid(C2, "B", 200, 425)}
    assert len(read_table(out / "dev_mono" / "text")) == 4 and len(read_table(out / "dev_mix" / "text")) == 6
    assert read_table(out / "test" / "utt2lang")[uid(C3, "B", 300, 400)] == "cs"  # rock, and
    assert not (out / "dev2_cs").exists()  # no CS utterance in dev2: not written, counted as 0
    s = json.loads((out / "fisher_cs_summary.json").read_text())["sets"]
    assert s["dev_cs"]["utterances"] == 2 and s["dev_mono"] == {**s["dev_mono"], "es": 3, "en": 1}
    assert s["dev2_cs"]["utterances"] == 0 and "train_cs" not in s


def test_word_rule_units():
    words = "yo trabajo en la school de mi hijo".split()
    assert tag_words(words, (), {"school", "i", "work"}) == ["es", "es", "es", "es", "en", "es", "es", "es"]
    assert tag_words(words, (), {"i", "work"})[4] == "-"  # not carried into the translation: neutral
    assert tag_words(words, (), None, use_translation=False)[4] == "en"
    assert tag_words(["okay", "no", "123"], ()) == ["-", "-", "-"]
    assert tag_words(["oh", "my", "god"], ["oh", "my", "god"]) == ["en", "en", "en"]
    assert classify(["en", "es"], 1) == "cs" and classify(["en", "es", "es"], 2) == "es"
    assert classify(["en", "en", "es"], 2) == "en" and classify(["-"], 1) == "es"
    assert strip_markup("(( hola )) <laugh> {x} [ruido] a+b/c#") == "hola abc"
    assert foreign_spans('es <foreign lang="English"> Hip Hop </foreign> y <foreign lang="French">oui</foreign>') \
        == [("english", ["hip", "hop"]), ("french", ["oui"])]
    assert foreign_spans('a <foreign lan="English"> my  /foreign> b') == [("english", ["my"])]  # slips fixed
    assert foreign_spans('a <foreign lang="English"> open to the end') == [("english", ["open", "to", "the", "end"])]
    assert foreign_spans('<foreign lang="English"> (( )) </foreign> nada') == []  # no word: no span
    assert tag_words(["oui", "sí"], (), None, marked_other=["oui"]) == ["-", "es"]
    assert espnet_normalize("Oh, she/he said [noise] hi") == "Oh, she said hi"


def test_min_words_and_translation_option(tmp_path):
    lay = make_layout(tmp_path)
    assert run(lay, tmp_path / "d2", "--splits", "dev", "--min_words", "2") == 0
    lang = read_table(tmp_path / "d2" / "dev" / "utt2lang")
    assert "cs" not in lang.values()  # every CS line there has a single English word
    assert not (tmp_path / "d2" / "train").exists()
    assert run(lay, tmp_path / "d3", "--splits", "dev", "--use_translation", "false") == 0
    assert read_table(tmp_path / "d3" / "dev" / "utt2lang")[uid(C2, "B", 800, 900)] == "cs"  # 'mall'
    assert run(lay, tmp_path / "d4", "--splits", "dev", "--rule", "tags") == 0  # Weller et al. 2022: any span
    assert set(read_table(tmp_path / "d4" / "dev_cs" / "text")) == {uid(C2, "A", 50, 200), uid(C2, "B", 600, 700)}
    assert json.loads((tmp_path / "d4" / "fisher_cs_summary.json").read_text())["rule"] == "tags"


def test_cs_list_and_idempotence(tmp_path, capsys):
    lay = make_layout(tmp_path)
    lst = tmp_path / "cs.txt"
    lst.write_text(f"# chosen by hand\n{uid(C2, 'A', 430, 600)}\n{uid(C1, 'A', 350, 350)}\n")  # 2nd: a dropped utt
    out = tmp_path / "data"
    assert run(lay, out, "--cs_list", str(lst)) == 0
    assert set(read_table(out / "dev_cs" / "utt2lang")) == {uid(C2, "A", 430, 600)}
    assert read_table(out / "dev" / "utt2lang")[uid(C2, "B", 600, 700)] == "en"
    assert json.loads((out / "fisher_cs_summary.json").read_text())["rule"] == "cs_list"
    mtime = (out / "dev" / "text").stat().st_mtime_ns
    capsys.readouterr()
    assert run(lay, out, "--cs_list", str(lst)) == 0
    assert "up to date" in capsys.readouterr().out and (out / "dev" / "text").stat().st_mtime_ns == mtime
    lst.write_text("20051010_212418_225_fsp-A-000000-000001\n")
    with pytest.raises(InputError, match=r"cs.txt:1: utterance id .* is not in splits"):
        run(lay, out, "--cs_list", str(lst))
    assert (out / "dev" / "text").stat().st_mtime_ns == mtime  # nothing written


def test_errors(tmp_path, monkeypatch):
    lay = make_layout(tmp_path)
    out = tmp_path / "data"
    with pytest.raises(InputError, match="speech dir not found.*LDC2010S01"):
        main(["--fisher_speech", str(tmp_path / "nope"), "--fisher_trans", str(lay["trans"]),
              "--translations", str(lay["tr"]), "--out", str(out)])
    with pytest.raises(InputError, match="transcripts dir not found.*LDC2010T04"):
        main(["--fisher_speech", str(lay["speech"]), "--fisher_trans", str(tmp_path / "nope"),
              "--translations", str(lay["tr"]), "--out", str(out)])
    mapping = lay["tr"] / "mapping" / "fisher_dev"
    mapping.write_text(mapping.read_text() + f"{C2} 5_99\n")
    (lay["tr"] / "corpus" / "ldc" / "fisher_dev.en.0").write_text("\n".join(EN["dev"] + ["x"]) + "\n")
    with pytest.raises(InputError, match=r"fisher_dev.en.1: 6 lines, but fisher_dev has 7"):
        run(lay, out)
    for i in (1, 2, 3):
        (lay["tr"] / "corpus" / "ldc" / f"fisher_dev.en.{i}").write_text("\n".join(EN["dev"] + ["x"]) + "\n")
    with pytest.raises(InputError, match=rf"fisher_dev:7: segment {C2} 99 not found"):
        run(lay, out)
    assert not out.exists()  # validated before writing
    (lay["trans"] / "fisher_spa_tr" / "data" / "transcripts" / f"{C3}.tdf").unlink()
    with pytest.raises(InputError, match=rf"no transcript {C3}.tdf .*LDC2010T04"):
        run(lay, out, "--splits", "test")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InputError, match="sph2pipe or sox not found on PATH"):
        run(lay, out, "--splits", "train")


def test_cli_one_line_error(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "salign.bin.prep_fisher_cs", "--fisher_speech", str(tmp_path / "x"),
                        "--fisher_trans", str(tmp_path), "--translations", str(tmp_path), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert p.stderr.startswith("ERROR [prep_fisher_cs]:") and "LDC2010S01" in p.stderr


def test_read_tdf_numbering(tmp_path):
    p = tmp_path / f"{C1}.tdf"
    p.write_text(HEADER + f"{C1}.sph\t1\t0.909856781803\t1.15\ts\tmale\tnative\thola\t0\t0\t-1\nshort line\n",
                 encoding="utf-8")
    segs = read_tdf(p)
    assert len(segs) == 2 and segs[1] is None
    assert segs[0].seg_id == f"{C1}-B-000090-000114"  # int(t * 100) as sprintf("%06d"): 1.15 * 100 = 114.99...


def test_recipe_stage0(tmp_path):
    lay = make_layout(tmp_path)
    run_sh = Path(__file__).resolve().parents[2] / "egs" / "fisher_cs" / "run.sh"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["--fisher_speech", str(lay["speech"]), "--fisher_trans", str(lay["trans"]), "--translations",
            str(lay["tr"]), "--out", str(tmp_path / "data"), "--splits", "dev", "--min_words", "1"]
    p = subprocess.run(["bash", str(run_sh), *args], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "data" / "dev_cs" / "utt2lang").is_file()
    p = subprocess.run(["bash", str(run_sh)], capture_output=True, text=True,
                       env={k: v for k, v in env.items() if not k.startswith("FISHER_")})
    assert p.returncode == 2 and "--fisher_speech not given" in p.stderr and "LDC2010S01" in p.stderr
