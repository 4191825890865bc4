"""Pack a trained model like ``espnet2.bin.pack`` (same sub-commands and options), with every file its config names.

Usage (the recipe's stage 14)::

    python -m salign.bin.pack st --st_train_config exp/st/config.yaml --st_model_file exp/st/valid.acc.ave.pth \\
        --option data/token_list/joint/bpe.model --option exp/st/RESULTS.md --outpath exp/st/packed/model.zip

Run it in the recipe directory. ``espnet2.bin.pack`` packs a truncated model file without a word, ends in a traceback
for a missing one, and stores only the config and the model: the CMVN stats, token lists, BPE models and a
speech-LLM's layers file or LM directory that the config names stay behind, so the archive fails anywhere else.
Here every input is checked first, one line each (:func:`salign.utils.checkpoint.check_model_file` reads the whole
model file, so damage anywhere in it is found); every file the config names goes into the archive under a relative
name, the config rewritten to it; and the archive is loaded in a fresh process from an empty directory before it is
renamed into place (:func:`salign.decode.pack.pack_model`). Decode it anywhere::

    unzip model.zip -d m && python -m salign.bin.st_inference --st_train_config m/exp/st/config.yaml \\
        --st_model_file m/exp/st/valid.acc.ave.pth --data_path_and_name_and_type feats.scp,speech,kaldi_ark ...

or with ESPnet's ``Speech2Text.from_pretrained("model.zip")`` (``espnet_model_zoo``; S-Align models after
``salign.tasks.st.register_with_espnet()``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from salign.utils.io import InputError, run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check the files to pack, then :func:`salign.decode.pack.pack_model` (archive checked, then renamed)."""
    from espnet2.bin.pack import get_parser

    from salign.decode.pack import pack_model
    from salign.utils.checkpoint import check_model_file

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
    names = pack_model(yaml_files, files, args.option, args.outpath)
    print(f"Generate: {args.outpath} ({len(names)} files; loads on its own from an empty directory)", file=sys.stdout)
    return 0


if __name__ == "__main__":
    run_cli(main)
