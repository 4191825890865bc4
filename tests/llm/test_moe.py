"""The MoE speech projector with language expert groups (``--projector moe``, docs/moe.md): routing against a dense
reference, the language and balance losses, padding, frame labels from time spans, the model's stats and a real
``llm_train`` step."""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from salign.llm.moe import MoEProjector, frame_labels_from_spans
from tests.conftest import REPO, run_tool
from tests.llm.conftest import build_model, fake_batch

D = 8  # stacked-frame width of the hand-built routers below (stack 1)


def make(stack: int = 1, input_size: int = D, output_size: int = 6, **conf) -> MoEProjector:
    torch.manual_seed(0)
    return MoEProjector(input_size, output_size, stack=stack, **conf)


def set_router(proj: MoEProjector, group_w=None, group_b=None, expert_w=None, expert_b=None) -> None:
    with torch.no_grad():
        for lin, w, b in ((proj.group_router, group_w, group_b), (proj.expert_router, expert_w, expert_b)):
            lin.weight.copy_(torch.zeros_like(lin.weight) if w is None else torch.as_tensor(w, dtype=torch.float))
            lin.bias.copy_(torch.zeros_like(lin.bias) if b is None else torch.as_tensor(b, dtype=torch.float))


def dense_reference(proj: MoEProjector, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every frame, weighted by the formula of docs/moe.md (N, D) -> (N, out)."""
    g, eg = proj.num_groups, proj.experts_per_group
    p_group = torch.softmax(proj.group_router(x), -1)
    p_exp = torch.softmax(proj.expert_router(x).view(-1, g, eg), -1)
    outs = torch.stack([e(x) for e in proj.experts], 1).view(-1, g, eg, proj.out_size)
    keep = torch.zeros_like(p_exp).scatter(-1, p_exp.topk(proj.top_k, -1).indices, 1.0)
    w = p_exp * keep
    w = w / w.sum(-1, keepdim=True)
    a = p_group if proj.group_routing == "soft" else torch.nn.functional.one_hot(p_group.argmax(-1), g).float()
    return torch.einsum("ng,nge,nged->nd", a, w, outs)


# ---------------------------------------------------------------------------------------------------- dispatch
@pytest.mark.parametrize("routing,top_k", [("soft", 2), ("soft", 1), ("top1", 2), ("top1", 3)])
def test_sparse_dispatch_equals_the_dense_reference(routing, top_k):
    proj = make(groups=["en", "es", "zh"], experts_per_group=4, top_k=top_k, group_routing=routing).eval()
    x = torch.randn(3, 11, D)
    y, lens = proj(x, torch.tensor([11, 11, 11]))
    assert lens.tolist() == [11, 11, 11]
    ref = dense_reference(proj, x.reshape(-1, D)).view(3, 11, -1)
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=1e-6)


def test_gradients_reach_only_the_selected_experts():
    proj = make(experts_per_group=4, top_k=1, group_routing="top1")
    x = torch.randn(1, 3, D)
    y, _ = proj(x, torch.tensor([3]))
    y.sum().backward()
    with torch.no_grad():
        p_group = torch.softmax(proj.group_router(x[0]), -1)
        p_exp = torch.softmax(proj.expert_router(x[0]).view(3, 2, 4), -1)
        chosen = {int(g) * 4 + int(p_exp[t, g].argmax()) for t, g in enumerate(p_group.argmax(-1))}
    assert 0 < len(chosen) < proj.num_experts
    for i, expert in enumerate(proj.experts):
        grads = [p.grad for p in expert.parameters()]
        if i in chosen:
            assert all(gr is not None and gr.abs().sum() > 0 for gr in grads), i
        else:
            assert all(gr is None for gr in grads), i
    assert proj.group_router.weight.grad.abs().sum() > 0  # straight-through: the group router still learns


def test_padding_frames_change_nothing():
    """A padded batch (padding full of large garbage) gives each utterance's output and the pooled losses/stats of
    its valid frames alone (stack 1: the valid frames concatenated are one utterance)."""
    proj = make(experts_per_group=3, top_k=2).eval()
    lens = torch.tensor([7, 3, 5])
    x = 50 * torch.randn(3, 7, D)
    utts = [torch.randn(1, int(n), D) for n in lens]
    for i, u in enumerate(utts):
        x[i, : u.size(1)] = u[0]
    lang = torch.tensor([0, 1, -1])
    y, _ = proj(x, lens)
    losses, stats = proj.aux_losses(lang=lang)
    for i, u in enumerate(utts):
        yi, _ = proj(u, lens[i: i + 1])
        torch.testing.assert_close(y[i, : u.size(1)], yi[0], atol=1e-6, rtol=1e-6)
        assert bool((y[i, u.size(1):] == 0).all())
    joined = torch.cat(utts, 1)
    proj(joined, torch.tensor([joined.size(1)]))
    frames = torch.cat([torch.full((int(n),), int(lab)) for n, lab in zip(lens, lang)])[None]
    losses1, stats1 = proj.aux_losses(lang_frames=frames)
    assert losses.keys() == losses1.keys() == {"loss_lang", "loss_balance"}
    for k in losses:
        torch.testing.assert_close(losses[k][1], losses1[k][1])
    assert stats.keys() == stats1.keys()
    for k in stats:
        torch.testing.assert_close(stats[k], stats1[k])


def test_stacked_padding_and_lengths():
    proj = make(stack=2, input_size=4, experts_per_group=2, top_k=1).eval()
    a, b = torch.randn(1, 7, 4), torch.randn(1, 4, 4)
    x = torch.cat([a, torch.nn.functional.pad(b, (0, 0, 0, 3), value=9.0)])
    y, lens = proj(x, torch.tensor([7, 4]))
    assert lens.tolist() == [4, 2]
    torch.testing.assert_close(y[0], proj(a, torch.tensor([7]))[0][0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(y[1, :2], proj(b, torch.tensor([4]))[0][0], atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- losses
def sign_router(proj: MoEProjector, scale: float = 20.0) -> None:
    """Group 0 (en) for frames with x[0] > 0, group 1 (es) otherwise; experts uniform."""
    w = torch.zeros(2, D)
    w[0, 0], w[1, 0] = scale, -scale
    set_router(proj, group_w=w)


def test_language_loss_is_minimal_under_perfect_routing_and_large_when_swapped():
    proj = make(experts_per_group=2, top_k=1)
    sign_router(proj)
    x = torch.randn(2, 6, D)
    x[..., 0] = torch.tensor([[1, 1, -1, -1, 1, 5.0], [-1, -1, 1, 1, 1, 1]])
    lens = torch.tensor([6, 4])
    truth = (x[..., 0] < 0).long()  # 0 = en, 1 = es
    proj(x, lens)
    good, stats = proj.aux_losses(lang_frames=truth)
    assert good["loss_lang"][1] < 1e-6 and stats["route_acc"] == 1.0
    bad, stats = proj.aux_losses(lang_frames=1 - truth)
    assert bad["loss_lang"][1] > 15 and stats["route_acc"] == 0.0
    # exactly the mean NLL over the labelled valid frames; -1 is ignored
    labels = truth.clone()
    labels[0, :2] = -1
    labels[0, 2] = 0  # wrongly labelled en
    logp = torch.log_softmax(proj.group_router(x), -1)
    valid = torch.arange(6)[None] < lens[:, None]
    keep = valid & (labels >= 0)
    expected = -logp[keep].gather(1, labels[keep][:, None]).mean()
    loss, stats = proj.aux_losses(lang_frames=labels)
    torch.testing.assert_close(loss["loss_lang"][1], expected)
    assert stats["route_acc"] == pytest.approx(1 - 1 / int(keep.sum()))


def test_utterance_labels_and_src_lang():
    proj = make(experts_per_group=2, top_k=1)
    sign_router(proj)
    x = torch.randn(2, 5, D)
    x[0, :, 0], x[1, :, 0] = 1.0, -1.0  # utterance 0 routed to en, utterance 1 to es
    proj(x, torch.tensor([5, 3]))
    assert proj.aux_losses(lang=torch.tensor([[0], [1]]))[0]["loss_lang"][1] < 1e-6
    assert proj.aux_losses(lang=torch.tensor([1, 0]))[0]["loss_lang"][1] > 15
    mask = proj.last_route["mask"]
    assert proj.frame_labels(mask, lang=torch.tensor([1, 0])).tolist() == [[1] * 5, [0] * 3 + [-1] * 2]
    # without labels: src_lang labels every frame (en: utterance 1's 3 frames are wrong -> 3/8 wrong)
    losses, stats = proj.aux_losses(src_lang="en")
    assert stats["route_acc"] == pytest.approx(5 / 8) and losses["loss_lang"][1] > 5
    for kwargs in ({}, {"src_lang": None}):
        losses, stats = proj.aux_losses(**kwargs)
        assert "loss_lang" not in losses and "route_acc" not in stats and "loss_balance" in losses
    with pytest.raises(ValueError, match="src_lang 'de' names no group"):
        proj.aux_losses(src_lang="de")
    with pytest.raises(ValueError, match="language ids"):
        proj.aux_losses(lang=torch.tensor([0, 2]))
    proj.lang_from_src_lang = False
    assert "loss_lang" not in proj.aux_losses(src_lang="en")[0]


def test_balance_loss_is_one_at_uniform_load_and_grows_with_skew():
    """Group en: 8 frames spread evenly over its 4 experts (balance 1); group es: 4 frames all on one expert
    (balance 4): the loss is the mean over groups, (1 + 4) / 2, not the frame-weighted 2."""
    proj = make(experts_per_group=4, top_k=1)
    ew = torch.zeros(8, D)
    for e in range(4):
        ew[e, 1 + e] = 20.0  # en's router: expert e for a frame with x[1 + e] = 1
    eb = torch.zeros(8)
    eb[4] = 20.0  # es's router: always its first expert
    gw = torch.zeros(2, D)
    gw[0, 0], gw[1, 0] = 20.0, -20.0
    set_router(proj, group_w=gw, expert_w=ew, expert_b=eb)
    x = torch.zeros(1, 12, D)
    x[0, :8, 0] = 1.0
    for t in range(8):
        x[0, t, 1 + t % 4] = 1.0
    x[0, 8:, 0] = -1.0
    proj(x, torch.tensor([12]))
    losses, stats = proj.aux_losses()
    assert losses["loss_balance"][1].item() == pytest.approx(2.5, abs=1e-4)
    assert stats["group_en"] == pytest.approx(8 / 12) and stats["group_es"] == pytest.approx(4 / 12)
    assert [round(stats[f"load_e{i}"].item(), 4) for i in range(8)] == [round(2 / 12, 4)] * 4 + [
        round(4 / 12, 4), 0, 0, 0]
    # en alone: exactly uniform -> 1 (its minimum); uniform router probabilities -> 1 as well
    proj(x[:, :8], torch.tensor([8]))
    assert proj.aux_losses()[0]["loss_balance"][1].item() == pytest.approx(1.0, abs=1e-4)
    set_router(proj, group_w=gw)
    proj(x, torch.tensor([12]))
    assert proj.aux_losses()[0]["loss_balance"][1].item() == pytest.approx(1.0, abs=1e-6)
    # es alone: everything on one expert -> experts_per_group
    set_router(proj, group_w=gw, expert_w=ew, expert_b=eb)
    proj(x[:, 8:], torch.tensor([4]))
    assert proj.aux_losses()[0]["loss_balance"][1].item() == pytest.approx(4.0, abs=1e-4)


def test_router_entropy():
    proj = make(experts_per_group=2, top_k=1)
    set_router(proj)  # uniform group router
    proj(torch.randn(2, 3, D), torch.tensor([3, 1]))
    assert proj.aux_losses()[1]["router_entropy"].item() == pytest.approx(math.log(2), abs=1e-6)
    sign_router(proj, scale=50.0)
    proj(torch.randn(2, 3, D), torch.tensor([3, 1]))
    assert proj.aux_losses()[1]["router_entropy"].item() < 1e-6


# ---------------------------------------------------------------------------------------------------- frame labels
def test_frame_labels_from_time_spans():
    # 10 ms fbank hop × conv2d subsampling 4 × stack 2 = 80 ms per stacked frame; centres at 40, 120, 200, ... ms
    shift = 0.010 * 4 * 2
    labels = frame_labels_from_spans([(0.0, 0.25, 0), (0.25, 0.6, 1)], num_frames=9, frame_shift=shift)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1, -1, -1]  # 0.60 is past the half-open span
    # overlapping spans of two languages: the shared centre is ambiguous; of the same language: kept
    assert frame_labels_from_spans([(0.0, 0.2, 0), (0.1, 0.3, 1)], 4, shift).tolist() == [0, -1, 1, 1]
    assert frame_labels_from_spans([(0.0, 0.2, 1), (0.1, 0.3, 1)], 4, shift).tolist() == [1, 1, 1, 1]
    # the rows drive the language loss: a projector routing by x[0] is right exactly where the spans say so
    proj = make(experts_per_group=2, top_k=1)
    sign_router(proj)
    x = torch.randn(1, 9, D)
    x[0, :, 0] = torch.tensor([1, 1, 1, -1, -1, -1, -1, 1, 1.0])
    proj(x, torch.tensor([9]))
    assert proj.aux_losses(lang_frames=labels[None])[1]["route_acc"] == 1.0
    # a row longer than the frames is cut, a shorter one padded with -1
    proj(x[:, :5], torch.tensor([5]))
    assert proj.aux_losses(lang_frames=labels[None])[1]["route_acc"] == 1.0
    proj(x, torch.tensor([9]))
    assert proj.aux_losses(lang_frames=labels[None, :3])[1]["route_acc"] == 1.0


# ---------------------------------------------------------------------------------------------------- model
def moe_model(**conf):
    model = build_model("tiny", projector="linear", src_lang="en")
    model.projector = MoEProjector(16, 32, stack=2, experts_per_group=2, top_k=2, lang_weight=0.5,
                                   balance_weight=0.25, **conf)
    return model


def test_model_adds_the_weighted_aux_losses_and_logs_the_stats():
    model = moe_model()
    batch = fake_batch(model)
    loss, stats, _ = model(**batch)
    for key in ("loss_lang", "loss_balance", "route_acc", "router_entropy", "load_e0", "load_e3", "group_en"):
        assert key in stats, key
    expected = (stats["loss_st"] + 0.5 * stats["loss_mt"] + 0.5 * stats["loss_lang"]
                + 0.25 * stats["loss_balance"])
    torch.testing.assert_close(loss.detach(), expected)
    loss.backward()
    assert model.projector.group_router.weight.grad.abs().sum() > 0
    # a batch field wins over src_lang (everything labelled es now); eval: the encoder's positional dropout is off
    model.eval()
    _, stats, _ = model(**batch)
    _, stats_es, _ = model(**batch, lang=torch.tensor([[1], [1], [1]]))
    assert stats_es["route_acc"].item() == pytest.approx(1 - stats["route_acc"].item(), abs=1e-6)
    # text-only batches never reach the projector
    text_only = {k: v for k, v in batch.items() if not k.startswith("speech")}
    assert "loss_balance" not in model(**text_only)[1]


def test_no_language_labels_means_no_language_loss():
    model = moe_model(lang_from_src_lang=False)
    _, stats, _ = model(**fake_batch(model))
    assert "loss_lang" not in stats and "route_acc" not in stats and "loss_balance" in stats
    linear = build_model("tiny")
    _, stats, _ = linear(**fake_batch(linear))
    assert not any(k.startswith(("loss_lang", "loss_balance", "load_", "router")) for k in stats)


@pytest.mark.slow
def test_llm_train_step_with_moe_and_frame_labels(tiny_data, tmp_path):
    """One real ``llm_train`` step with ``--projector moe``: the task builds it from YAML, the per-frame labels come
    from a ``text_int`` data file (``lang_from_src_lang: false``: no other label source), the aux losses are logged."""
    from tests.llm.test_llm_train import TINY_CONFIG, epoch_stats, llm_args

    conf = yaml.safe_load(TINY_CONFIG.read_text())
    conf.update(projector="moe", projector_conf=dict(stack=2, groups=["en", "es"], experts_per_group=2, top_k=1,
                                                     hidden_size=16, lang_from_src_lang=False),
                max_epoch=1, num_iters_per_epoch=1)
    config = tmp_path / "moe.yaml"
    config.write_text(yaml.safe_dump(conf))
    ids = [line.split()[0] for line in (tiny_data / "text").read_text().splitlines()]
    lang = tmp_path / "lang_frames"
    lang.write_text("".join(f"{u} 0 0 1 1 -1 0 0 0 0 0 0 0 0 0 0 0\n" for u in ids))
    extra = [f"--{p}_data_path_and_name_and_type" for p in ("train", "valid")]
    args = llm_args(tiny_data, tmp_path / "exp", config)
    args += [extra[0], f"{lang},lang_frames,text_int", extra[1], f"{lang},lang_frames,text_int"]
    run_tool("salign.bin.llm_train", args, tmp_path, "log")
    stats = epoch_stats((tmp_path / "log").read_text())
    for key in ("loss_st", "loss_lang", "loss_balance", "route_acc", "router_entropy", "load_e0", "group_es"):
        assert key in stats[1], key
    saved = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    assert saved["projector"] == "moe" and saved["projector_conf"]["groups"] == ["en", "es"]


def test_example_config_names_the_moe_projector():
    conf = yaml.safe_load((REPO / "conf" / "train_st_llm_moe.yaml").read_text())
    assert conf["projector"] == "moe" and conf["model_conf"]["src_lang"] in conf["projector_conf"]["groups"]


def saved_model_file(proj: MoEProjector, path, prefix: str = "projector."):
    """A model file of a previous stage holding ``proj`` under ``prefix`` (plus another module's weights)."""
    state = {prefix + k: v.clone() for k, v in proj.state_dict().items()}
    state["encoder.embed.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("prefix", ["projector.", "adapter."])
def test_transition_loss_is_zero_against_an_identical_previous_stage(tmp_path, prefix):
    torch.manual_seed(0)
    prev = make()
    cur = make(transition_weight=0.5, transition_from=saved_model_file(prev, tmp_path / "prev.pth", prefix))
    cur.load_state_dict(prev.state_dict())
    x, lengths = torch.randn(2, 5, D), torch.tensor([5, 3])
    cur.train()(x, lengths)
    losses, _ = cur.aux_losses()
    weight, value = losses["loss_transition"]
    assert weight == 0.5 and float(value) == pytest.approx(0.0, abs=1e-6)
    # the previous stage is frozen, outside the module tree: not trained, not saved
    assert not any("previous" in k for k in cur.state_dict()) and len(list(cur.parameters())) == len(
        list(prev.parameters()))


def test_transition_loss_grows_with_the_routing_shift_and_trains_the_group_router_only(tmp_path):
    torch.manual_seed(0)
    prev = make()
    cur = make(transition_weight=1.0, transition_from=saved_model_file(prev, tmp_path / "prev.pth"))
    cur.load_state_dict(prev.state_dict())
    x, lengths = torch.randn(2, 5, D), torch.tensor([5, 3])
    values = []
    for shift in (0.0, 0.5, 2.0):
        with torch.no_grad():
            cur.group_router.bias.copy_(prev.group_router.bias + torch.tensor([shift, -shift]))
        cur.zero_grad()
        cur.train()(x, lengths)
        value = cur.aux_losses()[0]["loss_transition"][1]
        values.append(float(value))
        value.backward()
    assert values[0] == pytest.approx(0.0, abs=1e-6) and 0 < values[1] < values[2]
    assert cur.group_router.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in cur.experts.parameters())
    # the reference kept the previous stage's weights (a KL to itself would be 0 whatever the shift)
    assert torch.equal(cur.previous_stage().group_router.bias, prev.group_router.bias)


def test_transition_loss_only_in_training_and_clear_errors(tmp_path):
    prev = make()
    cur = make(transition_weight=1.0, transition_from=str(tmp_path / "missing.pth"))
    cur.eval()(torch.randn(1, 3, D), torch.tensor([3]))  # decoding never reads the previous stage
    assert "loss_transition" not in cur.aux_losses()[0]
    from salign.utils.io import InputError

    with pytest.raises(InputError, match="no such model file"):
        cur.train()(torch.randn(1, 3, D), torch.tensor([3]))
    other = make(experts_per_group=3)
    cur = make(transition_weight=1.0, transition_from=saved_model_file(other, tmp_path / "other.pth"))
    with pytest.raises(InputError, match="no MoE projector of this shape"):
        cur.train()(torch.randn(1, 3, D), torch.tensor([3]))
    with pytest.raises(ValueError, match="transition_from"):
        make(transition_weight=1.0)
    del prev
