"""Training cost: the S-Align model vs ESPnet's stock ``ESPnetSTModel`` with the equivalent layers, same batches.

The ESPnet model is derived from the S-Align config: the same acoustic encoder (``encoder``), the S-Align textual
encoder as ESPnet's ``hier_encoder`` on top of it (ST path), the same decoder, ASR CTC on the acoustic encoder
(``mtlalpha: 1``), MT through an ``extra_mt_encoder`` of the textual encoder's shape into the shared decoder,
``asr_weight: 0.3``, ``mt_weight: 0.5``; SpecAugment/normalisation as in the S-Align config. S-Align adds the CTC
shrink, the shared T-enc for text and its alignment module. Each model trains in its own process (forward, backward,
Adam step) on identical synthetic batches; prints the median step time and peak memory (max RSS, and its growth
during the steps; ``torch.cuda.max_memory_allocated`` on a GPU), and the S-Align / ESPnet ratios.

    python benchmarks/bench_train.py                                  # d=256, 6+6+6 layers (benchmarks/conf)
    python benchmarks/bench_train.py --config conf/train_st_salign.yaml --ngpu 1   # the paper's model, on a GPU
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DEFAULT_CONFIG = common.REPO / "benchmarks" / "conf" / "train_st_small.yaml"


def espnet_config(salign: Dict) -> Dict:
    """ESPnet ST config with the S-Align model's layers and multitask weights."""
    text_conf = dict(salign.get("text_encoder_conf", {}))
    dim = text_conf.pop("output_size", salign["encoder_conf"]["output_size"])
    mc = salign.get("model_conf", {})
    conf = {
        "encoder": salign["encoder"], "encoder_conf": salign["encoder_conf"],
        "hier_encoder": salign["text_encoder"],
        "hier_encoder_conf": dict(text_conf, output_size=dim, input_layer=None),
        "decoder": salign["decoder"], "decoder_conf": salign["decoder_conf"],
        "extra_mt_encoder": salign["text_encoder"],
        "extra_mt_encoder_conf": dict(text_conf, output_size=dim, input_layer="embed"),
        "model_conf": {"asr_weight": mc.get("asr_weight", 0.3), "mt_weight": mc.get("mt_weight", 0.5),
                       "mtlalpha": 1.0, "lsm_weight": mc.get("lsm_weight", 0.1)},
        "normalize": salign.get("normalize"), "normalize_conf": salign.get("normalize_conf", {}),
        "specaug": salign.get("specaug"), "specaug_conf": salign.get("specaug_conf", {}),
    }
    return {k: v for k, v in conf.items() if v is not None}


