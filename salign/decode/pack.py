"""Packed models that work anywhere: every file a model's config names goes into the archive with it.

A trained model's ``config.yaml`` names files beside the model: the global CMVN stats (``normalize_conf.stats_file``),
token lists and BPE models (``token_list``, ``bpemodel``, ...), the speech-LLM's ``align_conf.layers_file`` and its
Hugging Face LM directory (``lm_conf.path``), any other existing path inside a ``*_conf`` section
(:func:`salign.utils.package.named_files`). ESPnet's ``pack`` stored only the config and the model file, so the
archive failed outside its recipe directory. :func:`pack_model`

* writes every named file (a directory with its files) into the archive under a relative name -- its path relative
  to the working directory (the recipe), or ``external/<name>`` for a path outside it -- and the config with those
  names (the archive's ``meta.yaml`` lists the config and model as ESPnet's does, so ``espnet_model_zoo`` unpacks it
  and rewrites the names to where it unpacked them: ``Speech2Text.from_pretrained("model.zip")``);
* checks the archive by loading it in a fresh process from an empty directory (:func:`verify_package`: unpacked
  there, the model built with its front end, normalisation, vocabulary and tokenisers), and only then renames it
  into place; a model that does not load from its archive alone is one line, and nothing is written.

An unpacked archive is a *package* (:mod:`salign.utils.package`): a model built from a config inside one reads the
package's own files, so ``salign.bin.st_inference --st_train_config <package>/exp/st/config.yaml`` works from any
directory.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from salign.utils.io import InputError, PathLike
from salign.utils.package import META, REQUIRED, dotted, named_files, set_key

__all__ = ["main", "pack_model", "verify_package"]

def _arcname(path: Path, taken: Dict[str, str]) -> str:
    """The archive name of ``path``: relative to the working directory when inside it, else ``external/<name>``
    (made unique)."""
    rel = os.path.normpath(path) if not path.is_absolute() else os.path.relpath(path)
    if rel.startswith(".." + os.sep) or rel == ".." or os.path.isabs(rel):
        rel, n = f"external/{path.name}", 1
        while rel in taken.values():
            n += 1
            rel = f"external/{n}_{path.name}"
    return Path(rel).as_posix()


def _metadata(files: Mapping[str, str], yaml_files: Mapping[str, str]) -> Dict[str, Any]:
    import espnet
    import torch

    from salign import __version__

    return {"files": dict(files), "yaml_files": dict(yaml_files), "python": sys.version,
            "torch": str(torch.__version__), "espnet": str(espnet.__version__), "salign": __version__}


def pack_model(yaml_files: Mapping[str, PathLike], files: Mapping[str, PathLike], option: Sequence[PathLike],
               outpath: PathLike, verify: bool = True) -> List[str]:
    """Write the archive ``outpath`` (ESPnet's layout: ``meta.yaml``, the configs, the model files, ``option``
    files) with every file each config names, the configs rewritten to their archive names; checked by
    :func:`verify_package` in a fresh process before it is renamed into place. Returns the archive's member names."""
    from espnet2.main_funcs.pack_funcs import Archiver

    out = Path(outpath)
    taken: Dict[str, str] = {}  # source path -> archive name
    sources: List[Tuple[str, Path]] = []
    configs: Dict[str, Dict[str, Any]] = {}

    def add(src: PathLike) -> str:
        key = os.path.realpath(src)
        if key not in taken:
            taken[key] = _arcname(Path(src), taken)
            sources.append((taken[key], Path(src)))
        return taken[key]

    meta_yaml = {k: add(v) for k, v in yaml_files.items()}
    meta_files = {k: add(v) for k, v in files.items()}
    for key, path in yaml_files.items():
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        for keypath, value in named_files(conf):
            if not Path(value).exists():
                why = REQUIRED.get(keypath[-1], "the training's config names it")
                raise InputError(f"{dotted(keypath)} names {value}, which does not exist", path,
                                 fix=f"run the packing in the recipe directory the model was trained in ({why})")
            set_key(conf, keypath, add(value))
        configs[meta_yaml[key]] = conf
    for path in option:
        add(path)
    members = [META]  # the archive's member names, in order
    tmp = out.with_name(f".{out.name.split('.')[0]}.partial{''.join(out.suffixes)}")  # the archiver reads the suffix
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".pack.", dir=out.parent) as staging, \
                contextlib.redirect_stdout(io.StringIO()), Archiver(tmp, mode="w") as archive:  # (it prints each file)
            data = yaml.safe_dump(_metadata(meta_files, meta_yaml), allow_unicode=True).encode()
            archive.addfile(archive.generate_info(META, len(data)), io.BytesIO(data))
            for name, src in sources:
                if name in configs:
                    staged = Path(staging) / f"{len(os.listdir(staging))}.yaml"
                    staged.write_text(yaml.safe_dump(configs[name], allow_unicode=True, sort_keys=False),
                                      encoding="utf-8")
                    src = staged
                # a directory's files one by one (the archiver's own recursion misnames them under an arcname)
                files = [(f, f"{name}/{f.relative_to(src).as_posix()}") for f in sorted(src.rglob("*"))
                         if f.is_file()] if src.is_dir() else [(src, name)]
                for f, arcname in files:
                    archive.add(str(f), arcname=arcname)
                    members.append(arcname)
        if verify:
            verify_package(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the archive ({exc.strerror or exc})", out,
                             fix="free disk space or make the directory writable, then re-run") from None
        raise
    return members


