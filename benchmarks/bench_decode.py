"""Decoding speed: salign's batched beam search vs ESPnet's ``Speech2Text`` (one utterance at a time).

Both decode the same utterances with the same model and beam; the outputs are checked to be the same (token
sequences, scores within 1e-4). Prints utterances/s, real-time factor (decoding seconds per audio second, 10 ms
frames) and the speed-up, medians over ``--repeats`` runs.

    python benchmarks/bench_decode.py                       # trains the tiny test model (~1 min) first
    python benchmarks/bench_decode.py --size small          # d=256, 6+6+6 layers (a few minutes of training)
    python benchmarks/bench_decode.py --config exp/st/config.yaml --model exp/st/valid.acc.ave.pth
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIZES = {  # (MT config, ST config, training utterances, ST epochs)
    "tiny": (common.REPO / "tests/conf/train_mt_test.yaml", common.REPO / "tests/conf/train_st_salign_test.yaml",
             12, 8),
    "small": (common.REPO / "benchmarks/conf/train_mt_small.yaml",
              common.REPO / "benchmarks/conf/train_st_small.yaml", 48, 10),
}


def train(size: str, work: Path) -> Tuple[Path, Path]:
    """MT pre-training then S-Align ST training through the real CLI; returns (config.yaml, model file)."""
    from salign.testing.tiny_data import make_tiny_data

    mt_conf, st_conf, n_utts, epochs = SIZES[size]
    st = work / f"st_{size}"
    if (st / "valid.acc.ave.pth").exists():
        return st / "config.yaml", st / "valid.acc.ave.pth"
    data = work / f"tiny{n_utts}"
    make_tiny_data(data, n_utts=n_utts)
    base = ["--token_type", "word", "--src_token_type", "word", "--token_list", data / "tokens.txt",
            "--src_token_list", data / "tokens.txt", "--input_size", "80", "--fold_length", "5000", "--ngpu", "0",
            "--use_matplotlib", "false", "--seed", "0"]

    def paths(speech: bool) -> List[str]:
        out = []
        shape = "speech_shape" if speech else "src_text_shape"
        for split in ("train", "valid"):
            out += [f"--{split}_shape_file", data / shape]
            if speech:
                out += [f"--{split}_data_path_and_name_and_type", f"{data}/feats.scp,speech,kaldi_ark"]
            out += [f"--{split}_data_path_and_name_and_type", f"{data}/text,text,text",
                    f"--{split}_data_path_and_name_and_type", f"{data}/src_text,src_text,text"]
        return out

    print(f"training the {size} model in {work} ...", file=sys.stderr)
    common.run_module("salign.bin.st_train", ["--config", mt_conf, "--output_dir", work / f"mt_{size}", *base,
                                              *paths(False)], work, f"log_mt_{size}")
    common.run_module("salign.bin.st_train", ["--config", st_conf, "--output_dir", st, *base, *paths(True),
                                              "--init_from_mt", work / f"mt_{size}" / "valid.acc.best.pth",
                                              "--max_epoch", str(epochs)], work, f"log_st_{size}")
    return st / "config.yaml", st / "valid.acc.ave.pth"


def compare(ref: List[List[Tuple[List[int], float]]], got) -> int:
    """Utterances whose n-best token sequences differ or whose scores differ by more than 1e-4."""
    bad = 0
    for r, g in zip(ref, got):
        same = [h[0] for h in r] == [h.yseq for h in g] and all(abs(a - h.score) <= 1e-4 for (_, a), h in zip(r, g))
        bad += not same
    return bad


def encoder_times(model, speech, batches, repeats: int) -> Tuple[float, float]:
    """Median seconds of the speech encoder alone: one utterance at a time (as Speech2Text) and in our batches."""
    import torch
    from espnet.nets.pytorch_backend.nets_utils import pad_list

    from salign.decode.decoder import exact_subsampling_masks

    def one() -> None:
        for x in speech:
            model.encode(x[None].clone(), torch.tensor([x.size(0)]))  # a copy: CMVN works in place

    def batched() -> None:
        for b in batches:
            xs = [speech[i] for i in b]
            with exact_subsampling_masks(model):
                model.encode(pad_list(xs, 0.0), torch.tensor([x.size(0) for x in xs]))

    with torch.no_grad():
        return common.med(common.median_time(one, repeats)), common.med(common.median_time(batched, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, help="config.yaml of a trained ST model (else one is trained)")
    parser.add_argument("--model", type=Path, help="its model file")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny", help="model to train without --config")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "salign_bench")
    parser.add_argument("--n_utts", type=int, default=200, help="test utterances (6-12 words, 1-2.4 s each)")
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both decoders")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import kaldiio
    import torch

    import salign.tasks.st as st_task
    from salign.bin.st_inference import parse
    from salign.decode import BatchedDecoder, DecodeSettings, length_batches
    from salign.decode.loader import load_model

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)  # ESPnet warns per utterance when a hypothesis reaches the max length
    args.workdir.mkdir(parents=True, exist_ok=True)
    config, model = (args.config, args.model) if args.config else train(args.size, args.workdir)
    data = common.long_utterances(args.workdir / f"long{args.n_utts}", args.n_utts)
    feats = dict(kaldiio.load_scp(str(data / "feats.scp")))
    speech = [torch.from_numpy(feats[k].copy()) for k in sorted(feats)]
    audio_s = sum(x.size(0) for x in speech) * 0.01
    st_task.register_with_espnet()
    from espnet2.bin.st_inference import Speech2Text

    info = common.machine()
    print(f"# machine: {info}\n# model: {model}\n# {len(speech)} utterances, {audio_s:.1f} s of audio, "
          f"batch_size {args.batch_size}, {args.threads} thread(s), median of {args.repeats}")
    rows, results = [], []
    for beam in args.beams:
        s2t = Speech2Text(st_train_config=str(config), st_model_file=str(model), beam_size=beam)
        ours, _ = load_model(str(config), str(model))  # our own load and settings: nothing shared with s2t
        dec = BatchedDecoder.from_settings(ours, DecodeSettings.from_args(parse(["--beam_size", str(beam)])))
        batches = length_batches([x.size(0) for x in speech], args.batch_size)
        ref: List = []
        got: List = [None] * len(speech)

        def run_espnet(s2t=s2t, ref=ref) -> None:
            # copies: ESPnet's global CMVN normalises the tensor Speech2Text is given in place
            ref[:] = [[(h.yseq.tolist(), float(h.score)) for *_, h in s2t(x.clone())] for x in speech]

        def run_ours(dec=dec, batches=batches, got=got) -> None:
            for b in batches:
                for i, hyps in zip(b, dec.st([speech[i] for i in b])):
                    got[i] = hyps

        run_ours()  # warm-up (allocator, lazy init)
        t_ref, t_ours = [], []
        for _ in range(args.repeats):  # alternate, so that load from other processes hits both alike
            t_ref += common.median_time(run_espnet, 1)
            t_ours += common.median_time(run_ours, 1)
        bad = compare(ref, got)
        m_ref, m_ours = common.med(t_ref), common.med(t_ours)
        e_ref, e_ours = encoder_times(s2t.st_model, speech, batches, args.repeats)
        res: Dict[str, object] = {"beam": beam, "espnet_s": m_ref, "ours_s": m_ours, "speedup": m_ref / m_ours,
                                  "espnet_encoder_s": e_ref, "ours_encoder_s": e_ours,
                                  "search_speedup": (m_ref - e_ref) / max(1e-9, m_ours - e_ours),
                                  "mismatches": bad, "n_utts": len(speech), "audio_s": audio_s}
        results.append(res)
        rows.append([str(beam), f"{len(speech) / m_ref:.1f}", f"{m_ref / audio_s:.4f}",
                     f"{len(speech) / m_ours:.1f}", f"{m_ours / audio_s:.4f}", f"{m_ref / m_ours:.2f}x",
                     f"{e_ref / m_ref:.0%} / {e_ours / m_ours:.0%}", f"{res['search_speedup']:.2f}x",
                     f"{len(speech) - bad}/{len(speech)}"])
    print(common.table(rows, ["beam", "ESPnet utt/s", "ESPnet RTF", "salign utt/s", "salign RTF", "speed-up",
                              "encoder share (ESPnet / salign)", "speed-up w/o encoder", "identical"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    if any(r["mismatches"] for r in results):
        sys.exit("outputs differ from ESPnet's")


if __name__ == "__main__":
    main()
