"""Fixtures: tiny MuST-C-layout corpora with numpy-generated talk wavs, and a CLI runner."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import soundfile

from salign.utils.io import run_cli

# (offset, duration, speaker, wav, English, target) per segment; two talks, one of them with 2 speakers' worth
SEGMENTS: List[Tuple[float, float, str, str, str, str]] = [
    (0.5, 1.25, "spk.2", "ted_2.wav", "(Laughter) Hello, world!", "Hallo,   Welt!"),
    (2.0, 1.0, "spk.2", "ted_2.wav", "It's \"fine\" -- really.", "Es ist gut."),
    (0.25, 1.5, "spk.10", "ted_10.wav", "Thank you. (Applause)", "Danke schön."),
]
TALK_SECONDS = {"ted_2.wav": 3.5, "ted_10.wav": 2.0}


def write_wav(path: Path, seconds: float, sr: int = 16000, channels: int = 1) -> None:
    """Write a quiet sine wav."""
    t = np.arange(int(seconds * sr)) / sr
    x = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), x, sr, subtype="PCM_16")


def make_split(pair_dir: Path, split: str, tgt: str, segments: Sequence[tuple] = SEGMENTS,
               talk_seconds: Optional[Dict[str, float]] = None) -> Path:
    """Write ``pair_dir/data/<split>/{wav,txt}`` in MuST-C layout; return the txt dir."""
    txt = pair_dir / "data" / split / "txt"
    txt.mkdir(parents=True, exist_ok=True)
    for name, sec in (talk_seconds or TALK_SECONDS).items():
        write_wav(pair_dir / "data" / split / "wav" / name, sec)
    yml = "".join(f"- {{duration: {d}, offset: {o}, rw: {len(en.split())}, speaker_id: {s}, wav: {w}}}\n"
                  for o, d, s, w, en, _ in segments)
    (txt / f"{split}.yaml").write_text(yml, encoding="utf-8")
    (txt / f"{split}.en").write_text("".join(seg[4] + "\n" for seg in segments), encoding="utf-8")
    (txt / f"{split}.{tgt}").write_text("".join(seg[5] + "\n" for seg in segments), encoding="utf-8")
    return txt


@pytest.fixture
def mustc(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``mustc(tgt='de', splits=('train', 'dev'))`` builds ``tmp/mustc/en-<tgt>``; returns the root."""

    def build(tgt: str = "de", splits: Sequence[str] = ("train", "dev"), pair_dir: Optional[Path] = None) -> Path:
        root = tmp_path / "mustc"
        pdir = pair_dir or root / f"en-{tgt}"
        for split in splits:
            make_split(pdir, split, tgt)
        return root

    return build


def call(main: Callable, argv: Sequence[str], capsys) -> Tuple[int, str, str]:
    """Run a CLI ``main`` through ``run_cli``; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        run_cli(main, list(argv))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def cli(capsys) -> Callable[[Callable, Sequence[str]], Tuple[int, str, str]]:
    """``cli(main, argv) -> (exit code, stdout, stderr)`` through ``run_cli``."""
    return lambda main, argv: call(main, argv, capsys)


@pytest.fixture
def wav_writer() -> Callable[..., None]:
    """``wav_writer(path, seconds, sr=16000, channels=1)``."""
    return write_wav