class _TwoOutputs(__import__("torch").nn.Module):
    """ESPnet's ST model unpacks two outputs from ``extra_mt_encoder``; its encoders return three."""

    def __init__(self, enc) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x, lengths):
        out, lens, _ = self.enc(x, lengths)
        return out, lens


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def worker(args) -> None:
    """Build one model, train ``--steps`` steps on the shared batches, print JSON."""
    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.ngpu else "cpu"
    toks = args.workdir / "tokens.txt"
    base = ["--token_list", str(toks), "--src_token_list", str(toks), "--input_size", "80", "--token_type", "word",
            "--src_token_type", "word"]
    if args.worker == "salign":
        from salign.tasks.st import SAlignSTTask

        targs = SAlignSTTask.get_parser().parse_args(["--config", str(args.config)] + base)
        model = SAlignSTTask.build_model(targs)
    else:
        from espnet2.tasks.st import STTask

        path = args.workdir / "espnet_st.yaml"
        path.write_text(yaml.safe_dump(espnet_config(yaml.safe_load(args.config.read_text()))))
        targs = STTask.get_parser().parse_args(["--config", str(path)] + base)
        model = STTask.build_model(targs)
        model.extra_mt_encoder = _TwoOutputs(model.extra_mt_encoder)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(args.warmup + args.steps):
        words = torch.randint(args.words[0], args.words[1] + 1, (args.batch_size,), generator=g)
        frames = words * 17
        tl = torch.clamp(words + torch.randint(-2, 3, words.shape, generator=g), min=1)
        batches.append({
            "speech": torch.randn(args.batch_size, int(frames.max()), 80, generator=g), "speech_lengths": frames,
            "text": torch.randint(2, args.vocab - 1, (args.batch_size, int(tl.max())), generator=g),
            "text_lengths": tl,
            "src_text": torch.randint(2, args.vocab - 1, (args.batch_size, int(words.max())), generator=g),
            "src_text_lengths": words})
    rss0 = _rss_mb()
    times: List[float] = []
    shrink: List[float] = []
    for i, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss, stats, _ = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
            if stats.get("shrink_ratio") is not None:
                shrink.append(float(stats["shrink_ratio"]))
    out = {"model": args.worker, "params": sum(p.numel() for p in model.parameters()), "step_s": times,
           "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": rss0,
           "shrink_ratio": sum(shrink) / len(shrink) if shrink else None}
    if device == "cuda":
        out["cuda_max_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print("RESULT " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="S-Align training config")
    parser.add_argument("--vocab", type=int, default=8000, help="joint vocabulary size (synthetic tokens)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--words", type=int, nargs=2, default=[20, 40],
                        help="source words per utterance (17 frames each: 3.4-6.8 s)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--ngpu", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "salign_bench_train")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", choices=["salign", "espnet"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.config = args.config.resolve()
    if args.worker:
        worker(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    words = ["<blank>", "<unk>"] + [f"w{i}" for i in range(args.vocab - 3)] + ["<sos/eos>"]
    (args.workdir / "tokens.txt").write_text("\n".join(words) + "\n")
    runs: Dict[str, List[Dict]] = {"salign": [], "espnet": []}
    for _ in range(args.rounds):
        for name in runs:
            cmd = [sys.executable, __file__, "--worker", name, "--workdir", str(args.workdir), "--config",
                   str(args.config), "--vocab", str(args.vocab), "--batch_size", str(args.batch_size), "--words",
                   *map(str, args.words), "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads",
                   str(args.threads), "--ngpu", str(args.ngpu)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=common.REPO)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{name} worker failed:\n{proc.stderr[-3000:]}")
            runs[name].append(json.loads(line[0][7:]))
    summary = {}
    for name, rs in runs.items():
        steps = [t for r in rs for t in r["step_s"]]
        summary[name] = {"params": rs[0]["params"], "step_s": common.med(steps),
                         "maxrss_mb": common.med([r["maxrss_mb"] for r in rs]),
                         "growth_mb": common.med([r["maxrss_mb"] - r["rss_before_mb"] for r in rs]),
                         "cuda_max_mb": rs[0].get("cuda_max_mb"), "shrink_ratio": rs[0]["shrink_ratio"]}
    s, e = summary["salign"], summary["espnet"]
    print(f"# machine: {common.machine()}\n# config: {args.config} (ESPnet: same layers, see espnet_config())\n"
          f"# batch {args.batch_size} x {args.words[0]}-{args.words[1]} words ({args.words[0] * 17}-"
          f"{args.words[1] * 17} frames), vocab {args.vocab}, {args.steps} steps x {args.rounds} runs each, "
          f"S-Align shrink ratio {s['shrink_ratio']}")
    rows = []
    for label, key in (("median step time (s)", "step_s"), ("peak RSS (MiB)", "maxrss_mb"),
                       ("RSS growth in training (MiB)", "growth_mb"), ("parameters", "params")) + (
            (("CUDA max allocated (MiB)", "cuda_max_mb"),) if s["cuda_max_mb"] else ()):
        rows.append([label, f"{s[key]:.3f}" if isinstance(s[key], float) else str(s[key]),
                     f"{e[key]:.3f}" if isinstance(e[key], float) else str(e[key]), f"{s[key] / e[key]:.3f}x"])
    print(common.table(rows, ["measure", "S-Align", "ESPnet ST", "S-Align / ESPnet"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": common.machine(), "summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
