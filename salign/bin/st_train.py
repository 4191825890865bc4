"""Train the S-Align model with ESPnet's trainer: ``python -m salign.bin.st_train --config conf.yaml ...``.

Accepts every ``espnet2.bin.st_train`` option plus ``--text_encoder``, ``--align`` and ``--init_from_mt``; run with
``--print_config`` to list every knob with its default.
"""
from salign.tasks.st import main

if __name__ == "__main__":
    main()
