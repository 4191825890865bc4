"""Pack a trained model like ``espnet2.bin.pack`` (same sub-commands and options), after checking its inputs.

Usage (the recipe's stage 14)::

    python -m salign.bin.pack st --st_train_config exp/st/config.yaml --st_model_file exp/st/valid.acc.ave.pth \\
        --option data/bpe/bpe.model --option RESULTS.md --outpath exp/st/packed/model.zip

``espnet2.bin.pack`` packs a truncated model file without a word and ends in a traceback for a missing one. Here
every input is checked first, one line each (:func:`salign.decode.loader.check_model_file` reads the whole model
file, so damage anywhere in it is found), and the archive is written under a temporary name and renamed into place
only when complete.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Optional, Sequence

from salign.utils.io import InputError, run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the files to pack, then ``espnet2.main_funcs.pack_funcs.pack`` into a temporary archive, renamed."""
    from espnet2.bin.pack import get_parser
    from espnet2.main_funcs.pack_funcs import pack

    from salign.decode.loader import check_model_file

    parser = get_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "contents"):
        raise InputError("no task given", fix="e.g. python -m salign.bin.pack st --st_train_config ... "
                                              "--st_model_file ... --outpath model.zip")
    yaml_files = {y: getattr(args, y) for y in args.contents.yaml_files if getattr(args, y) is not None}
    files = {y: getattr(args, y) for y in args.contents.files if getattr(args, y) is not None}
    for key, path in yaml_files.items():
        if not Path(path).is_file():
            raise InputError(f"no such file (given as --{key})", path,
                             fix="re-run training (stage 11): it writes config.yaml next to the model")
    for key, path in files.items():
        if key.endswith("model_file"):
            check_model_file(path, f"--{key}", deep=True)
        elif not Path(path).is_file():
            raise InputError(f"no such file (given as --{key})", path, fix="re-run the stage that writes it")
    for path in args.option:
        if not Path(path).exists():
            raise InputError("no such file (given as --option)", path,
                             fix="re-run the stage that writes it (BPE model: stage 5; RESULTS.md: stage 13)")
    out = Path(args.outpath)
    tmp = out.with_name(f".{out.name.split('.')[0]}.partial{''.join(out.suffixes)}")  # the archiver reads the suffix
    try:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            pack(yaml_files=yaml_files, files=files, option=args.option, outpath=tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the archive ({exc.strerror or exc})", out,
                             fix="free disk space or make the directory writable, then re-run") from None
        raise
    print(said.getvalue().replace(str(tmp), str(out)), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
