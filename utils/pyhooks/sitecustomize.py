"""Put on PYTHONPATH by egs/TEMPLATE/path.sh: ESPnet's own entry points that a recipe runs (``--model_family
espnet``: espnet2.bin.st_train, espnet2.bin.st_inference) start without nltk's download attempts, as salign's tools
do (salign._g2p), and given a salign model's config they say in one line which tool reads it instead of a bare
TypeError (salign.utils.espnet_hint). A ``sitecustomize`` later on ``sys.path`` (the interpreter's own, if any) still
runs."""
import importlib.machinery
import importlib.util
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


try:
    from salign._g2p import defer_g2p_en
    from salign.utils.espnet_hint import install as install_hint
except ImportError:  # not salign's environment
    pass
else:
    defer_g2p_en()
    install_hint()
_chain()