def verify_package(archive: PathLike, timeout: float = 600) -> None:
    """Load the packed model in a fresh Python process whose working directory is an empty temporary directory
    (:func:`_load_package` there); one line (:class:`InputError`) with what failed otherwise."""
    archive = Path(archive).resolve()
    with tempfile.TemporaryDirectory(prefix="salign_verify_") as empty:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this salign, not the working directory's
        proc = subprocess.run([sys.executable, "-m", "salign.decode.pack", str(archive)], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        said = next((ln.split("]: ", 1)[-1] for ln in lines if ln.startswith("ERROR [")), lines[-1] if lines else "")
        raise InputError(f"the packed model does not load on its own, from an empty directory ({said[:300]}); "
                         "nothing written", archive.parent,
                         fix="make every file its config names exist under the recipe directory, then pack again")


def _load_package(archive: Path) -> str:
    """Unpack ``archive`` here (plain extraction) and build its model as the decoder does: model, preprocessor,
    vocabulary and tokenisers. Returns a one-line summary."""
    import zipfile

    from salign.decode.loader import Vocab, is_llm_config, load_model, task_of

    with zipfile.ZipFile(archive) as z:
        z.extractall("package")
        with z.open(META) as f:
            meta = yaml.safe_load(f)
    root = Path("package")
    configs = [root / p for p in meta.get("yaml_files", {}).values()]
    models = [root / p for p in meta.get("files", {}).values()]
    if len(configs) != 1 or len(models) != 1:
        raise InputError(f"{META} lists {len(configs)} config(s) and {len(models)} model file(s), not one each",
                         archive, fix="pack one model with its config")
    model, train_args = load_model(str(configs[0]), str(models[0]))
    task_of(train_args).build_preprocess_fn(train_args, False)
    if not is_llm_config(str(configs[0])):
        Vocab.build(model, train_args)
    n = sum(p.numel() for p in model.parameters())
    return f"OK [pack]: {archive.name} loads on its own ({n} parameters)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m salign.decode.pack ARCHIVE``: :func:`_load_package` in the working directory (an empty one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise InputError("usage: python -m salign.decode.pack ARCHIVE (run in an empty directory)")
    print(_load_package(Path(args[0])))
    return 0


if __name__ == "__main__":
    from salign.utils.io import run_cli

    run_cli(main)
