"""CompositeAlign: weighted sum of members, prefixed statistics, needs_layers, its members and config errors."""
import pytest
import torch

from salign.losses.abs_align import AlignBatch
from salign.losses.adversarial import AdversarialAlign
from salign.losses.composite import CompositeAlign, member_methods
from salign.losses.contrastive import ContrastiveAlign
from salign.losses.ot import OTAlign

DIM = 8
ADV = dict(dropout=0.0, g_start=0, mixup_batch_prob=0.0, lambda_max=1.0)


def make_batch():
    torch.manual_seed(0)
    layers_s = [torch.randn(3, 6, DIM, requires_grad=True) for _ in range(2)]
    layers_t = [torch.randn(3, 4, DIM, requires_grad=True) for _ in range(2)]
    return AlignBatch(speech=layers_s[-1], speech_lengths=torch.tensor([6, 5, 2]), text=layers_t[-1],
                      text_lengths=torch.tensor([4, 2, 3]), num_updates=10, speech_layers=layers_s,
                      text_layers=layers_t)


def test_weighted_sum_and_prefixed_stats():
    torch.manual_seed(1)
    multi = CompositeAlign(DIM, methods=[
        {"name": "adversarial", "weight": 1.0, "conf": ADV},
        {"name": "ot", "weight": 0.5, "conf": {"layers": [1], "epsilon": 0.5}},
        {"name": "contrastive", "weight": 2.0, "prefix": "ctr_top", "conf": {"temperature": 0.5}},
    ]).eval()
    assert multi.needs_layers
    b = make_batch()
    loss, st = multi(b)
    adv, ot, ctr = (m for _, m in multi.members())
    l_adv, st_adv = adv(b)
    l_ot, _ = ot(b)
    l_ctr, _ = ctr(b)
    assert loss.item() == pytest.approx(l_adv.item() + 0.5 * l_ot.item() + 2.0 * l_ctr.item(), rel=1e-5)
    assert st["ot_loss"].item() == pytest.approx(0.5 * l_ot.item(), rel=1e-5)
    for key in ("adversarial_disc_acc", "adversarial_loss_adv_d", "ot_ot_l1", "ot_loss_ot", "ctr_top_loss_ctr",
                "ctr_top_ctr_acc", "adversarial_loss", "ctr_top_loss"):
        assert key in st, key
    assert st["adversarial_disc_acc"].item() == pytest.approx(st_adv["disc_acc"].item())
    assert all("/" not in k for k in st)
    loss.backward()
    assert b.speech_layers[0].grad.abs().sum() > 0  # reached only through OT at layer 1
    assert multi.find(AdversarialAlign)[0] == "adversarial"
    assert multi.find(OTAlign)[1] is ot


def test_needs_layers_is_any_member():
    no = CompositeAlign(DIM, methods=[{"name": "contrastive"}, {"name": "adversarial", "conf": ADV}])
    assert not no.needs_layers
    assert CompositeAlign(DIM, methods=[{"name": "contrastive"}, {"name": "ot"}]).needs_layers


def test_registry_and_task_choices_agree():
    from salign.tasks.st import align_choices

    reg = member_methods()
    assert reg["contrastive"] is ContrastiveAlign and reg["ot"] is OTAlign and "multi" not in reg
    assert align_choices.get_class("multi") is CompositeAlign
    assert set(align_choices.classes) - {"multi"} <= set(reg)


@pytest.mark.parametrize("methods,match", [
    ([], "at least one"),
    ([{"name": "nope"}], "not a registered"),
    ([{"name": "multi"}], "not a registered"),
    ([{"name": "ot"}, {"name": "ot"}], "appears twice"),
    ([{"name": "ot", "wieght": 1}], "unknown keys"),
    ([{"name": "ot", "prefix": "a/b"}], "prefix"),
])
def test_config_errors(methods, match):
    with pytest.raises(ValueError, match=match):
        CompositeAlign(DIM, methods=methods)


def test_the_task_builds_multi_from_yaml(tmp_path):
    from salign.tasks.st import SAlignSTTask
    from salign.testing.tiny_data import make_tiny_data
    from tests.conftest import REPO

    make_tiny_data(tmp_path, n_utts=2)
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(REPO / "tests/conf/train_st_multi_test.yaml"), "--token_type", "word",
        "--src_token_type", "word", "--token_list", str(tmp_path / "tokens.txt"), "--src_token_list",
        str(tmp_path / "tokens.txt"), "--input_size", "80"])
    model = SAlignSTTask.build_model(args)
    assert isinstance(model.align, CompositeAlign) and model.align.needs_layers
    assert {type(m) for _, m in model.align.members()} == {AdversarialAlign, OTAlign, ContrastiveAlign}
