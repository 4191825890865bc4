"""Feature extraction speed: salign's Kaldi fbank vs ESPnet's raw-wave front end, on one core.

Same synthetic 16 kHz waves for both; prints audio seconds per wall second (per core: one thread each), medians over
``--repeats`` runs, and the ratio. Peers:

* ``salign compute_fbank``: :func:`salign.feats.fbank.compute_fbank` per utterance (vectorised torch Kaldi fbank,
  80 bins), and with ``backend="knf"`` (kaldi-native-fbank frame by frame, the previous implementation);
* ``salign make_fbank CLI``: ``python -m salign.bin.make_fbank`` on a Kaldi data dir, reading the wavs and writing
  the ark/scp (process start included; one job);
* ``ESPnet DefaultFrontend``: ``espnet2.asr.frontend.default.DefaultFrontend(fs=16000, n_mels=80)`` (STFT + log-mel)
  per utterance, and in padded batches of 16;
* reference only: ``torchaudio.compliance.kaldi.fbank`` (same Kaldi features, computed with batched torch ops).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SR = 16000


def make_waves(n: int, seed: int = 0) -> List[np.ndarray]:
    """``n`` waves of 2-10 s: a few harmonics with a drifting pitch plus noise, float32 in [-1, 1]."""
    rng = np.random.RandomState(seed)
    waves = []
    for _ in range(n):
        t = np.arange(int(rng.uniform(2, 10) * SR)) / SR
        f0 = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.1 + 0.02 * rng.randn(t.size)
        waves.append(x.astype(np.float32))
    return waves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_utts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "salign_bench_feats")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import soundfile as sf
    import torch
    from espnet2.asr.frontend.default import DefaultFrontend

    from salign.feats.fbank import compute_fbank

    torch.set_num_threads(1)
    waves = make_waves(args.n_utts)
    audio_s = sum(w.size for w in waves) / SR
    frontend = DefaultFrontend(fs=SR, n_mels=80).eval()

    def ours() -> None:
        for w in waves:
            compute_fbank(w, SR)

    def ours_knf() -> None:
        for w in waves:
            compute_fbank(w, SR, backend="knf")

    @torch.no_grad()
    def espnet_single() -> None:
        for w in waves:
            x = torch.from_numpy(w)[None]
            frontend(x, torch.tensor([x.size(1)]))

    order = sorted(range(len(waves)), key=lambda i: -waves[i].size)
    batches = [order[i: i + 16] for i in range(0, len(order), 16)]

    @torch.no_grad()
    def espnet_batched() -> None:
        for b in batches:
            xs = [torch.from_numpy(waves[i]) for i in b]
            x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
            frontend(x, torch.tensor([v.numel() for v in xs]))

    # the CLI on a Kaldi data dir
    data, out = args.workdir / "data", args.workdir / "fbank"
    (data / "wav").mkdir(parents=True, exist_ok=True)
    with open(data / "wav.scp", "w") as scp:
        for i, w in enumerate(waves):
            path = data / "wav" / f"u{i:04d}.wav"
            sf.write(path, w, SR, subtype="PCM_16")
            scp.write(f"u{i:04d} {path}\n")

    def cli() -> None:
        subprocess.run(["rm", "-rf", str(out)], check=True)
        subprocess.run([sys.executable, "-m", "salign.bin.make_fbank", "--data", str(data), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=common.REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))

    import torchaudio.compliance.kaldi as ta_kaldi

    @torch.no_grad()
    def torchaudio_kaldi() -> None:  # reference only: a vectorised (framewise-batched) Kaldi fbank
        for w in waves:
            ta_kaldi.fbank(torch.from_numpy(w)[None] * 32768, num_mel_bins=80, dither=0.0, energy_floor=0.0)

    ours()  # warm-up
    espnet_single()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import salign.bin.make_fbank"], check=True)
    startup = time.perf_counter() - t0
    runs = {"salign compute_fbank": ours, "salign compute_fbank (backend=knf)": ours_knf, "salign make_fbank CLI": cli,
            "ESPnet DefaultFrontend (1 utt)": espnet_single, "ESPnet DefaultFrontend (batch 16)": espnet_batched,
            "reference: torchaudio kaldi.fbank": torchaudio_kaldi}
    times = {name: common.med(common.median_time(fn, args.repeats)) for name, fn in runs.items()}
    peer = times["ESPnet DefaultFrontend (1 utt)"]
    best_peer = min(peer, times["ESPnet DefaultFrontend (batch 16)"])
    print(f"# machine: {common.machine()}\n# {len(waves)} waves, {audio_s:.0f} s of 16 kHz audio, 1 thread, "
          f"median of {args.repeats}; CLI process start-up (import only): {startup:.2f} s")
    rows = [[name, f"{t:.3f}", f"{audio_s / t:.0f}", f"{peer / t:.2f}x", f"{best_peer / t:.2f}x"]
            for name, t in times.items()]
    print(common.table(rows, ["extractor", "wall s", "audio s / wall s / core", "vs ESPnet 1 utt",
                              "vs ESPnet best"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": common.machine(), "audio_s": audio_s, "times": times,
                                         "cli_startup_s": startup}, indent=1))


if __name__ == "__main__":
    main()
