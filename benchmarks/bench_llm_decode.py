"""Speech-LLM decoding speed: salign's batched beam search vs Hugging Face ``generate`` one utterance at a time.

The same speech-LLM (a Transformer speech encoder, an MLP projector and a randomly initialised Qwen2 causal LM
written offline by :mod:`salign.testing.tiny_llm`: d=256, 4 layers, a 4k-word vocabulary) decodes the same utterances
with the same beam: ours (:class:`salign.llm.decode.LLMDecoder`, B utterances x K hypotheses per LM call, KV cache)
against ``generate(inputs_embeds=..., num_beams=K, max_new_tokens=N)`` called per utterance (each with its own speech
encoding). Both run to ``N`` new tokens; the n-best agree token for token when no ``<eos>`` enters the beam early
(the setting in which ESPnet's and HF's beam rules coincide, see salign/llm/decode.py) — the run reports how many
agree. Prints utterances/s and the speed-up, medians over ``--repeats`` runs alternating the two, and the speed-up
of the search alone (the speech encoder + projector + prompt assembly, timed separately, subtracted on both sides).

    python benchmarks/bench_llm_decode.py                    # ~1-2 min on one CPU thread
    python benchmarks/bench_llm_decode.py --n_utts 20 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def build(workdir: Path, hidden: int, layers: int, vocab: int, seed: int = 0):
    """The benchmark's speech-LLM (eval mode), its LM drawn with a spread that makes varied, long outputs."""
    import torch
    from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

    from salign.llm.hf_lm import HFCausalLM
    from salign.llm.model import SpeechLLMModel
    from salign.llm.projector import MLPProjector
    from salign.testing.tiny_llm import make_tiny_hf_lm

    lm_dir = workdir / f"qwen2_d{hidden}_l{layers}_v{vocab}"
    if not (lm_dir / "config.json").exists():
        make_tiny_hf_lm(lm_dir, "qwen2", texts=[" ".join(f"w{i}" for i in range(vocab))], hidden_size=hidden,
                        num_layers=layers, seed=seed)
    torch.manual_seed(seed)
    encoder = TransformerEncoder(80, output_size=128, attention_heads=4, linear_units=256, num_blocks=2,
                                 dropout_rate=0.0, input_layer="conv2d")
    lm = HFCausalLM(path=str(lm_dir), finetune="frozen")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    projector = MLPProjector(128, lm.hidden_size, stack=2, hidden_size=256)
    model = SpeechLLMModel(None, None, None, encoder, projector, lm, None, src_lang="en", tgt_lang="de")
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "salign_bench")
    parser.add_argument("--n_utts", type=int, default=64, help="test utterances (6-12 words, 1-2.4 s each)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max_new_tokens", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both decoders")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import kaldiio
    import torch

    from salign.decode import length_batches
    from salign.llm.decode import LLMDecoder

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = build(args.workdir, args.hidden, args.layers, args.vocab)
    data = common.long_utterances(args.workdir / f"long{args.n_utts}", args.n_utts)
    feats = dict(kaldiio.load_scp(str(data / "feats.scp")))
    speech = [torch.from_numpy(feats[k].copy()) for k in sorted(feats)]
    k, n_new = args.beam, args.max_new_tokens
    dec = LLMDecoder(model, beam_size=k, maxlenratio=-n_new, nbest=1)
    batches = length_batches([x.size(0) for x in speech], args.batch_size)
    hf, eos = model.lm.model, model.lm.eos_id
    pad = model.lm.tokenizer.pad_token_id
    got: List = [None] * len(speech)
    ref: List = [None] * len(speech)

    def run_ours() -> None:
        for b in batches:
            for i, hyps in zip(b, dec.st([speech[i] for i in b])):
                got[i] = [t for t in hyps[0].yseq[1:] if t != eos]

    @torch.no_grad()
    def run_hf() -> None:
        for i, x in enumerate(speech):
            prompt = model.prompt_inputs("st", x[None], torch.tensor([x.size(0)]))
            out = hf.generate(inputs_embeds=prompt.embeds, attention_mask=prompt.mask, do_sample=False,
                              num_beams=k, max_new_tokens=n_new, length_penalty=1.0, early_stopping=True,
                              eos_token_id=eos, pad_token_id=pad)
            ref[i] = [t for t in out[0].tolist() if t not in (eos, pad)]

    @torch.no_grad()
    def prompts_ours() -> None:  # the speech encoder + projector + prompt assembly alone, as in run_ours
        for b in batches:
            dec.speech_prompts("st", [speech[i] for i in b])

    @torch.no_grad()
    def prompts_hf() -> None:
        for x in speech:
            model.prompt_inputs("st", x[None], torch.tensor([x.size(0)]))

    info = common.machine()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# machine: {info}\n# speech-LLM: {n_params / 1e6:.1f} M parameters (Qwen2 d={args.hidden}, "
          f"{args.layers} layers, vocab {model.lm.vocab_size}); {len(speech)} utterances, beam {k}, "
          f"{n_new} new tokens, batch_size {args.batch_size}, {args.threads} thread(s), median of {args.repeats}")
    run_ours()  # warm-up
    t_hf, t_ours = [], []
    for _ in range(args.repeats):  # alternate, so that load from other processes hits both alike
        t_hf += common.median_time(run_hf, 1)
        t_ours += common.median_time(run_ours, 1)
    e_hf, e_ours = common.med(common.median_time(prompts_hf, args.repeats)), \
        common.med(common.median_time(prompts_ours, args.repeats))
    same = sum(a == b for a, b in zip(got, ref))
    full = sum(len(g) == n_new for g in got)
    m_hf, m_ours = common.med(t_hf), common.med(t_ours)
    res: Dict[str, object] = {"beam": k, "max_new_tokens": n_new, "hf_generate_s": m_hf, "ours_s": m_ours,
                              "speedup": m_hf / m_ours, "hf_prompts_s": e_hf, "ours_prompts_s": e_ours,
                              "search_speedup": (m_hf - e_hf) / max(1e-9, m_ours - e_ours), "identical": same,
                              "ran_to_limit": full, "n_utts": len(speech), "hf_runs_s": t_hf, "ours_runs_s": t_ours}
    print(common.table([[str(k), f"{len(speech) / m_hf:.2f}", f"{len(speech) / m_ours:.2f}",
                         f"{m_hf / m_ours:.2f}x", f"{res['search_speedup']:.2f}x", f"{same}/{len(speech)}"]],
                       ["beam", "HF generate utt/s (1 at a time)", "salign utt/s (batched)", "speed-up",
                        "speed-up w/o encoder", "identical 1-best"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": [res]}, indent=1))
    if full == len(speech) and same != len(speech):
        sys.exit("outputs differ from HF generate's in the setting where they must agree")


if __name__ == "__main__":
    main()
