"""The repository stands alone (issue 22, item 11): a user has the checkout and nothing beside it.

* no tracked file (README, docs/, conf/, code, tools/, recipes) refers to a folder outside the repository
  (``../shared``, the development notes' folder users never have);
* every ``docs/<name>.md`` that a tracked file names exists in the repository.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, List

from tests.conftest import REPO

OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b")
DOC = re.compile(r"(?<![\w./-])docs/([\w.-]+\.md)")


def tracked_texts() -> Dict[str, str]:
    """Every tracked text file (binary ones left out): path -> content."""
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    out: Dict[str, str] = {}
    for name in names:
        try:
            out[name] = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
    return out


def test_nothing_points_outside_the_repository():
    me = Path(__file__).relative_to(REPO).as_posix()
    found: List[str] = [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                        for name, text in tracked_texts().items() if name != me for m in OUTSIDE.finditer(text)]
    assert not found, found


def test_every_doc_page_named_is_in_the_repository():
    missing = sorted({f"docs/{m.group(1)} (named in {name})" for name, text in tracked_texts().items()
                      for m in DOC.finditer(text) if not (REPO / "docs" / m.group(1)).is_file()})
    assert not missing, missing
    for page in ("mini-mustc.md", "method.md", "platform.md"):  # what the README and the code send users to
        assert (REPO / "docs" / page).is_file(), page
