"""docs/fidelity.md cites symbols, not lines: every ``path:symbol`` on the page must resolve in this checkout, so the
table cannot drift silently when code moves. Python: the module's object (``Class.method`` too); shell: a function
defined in the script; YAML: a key path."""
from __future__ import annotations

import importlib
import re
from typing import List, Tuple

import pytest
import yaml

from tests.conftest import REPO

DOC = REPO / "docs" / "fidelity.md"
CITATION = re.compile(r"`([\w./-]+\.(?:py|sh|yaml)):([\w.]+)`")


def citations(text: str) -> List[Tuple[str, str]]:
    """The ``(path, symbol)`` pairs cited in backquotes."""
    return CITATION.findall(text)


def resolve(path: str, symbol: str) -> bool:
    """Whether ``symbol`` exists in the repository file ``path``."""
    file = REPO / path
    if not file.is_file():
        return False
    if path.endswith(".py"):
        obj = importlib.import_module(path[: -len(".py")].replace("/", "."))
        for part in symbol.split("."):
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    if path.endswith(".sh"):
        return re.search(rf"^\s*{re.escape(symbol)}\s*\(\)\s*\{{", file.read_text(), re.M) is not None
    node = yaml.safe_load(file.read_text())
    for part in symbol.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def table_rows(text: str) -> List[List[str]]:
    """The cells of the element table (after its header and separator lines)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[1:]]


def test_every_cited_symbol_resolves():
    text = DOC.read_text()
    cited = citations(text)
    assert len(cited) > 40, "the page cites its symbols as `path:symbol`"
    missing = [f"{p}:{s}" for p, s in cited if not resolve(p, s)]
    assert not missing, f"docs/fidelity.md cites what this checkout does not have: {missing}"


def test_every_table_row_cites_a_symbol_and_no_line_numbers():
    text = DOC.read_text()
    rows = table_rows(text)
    assert len(rows) > 25 and all(len(r) == 5 for r in rows), [r[0] for r in rows if len(r) != 5]
    assert all(citations(r[3]) for r in rows), [r[0] for r in rows if not citations(r[3])]
    assert not re.search(r"\.(py|sh|yaml):\d", text), "cite symbols, not file:line"


def test_the_page_stands_alone_and_states_the_derived_setting():
    """No reference to a spec outside the repository; the official adversarial scale it states is the code's."""
    from salign.losses.adversarial import ADV_GRAD_SCALES, OFFICIAL_LOSS_SCALE, OFFICIAL_SENTENCES_PER_GPU

    text = DOC.read_text()
    assert ".." + "/shared" not in text and "method.md" not in text
    assert f"1/{round(1 / ADV_GRAD_SCALES['official'])}" in text
    assert f"S = {OFFICIAL_LOSS_SCALE:g}" in text and f"B = 150 / 8 = {OFFICIAL_SENTENCES_PER_GPU:g}" in text


@pytest.mark.parametrize("path,symbol,ok", [
    ("salign/losses/adversarial.py", "AdversarialAlign.discriminator_loss", True),
    ("salign/losses/adversarial.py", "AdversarialAlign.no_such_loss", False),
    ("egs/TEMPLATE/st_lib.sh", "train_job", True),
    ("egs/TEMPLATE/st_lib.sh", "no_such_function", False),
    ("conf/train_st_salign.yaml", "align_conf.lambda_max", True),
    ("conf/train_st_salign.yaml", "align_conf.lambda_maximum", False),
    ("salign/no_such_file.py", "x", False),
])
def test_the_resolver_tells_a_symbol_from_a_stranger(path, symbol, ok):
    assert resolve(path, symbol) is ok
