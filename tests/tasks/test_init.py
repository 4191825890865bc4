"""--init_from_asr (salign/tasks/init.py): the acoustic encoder and CTC head of both model families from the ASR
pre-training, reported per parameter group; and the ASR-only model the ASR pre-training trains."""
from __future__ import annotations

import pytest
import torch

from salign.llm.task import LLMSTTask
from salign.tasks.init import load_groups
from salign.tasks.st import SAlignSTTask, load_mt_checkpoint
from tests.conftest import REPO
from tests.st.test_model import batch, build

LLM_CONFIG = REPO / "tests" / "conf" / "train_st_llm_tiny_test.yaml"
ASR_ONLY = ("--model_conf", "st_weight=0.0", "--model_conf", "mt_weight=0.0", "--model_conf", "asr_weight=1.0",
            "--align", "none")


@pytest.fixture
def asr_checkpoint(tiny_data, tmp_path):
    """An 'ASR pre-training' checkpoint: a salign model whose encoder and CTC weights were changed."""
    torch.manual_seed(1)
    asr = build(tiny_data, *ASR_ONLY)
    with torch.no_grad():
        for p in list(asr.encoder.parameters()) + list(asr.ctc.parameters()):
            p.add_(0.5)
    path = tmp_path / "asr.pth"
    torch.save(asr.state_dict(), path)
    return asr, path


def llm_build(tiny_data, *extra):
    tokens = str(tiny_data / "tokens.txt")
    args = LLMSTTask.get_parser().parse_args(
        ["--config", str(LLM_CONFIG), "--token_list", tokens, "--src_token_list", tokens, "--token_type", "word",
         "--src_token_type", "word", "--input_size", "80", *extra])
    return LLMSTTask.build_model(args)


def test_salign_model_takes_encoder_and_ctc_only(tiny_data, asr_checkpoint, capsys):
    asr, path = asr_checkpoint
    st = build(tiny_data, "--init_from_asr", str(path))
    for k, v in st.encoder.state_dict().items():
        assert torch.equal(v, asr.encoder.state_dict()[k]), k
    assert torch.equal(st.ctc.ctc_lo.bias, asr.ctc.ctc_lo.bias)  # (its weight is the tied source embedding table)
    k = "encoders.0.feed_forward.w_1.weight"
    assert not torch.equal(st.text_encoder.state_dict()[k], asr.text_encoder.state_dict()[k])  # not from ASR
    out = capsys.readouterr().out
    assert "parameter groups after --init_from_asr" in out and "initialised from ASR" in out


def test_speech_llm_takes_the_same_encoder(tiny_data, asr_checkpoint, capsys):
    asr, path = asr_checkpoint
    llm = llm_build(tiny_data, "--init_from_asr", str(path))
    for k, v in llm.encoder.state_dict().items():
        assert torch.equal(v, asr.encoder.state_dict()[k]), k
    assert torch.equal(llm.ctc.ctc_lo.weight, asr.ctc.ctc_lo.weight)
    assert "initialised from ASR" in capsys.readouterr().out
    # a group the model lacks is reported, not an error (a speech-LLM trained without CTC)
    no_ctc = llm_build(tiny_data, "--model_conf", "ctc_weight=0.0", "--init_from_asr", str(path))
    assert no_ctc.ctc is None
    assert "not in this model" in capsys.readouterr().out


def test_mismatch_and_missing_file_are_one_line_errors(tiny_data, asr_checkpoint, tmp_path):
    _, path = asr_checkpoint
    with pytest.raises(Exception, match="does not fit"):
        build(tiny_data, "--encoder_conf", "output_size=48", "--init_from_asr", str(path))
    with pytest.raises(Exception, match="no such file"):
        build(tiny_data, "--init_from_asr", str(tmp_path / "gone.pth"))


