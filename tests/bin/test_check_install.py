"""The install check on this installation: nothing missing, and ESPnet imports without typeguard 4's slow path."""
from __future__ import annotations

import subprocess
import sys

from salign.bin import check_install


def test_nothing_missing_and_nothing_slow():
    assert check_install.missing() == []
    assert check_install.warnings() == []  # tools/constraints.txt pins typeguard 2


def test_typeguard_still_checks_espnet_arguments():
    """typeguard 2 keeps ESPnet's @typechecked constructor checks (a wrong type fails at build time)."""
    code = ("from espnet2.asr.ctc import CTC\n"
            "try:\n    CTC(odim='ten', encoder_output_size=4)\nexcept TypeError as e:\n    print('TypeError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("TypeError") and "odim" in out
