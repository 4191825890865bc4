"""The install check's code (salign/utils/install.py), on made-up requirements rather than this machine's."""
from __future__ import annotations

from salign.utils import install


def test_missing_names_each_requirement_and_its_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(install, "PY_MODULES", [("json", "never"), ("no_such_module_xyz", "pip install xyz")])
    monkeypatch.setattr(install, "COMMANDS", [("sh", "never"), ("no-such-command-xyz", "apt-get install xyz")])
    monkeypatch.setattr(install, "FILES", [(str(tmp_path), "never"), (str(tmp_path / "nope"), "mkdir it")])
    lines = install.missing()
    assert len(lines) == 3
    assert lines[0].startswith("python module 'no_such_module_xyz' unusable") and "fix: pip install xyz" in lines[0]
    assert "'no-such-command-xyz' not found; fix: apt-get install xyz" in lines[1]
    assert f"{tmp_path / 'nope'} not found; fix: mkdir it" == lines[2]
    monkeypatch.setattr(install, "warnings", lambda: [])
    assert install.report() == 1
    assert capsys.readouterr().out.count("MISSING") == 3


def test_report_all_clear(monkeypatch, capsys):
    monkeypatch.setattr(install, "missing", lambda: [])
    monkeypatch.setattr(install, "warnings", lambda: ["typeguard 4: slow"])
    assert install.report() == 0
    out = capsys.readouterr().out
    assert "SLOW: typeguard 4: slow" in out and "OK: torch" in out


def test_pretrained_models_reported_with_their_fix_but_not_an_error(monkeypatch, tmp_path, capsys):
    """``tools/install.sh --check`` says which catalog models are not fetched yet (and how), without failing."""
    monkeypatch.setenv("SALIGN_PRETRAINED", str(tmp_path))
    lines = install.pretrained()
    assert len(lines) >= 3 and all("not set up" in ln and "fix: tools/get_pretrained.sh " in ln for ln in lines)
    assert any(ln.startswith("whisper-tiny.en: ") for ln in lines)
    monkeypatch.setattr(install, "missing", lambda: [])
    monkeypatch.setattr(install, "warnings", lambda: [])
    assert install.report() == 0
    assert capsys.readouterr().out.count("PRETRAINED: ") == len(lines)