def test_building_from_file_never_rereads_init_from_asr(tiny_data, asr_checkpoint, tmp_path):
    import yaml

    _, path = asr_checkpoint
    model = build(tiny_data, "--init_from_asr", str(path))
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(REPO / "tests" / "conf" / "train_st_salign_test.yaml"), "--token_type", "word",
        "--src_token_type", "word", "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
        str(tiny_data / "tokens.txt"), "--input_size", "80"])
    config = vars(args)
    config["init_from_asr"] = str(tmp_path / "gone.pth")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(model.state_dict(), tmp_path / "model.pth")
    built, _ = SAlignSTTask.build_model_from_file(tmp_path / "config.yaml", tmp_path / "model.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(v, built.state_dict()[k]), k


def test_asr_only_model_trains_encoder_and_ctc_on_ctc_alone(tiny_data, monkeypatch):
    """The ASR pre-training's model: loss = CTC of the transcript, the textual encoder never runs, gradient reaches
    the acoustic encoder and the CTC head only."""
    model = build(tiny_data, *ASR_ONLY, "--model_conf", "tie_ctc=false")
    assert model.asr_only
    calls = []
    monkeypatch.setattr(model, "text_encode", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(
        AssertionError("the textual encoder ran")))
    b = batch(tiny_data)
    loss, stats, _ = model(**b)
    aenc, alens = model.encode_speech(b["speech"], b["speech_lengths"])
    ctc = model.ctc(aenc, alens, b["src_text"], b["src_text_lengths"])
    assert torch.allclose(loss, ctc) and torch.allclose(stats["loss_asr"], ctc)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.ctc.ctc_lo.weight.grad is not None
    assert all(p.grad is None for p in model.decoder.parameters())
    assert not calls
    assert not build(tiny_data).asr_only
    assert not build(tiny_data, "--model_conf", "mt_weight=0.0", "--align", "none").asr_only  # ST still on


def test_freezing_a_tied_embedding_by_any_of_its_names(tiny_data):
    """--freeze_param src_embed must freeze the source embedding although named_parameters() lists the tied
    parameter under another name (the ASR pre-training keeps the MT embeddings that its CTC head is tied to)."""
    from espnet2.tasks.abs_task import AbsTask  # noqa: F401  (ESPnet's freeze loop is what runs in training)

    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(REPO / "tests" / "conf" / "train_st_salign_test.yaml"), "--token_type", "word",
        "--src_token_type", "word", "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
        str(tiny_data / "tokens.txt"), "--input_size", "80", "--encoder_conf", "output_size=256",
        "--freeze_param", "src_embed"])
    model = SAlignSTTask.build_model(args)
    assert model.ctc.ctc_lo.weight is model.src_embed.weight  # tied
    for t in args.freeze_param:  # ESPnet's own loop (espnet2/tasks/abs_task.py, main)
        for k, p in model.named_parameters():
            if k.startswith(t + ".") or k == t:
                p.requires_grad = False
    assert not model.src_embed.weight.requires_grad
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_a_ctc_head_tied_to_the_embeddings_keeps_them(tiny_data, tmp_path, capsys):
    """S-Align's CTC projection is the source embedding table (tie_ctc): --init_from_asr takes the CTC bias but not
    the tied weight, which would overwrite the embeddings the MT pre-training gave."""
    torch.manual_seed(1)
    asr = build(tiny_data, *ASR_ONLY, "--encoder_conf", "output_size=256", "--model_conf", "tie_ctc=false")
    with torch.no_grad():
        asr.ctc.ctc_lo.weight.add_(1.0)
        asr.ctc.ctc_lo.bias.add_(1.0)
    torch.save(asr.state_dict(), tmp_path / "asr.pth")
    st = build(tiny_data, "--encoder_conf", "output_size=256")
    assert st.ctc.ctc_lo.weight is st.src_embed.weight  # tied
    before = st.src_embed.weight.detach().clone()
    report = load_groups(st, str(tmp_path / "asr.pth"), ("encoder", "ctc"), "--init_from_asr", "ASR", "", "",
                         keep_tied=True)
    assert torch.equal(st.src_embed.weight, before)  # the embeddings are not the ASR model's CTC weight
    assert torch.equal(st.ctc.ctc_lo.bias, asr.ctc.ctc_lo.bias)
    assert "kept (tied): ctc.ctc_lo.weight" in report["ctc"]
    for k, v in st.encoder.state_dict().items():
        assert torch.equal(v, asr.encoder.state_dict()[k]), k
    # --init_from_mt takes its groups whole: the embedding table (tied to the CTC projection) is the MT model's
    mt = build(tiny_data, "--encoder_conf", "output_size=256")
    with torch.no_grad():
        mt.src_embed.weight.add_(2.0)
    torch.save(mt.state_dict(), tmp_path / "mt.pth")
    load_mt_checkpoint(st, str(tmp_path / "mt.pth"))
    assert torch.equal(st.src_embed.weight, mt.src_embed.weight) and st.ctc.ctc_lo.weight is st.src_embed.weight
