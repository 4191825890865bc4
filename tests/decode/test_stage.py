"""The decoding stage (``st_inference --decode_sets ... --job J`` / ``--merge``): jobs, merge and stamps on the tiny
trained model: the merged files are those of one decode per set and task, a fresh stamp skips, a changed model
decodes again."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import pytest

pytestmark = pytest.mark.slow
TASKS = ("st", "mt", "asr")


@pytest.fixture()
def layout(tmp_path, tiny_data, model_dir) -> Dict[str, Path]:
    """A recipe's dump/filtered/<set>/{feats.scp,text.en} for two sets and an exp dir with the model."""
    dump, exp = tmp_path / "dump", tmp_path / "exp"
    lines = (tiny_data / "feats.scp").read_text().splitlines()
    texts = (tiny_data / "src_text").read_text().splitlines()
    for dset, part in (("tst", slice(0, 7)), ("sub", slice(7, None))):
        (dump / dset).mkdir(parents=True)
        (dump / dset / "feats.scp").write_text("\n".join(lines[part]) + "\n")
        (dump / dset / "text.en").write_text("\n".join(texts[part]) + "\n")
    exp.mkdir()
    for name in ("config.yaml", "valid.acc.ave.pth"):
        shutil.copy(model_dir / name, exp / name)
    return {"dump": dump, "exp": exp, "tmp": tmp_path}


def common(layout: Dict[str, Path]) -> List[str]:
    exp = layout["exp"]
    return ["--st_train_config", str(exp / "config.yaml"), "--st_model_file", str(exp / "valid.acc.ave.pth"),
            "--beam_size", "3", "--ngpu", "0", "--batch_size", "2"]


def stage(layout: Dict[str, Path], nj: int) -> List[str]:
    return common(layout) + ["--decode_sets", "tst sub", "--tasks", " ".join(TASKS), "--dump_dir",
                             str(layout["dump"]), "--exp_dir", str(layout["exp"]), "--nj", str(nj),
                             "--decode_options", "--nbest 2", "--mt_options", "--maxlenratio 2.0"]


def table(path: Path) -> Dict[str, str]:
    return dict((ln.split(" ", 1) + [""])[:2] for ln in path.read_text().splitlines())


def test_jobs_and_merge_write_the_files_of_one_decode_then_skip(layout, capsys):
    from salign.bin.st_inference import main

    args = stage(layout, 3)
    for job in (1, 2, 3):
        main(args + ["--job", str(job)])
    assert not list(layout["exp"].glob("decode_*/.stamp"))  # no stamp before the merge
    main(args + ["--merge"])
    for dset in ("tst", "sub"):
        for task in TASKS:
            data = f"{layout['dump']}/{dset}/" + ("text.en,src_text,text" if task == "mt" else
                                                   "feats.scp,speech,kaldi_ark")
            ref = layout["tmp"] / "ref" / task / dset
            main(common(layout) + ["--task", task, "--data_path_and_name_and_type", data, "--output_dir", str(ref),
                                   "--nbest", "2"] + (["--maxlenratio", "2.0"] if task == "mt" else []))
            got = layout["exp"] / f"decode_{task}_{dset}"
            assert (got / ".stamp").is_file()
            for n in ("1best_recog", "2best_recog") if task != "asr" else ("1best_recog",):
                for name in ("text", "token", "token_int"):
                    assert table(got / n / name) == table(ref / n / name), (task, dset, n, name)
                a, b = table(got / n / "score"), table(ref / n / "score")
                assert a.keys() == b.keys() and max(abs(float(a[k]) - float(b[k])) for k in a) < 1e-4
    capsys.readouterr()
    main(args + ["--merge"])
    out = capsys.readouterr().out
    assert out.count("is up to date") == 6, out


def test_a_changed_model_decodes_again_and_a_stale_job_is_refused(layout, capsys):
    import torch

    from salign.bin.st_inference import main
    from salign.utils.io import InputError

    args = stage(layout, 1) + ["--decode_sets", "sub", "--tasks", "mt"]
    main(args + ["--job", "1"])
    main(args + ["--merge"])
    model = layout["exp"] / "valid.acc.ave.pth"
    state = torch.load(model, map_location="cpu")
    key = next(k for k in state if k.startswith("decoder."))
    state[key] = state[key] + 0.5
    torch.save(state, model)
    capsys.readouterr()
    with pytest.raises(InputError, match="another model, data or options"):
        main(args + ["--merge"])  # the job's outputs are those of the old model
    main(args + ["--job", "1"])
    assert f"input {model} changed" in capsys.readouterr().err
    main(args + ["--merge"])
    assert f"utterances decoded (input {model} changed)" in capsys.readouterr().out
