"""ESPnet's import of g2p_en (and nltk's data downloads) is deferred to a G2P's first use (salign._g2p): tools start
without ``[nltk_data]`` lines or a network attempt; a g2p that needs the data still fails with nltk's own message."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: any connection attempt is reported on stderr and refused
NO_NET = """\
import socket, sys
def _deny(*a, **k):
    sys.stderr.write("NETWORK ATTEMPT\\n")
    raise OSError("network disabled by the test")
socket.getaddrinfo = _deny
socket.create_connection = _deny
socket.socket.connect = _deny
"""


def python(code: str, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", NO_NET + code], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300)


def test_espnet_tokenizers_import_without_nltk_downloads():
    proc = python("import salign, espnet2.text.phoneme_tokenizer as t\n"
                  "print(type(t.g2p_en).__name__, 'nltk.downloader' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_Deferred", "False"]
    assert "nltk" not in proc.stderr and "NETWORK" not in proc.stderr


def test_st_train_help_prints_no_nltk_lines_and_opens_no_connection():
    proc = python("import runpy\nsys.argv = ['st_train', '--help']\n"
                  "runpy.run_module('salign.bin.st_train', run_name='__main__', alter_sys=True)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--align_conf" in proc.stdout
    out = proc.stdout + proc.stderr
    assert "nltk" not in out and "NETWORK ATTEMPT" not in out


def test_espnet_entry_points_under_the_recipe_path_are_quiet_too():
    """egs/TEMPLATE/path.sh puts utils/pyhooks on PYTHONPATH: ESPnet's own tools (the stock-ESPnet row) defer it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "utils" / "pyhooks")
    proc = python("import espnet2.text.phoneme_tokenizer as t\nprint(type(t.g2p_en).__name__)", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_Deferred"] and "nltk" not in proc.stderr
    assert "utils/pyhooks" in (REPO / "egs" / "TEMPLATE" / "path.sh").read_text()


def test_a_g2p_that_needs_the_data_still_fails_clearly():
    nltk = pytest.importorskip("nltk")
    try:
        nltk.data.find("corpora/cmudict.zip")
        pytest.skip("nltk's cmudict is installed here: the G2P works")
    except LookupError:
        pass
    proc = python("import salign\nfrom espnet2.text.phoneme_tokenizer import PhonemeTokenizer\n"
                  "PhonemeTokenizer('g2p_en').text2tokens('hello world')")
    assert proc.returncode != 0
    assert "LookupError" in proc.stderr and "nltk.download('cmudict')" in proc.stderr, proc.stderr[-2000:]


def test_the_stand_in_loads_the_real_module_on_first_use():
    proc = python("import salign, g2p_en\nstand_in = g2p_en\nassert stand_in.__file__ and 'nltk' not in sys.modules\n"
                  "try:\n    stand_in.G2p\nexcept Exception:\n    pass\n"
                  "print(type(sys.modules['g2p_en']).__name__, 'g2p_en.g2p' in sys.modules)")
    assert proc.stdout.split() == ["module", "True"], proc.stderr[-2000:]
