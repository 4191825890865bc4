"""Routing statistics of an MoE projector over a test set (salign.llm.routing): per-language routing shares, expert
load and router entropy accumulated over frames, padding and unlabelled frames left out."""
from __future__ import annotations

import math

import kaldiio
import numpy as np
import pytest
import torch

from salign.llm.moe import MoEProjector
from salign.llm.projector import LinearProjector
from salign.llm.routing import routing_stats


class Host(torch.nn.Module):
    """The part of the speech LLM routing_stats uses: an identity 'encoder' and the projector."""

    def __init__(self, projector: torch.nn.Module) -> None:
        super().__init__()
        self.projector = projector

    def encode_speech(self, speech, lengths):
        return speech, lengths


def _data(tmp_path, lengths, labels):
    rng = np.random.default_rng(0)
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/feats.ark,{tmp_path}/feats.scp") as w:
        for i, n in enumerate(lengths):
            w(f"u{i}", rng.standard_normal((n, 4)).astype(np.float32))
    (tmp_path / "lang_frames").write_text("".join(f"u{i} {' '.join(map(str, lab))}\n" for i, lab in enumerate(labels)))
    return tmp_path / "feats.scp", tmp_path / "lang_frames"


def test_a_router_that_always_picks_english_routes_every_english_frame_right(tmp_path):
    proj = MoEProjector(input_size=4, output_size=8, groups=["en", "es"], experts_per_group=2, top_k=1)
    with torch.no_grad():
        proj.group_router.weight.zero_()
        proj.group_router.bias.copy_(torch.tensor([20.0, 0.0]))  # always en, with certainty
    # 3 utterances of different lengths (batched with padding); -1 = a pause; labels longer than the frames are cut
    scp, labels = _data(tmp_path, [3, 5, 2], [[0, 0, 1], [1, 1, -1, 0, 0], [0, 1, 1, 1]])
    st = routing_stats(Host(proj).eval(), scp, labels, batch_size=2)
    assert st["frames"] == 10 and st["frames_en"] == 5 and st["frames_es"] == 4
    assert st["route_en"] == 1.0 and st["route_es"] == 0.0 and st["route_all"] == pytest.approx(5 / 9)
    assert st["group_en"] == 1.0 and st["group_es"] == 0.0
    assert st["entropy"] == pytest.approx(0.0, abs=1e-6) and st["max_entropy"] == pytest.approx(math.log(2))
    assert st["load_e0"] + st["load_e1"] == pytest.approx(1.0) and st["load_e2"] == st["load_e3"] == 0.0


def test_an_undecided_router_has_maximal_entropy_and_batching_does_not_matter(tmp_path):
    proj = MoEProjector(input_size=4, output_size=8, groups=["en", "es"], experts_per_group=2, top_k=1)
    scp, labels = _data(tmp_path, [4, 6, 3, 5], [[0] * 4, [1] * 6, [0, 1, 1], [1] * 5])
    one = routing_stats(Host(proj).eval(), scp, labels, batch_size=1)
    four = routing_stats(Host(proj).eval(), scp, labels, batch_size=4)
    assert one == pytest.approx(four)
    with torch.no_grad():
        proj.group_router.weight.zero_()
        proj.group_router.bias.zero_()
    flat = routing_stats(Host(proj).eval(), scp, labels)
    assert flat["entropy"] == pytest.approx(math.log(2), rel=1e-5)


def test_no_routing_without_an_moe_projector(tmp_path):
    scp, labels = _data(tmp_path, [3], [[0, 0, 0]])
    assert routing_stats(Host(LinearProjector(4, 8)), scp, labels) is None
