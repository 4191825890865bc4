"""Adversarial-training guards (issue 13, item 6), on the tiny model trained by ESPnet's own ``Trainer``.

* A non-finite loss term (forced to NaN for one batch) is logged once by name, and the batch leaves the parameters and
  Adam's state exactly as they were -- also with ``--use_amp true`` on a CPU, where ESPnet's ``GradScaler`` is
  disabled and its own "skip" would step the optimizer on NaN gradients. The next batch trains normally.
* A discriminator pinned near accuracy 0 or 1 for ``pinned_window`` updates is reported by one WARNING per window
  and by the stat ``disc_pinned``.
"""
from __future__ import annotations

import copy
import logging
from typing import Dict, List

import pytest
import torch

from salign.tasks.st import SAlignSTTask
from salign.utils.guards import SKIP_STAT
from tests.conftest import TEST_CONFIG
from tests.st.test_model import batch


def setup(tiny_data, tmp_path, *extra):
    parser = SAlignSTTask.get_parser()
    args = parser.parse_args(["--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word",
                              "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
                              str(tiny_data / "tokens.txt"), "--input_size", "80", "--output_dir", str(tmp_path),
                              "--ngpu", "0", *extra])
    torch.manual_seed(0)
    model = SAlignSTTask.build_model(args).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    return args, model, optim


def train_epoch(args, model, optim, batches: List[Dict[str, torch.Tensor]]) -> Dict[str, float]:
    """One epoch of ESPnet's ``Trainer.train_one_epoch`` (its step, skip and AMP logic) over ``batches``."""
    from espnet2.train.distributed_utils import DistributedOption
    from espnet2.train.reporter import Reporter
    from espnet2.train.trainer import Trainer

    scaler = torch.cuda.amp.GradScaler() if args.use_amp else None  # disabled (a no-op) without CUDA
    reporter = Reporter()
    data = [([f"utt{i}" for i in range(len(b["text"]))], dict(b)) for b in batches]
    with reporter.observe("train") as sub:
        Trainer.train_one_epoch(model, data, [optim], [None], scaler, sub, None, Trainer.build_options(args),
                                DistributedOption(distributed=False))
    return {key: reporter.get_value("train", key) for key in reporter.get_keys2("train")}


def snapshot(model, optim):
    params = {k: v.clone() for k, v in model.state_dict().items() if k != "forward_count"}
    return params, copy.deepcopy(optim.state_dict()["state"])


def assert_same(before, model, optim) -> None:
    params, state = before
    now = {k: v for k, v in model.state_dict().items() if k != "forward_count"}
    changed = [k for k in params if not torch.equal(params[k], now[k])]
    assert not changed, f"parameters changed by the skipped batch: {changed[:5]}"
    after = optim.state_dict()["state"]
    assert after.keys() == state.keys()
    for p in state:
        for name, value in state[p].items():
            assert torch.equal(value, after[p][name]), (p, name)


def poison(model, monkeypatch, term: str) -> None:
    """Make one loss term NaN (with its graph: the gradients through it are NaN too)."""
    nan = float("nan")
    if term == "loss_asr":
        orig = model.ctc.forward
        monkeypatch.setattr(model.ctc, "forward", lambda *a, **k: orig(*a, **k) * nan)
    elif term == "loss_mt":  # the decoder's second loss of a speech batch is the MT one
        orig_dec = model.decoder_loss
        calls = []

        def decoder_loss(*a, **k):
            calls.append(1)
            loss, acc = orig_dec(*a, **k)
            return (loss * nan if len(calls) % 2 == 0 else loss), acc

        monkeypatch.setattr(model, "decoder_loss", decoder_loss)
    elif term == "loss_adv_d":
        orig_d = model.align.discriminator_loss
        monkeypatch.setattr(model.align, "discriminator_loss", lambda items: orig_d(items) * nan)
    else:
        raise ValueError(term)


@pytest.mark.parametrize("term,amp", [("loss_asr", "false"), ("loss_mt", "false"), ("loss_adv_d", "false"),
                                      ("loss_mt", "true")])
def test_a_nonfinite_term_is_named_and_its_batch_changes_nothing(tiny_data, tmp_path, monkeypatch, caplog, term,
                                                                 amp):
    args, model, optim = setup(tiny_data, tmp_path, "--use_amp", amp)
    b = batch(tiny_data)
    train_epoch(args, model, optim, [b])  # Adam has state now
    before = snapshot(model, optim)
    with monkeypatch.context() as m:
        poison(model, m, term)
        with caplog.at_level(logging.WARNING):
            stats = train_epoch(args, model, optim, [b])
    warnings = [r.getMessage() for r in caplog.records if "non-finite loss" in r.getMessage()]
    assert len(warnings) == 1 and f"{term}=nan" in warnings[0] and "batch skipped" in warnings[0], warnings
    assert stats[SKIP_STAT] == 1.0
    assert_same(before, model, optim)
    stats = train_epoch(args, model, optim, [b])  # the next batch trains as usual
    assert stats[SKIP_STAT] == 0.0
    params, _ = before
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert any(not torch.equal(params[k], v) for k, v in model.state_dict().items() if k in params)


def test_the_guard_stat_is_zero_and_silent_on_finite_batches(tiny_data, tmp_path, caplog):
    args, model, optim = setup(tiny_data, tmp_path)
    with caplog.at_level(logging.WARNING):
        stats = train_epoch(args, model, optim, [batch(tiny_data)])
    assert stats[SKIP_STAT] == 0.0 and stats["disc_pinned"] == 0.0
    assert not [r for r in caplog.records if "non-finite" in r.getMessage() or "pinned" in r.getMessage()]


def test_pinned_discriminator_warns_once_per_window(caplog):
    from salign.losses.adversarial import AdversarialAlign

    align = AdversarialAlign(dim=8, pinned_window=5, pinned_margin=0.02)
    pinned = []
    with caplog.at_level(logging.WARNING):
        for u in range(23):
            for _ in range(2):  # two micro-batches per update (accum_grad 2)
                pinned.append(align.track_pinned(u, 1.0 if u != 2 else 0.6))  # one healthy update: streak restarts
    warnings = [r.getMessage() for r in caplog.records if "pinned" in r.getMessage()]
    # the streak starts at update 3: pinned from update 8 on, a warning at 8, 13 and 18 (once per 5-update window)
    assert len(warnings) == 3, warnings
    assert "pinned at 1.000" in warnings[0] and "for 5 updates (since update 3)" in warnings[0]
    assert pinned.index(True) == 2 * 8 and all(pinned[16:])
    assert not AdversarialAlign(dim=8, pinned_window=0).track_pinned(10_000, 1.0)  # 0: never checked


def test_pinned_discriminator_in_training_logs_and_stats(tiny_data, tmp_path, monkeypatch, caplog):
    import salign.losses.adversarial as adv

    args, model, optim = setup(tiny_data, tmp_path, "--align_conf", "pinned_window=3", "--align_conf",
                               "pinned_margin=0.05")
    monkeypatch.setattr(adv, "binary_hits", lambda logits, weights, target: (weights.sum(), weights.sum()))
    b = batch(tiny_data)
    with caplog.at_level(logging.WARNING):
        stats = [model(**b)[1]["disc_pinned"].item() for _ in range(6)]  # updates 0..5, D always right
    assert stats == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # pinned for a window of 3 updates from update 3 on
    warnings = [r.getMessage() for r in caplog.records if "discriminator accuracy pinned" in r.getMessage()]
    assert len(warnings) == 1 and "raise lambda_max or lower d_scale" in warnings[0], warnings
