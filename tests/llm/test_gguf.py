"""``--lm hf`` on a GGUF LM (SmolLM2's format): a tiny Llama written with the ``gguf`` package in llama.cpp's layout
(quantised as the real file: Q8_0 token embedding, Q4_1 matrices; and unquantised), read through ``lm_conf.path`` and
checked against the Hugging Face model it came from; ``salign.pretrained.convert.gguf_to_hf`` on the same file; the
one-line errors of a directory holding neither format. Nothing is downloaded."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from salign.testing.tiny_gguf import dequantized, tiny_llama_dir, write_llama_gguf

TEXT = "the cat sees a dog"


@pytest.fixture(scope="module")
def llama_hf(tmp_path_factory) -> Path:
    """The tiny Hugging Face Llama every GGUF file here is written from."""
    return tiny_llama_dir(tmp_path_factory.mktemp("gguf") / "hf")


@pytest.fixture(scope="module", params=[True, False], ids=["q4_1", "f32"])
def gguf_dir(request, llama_hf, tmp_path_factory) -> Path:
    """A directory holding one GGUF file of ``llama_hf`` (quantised or not) and nothing else."""
    out = tmp_path_factory.mktemp("gguf_dir")
    write_llama_gguf(llama_hf, out / "tiny-llama.Q4_1.gguf" if request.param else out / "tiny-llama.F32.gguf",
                     quantize=request.param)
    return out


def _quantised(gguf_dir: Path) -> bool:
    return next(gguf_dir.glob("*.gguf")).name.endswith("Q4_1.gguf")


def _reference(llama_hf: Path, quantise: bool):
    """The Hugging Face model with the weights a GGUF reader must find (dequantised where the file is quantised)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(llama_hf), local_files_only=True).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(dequantized(p.numpy(), quantise, embedding=name == "model.embed_tokens.weight")))
    return model


def test_lm_path_reads_a_gguf_directory_with_the_mapping_of_its_source(gguf_dir, llama_hf):
    from salign.llm.hf_lm import HFCausalLM, lm_source, load_tokenizer

    model_dir, name = lm_source(str(gguf_dir))
    assert model_dir == gguf_dir and name.endswith(".gguf")
    assert lm_source(str(gguf_dir / name)) == (gguf_dir, name)  # the file itself does too
    lm = HFCausalLM(path=str(gguf_dir), finetune="frozen")
    ref = _reference(llama_hf, _quantised(gguf_dir))
    got = dict(lm.model.named_parameters())
    for key, value in ref.named_parameters():  # every weight under its HF name, q/k rows back in HF's order
        assert torch.equal(got[key].detach(), value.detach()), key
    assert lm.config.rope_parameters["rope_theta"] == ref.config.rope_parameters["rope_theta"] == 100000.0
    assert not getattr(lm.model, "is_quantized", False) and lm.model.hf_quantizer is None
    # the tokenizer built from the GGUF metadata tokenises as the source's
    ids = load_tokenizer(str(gguf_dir))(TEXT, add_special_tokens=False)["input_ids"]
    assert ids == load_tokenizer(str(llama_hf))(TEXT, add_special_tokens=False)["input_ids"]
    assert lm.eos_id == ref.config.eos_token_id and lm.bos_ids == []
    x = torch.tensor([ids])
    with torch.no_grad():
        want = ref(input_ids=x).logits
        out = lm(lm.embed(x), torch.ones_like(x), torch.arange(x.size(1))[None]).logits
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    if not _quantised(gguf_dir):  # unquantised: the source model itself
        from transformers import AutoModelForCausalLM

        src = AutoModelForCausalLM.from_pretrained(str(llama_hf), local_files_only=True).eval()
        with torch.no_grad():
            torch.testing.assert_close(out, src(input_ids=x).logits, rtol=1e-5, atol=1e-5)


def test_gguf_lm_trains_with_lora_and_checkpoints_only_what_changes(gguf_dir):
    from salign.llm.hf_lm import FINGERPRINT, base_fingerprint
    from tests.llm.conftest import build_model

    model = build_model("hf", gguf_dir, finetune="lora")
    state = model.state_dict()
    assert any("lora_A" in k for k in state) and not any(".base_layer." in k for k in state)
    assert torch.equal(state[f"lm.{FINGERPRINT}"], base_fingerprint(gguf_dir, next(gguf_dir.glob("*.gguf")).name))
    ids = torch.tensor([model.lm.encode_text([TEXT])[0]])
    speech = torch.randn(1, 12, 80)
    loss, stats, _ = model(speech=speech, speech_lengths=torch.tensor([12]), text=ids,
                           text_lengths=torch.tensor([ids.size(1)]), src_text=ids,
                           src_text_lengths=torch.tensor([ids.size(1)]))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_B" in n and g is not None for n, g in grads.items())
    assert all(not p.requires_grad for n, p in model.lm.named_parameters() if "lora_" not in n)


def test_convert_gguf_to_hf_matches_the_gguf_reader(gguf_dir, tmp_path):
    """``tools/get_pretrained.sh smollm2-135m``'s conversion on the tiny file: the HF directory it writes loads
    with the same weights, config and tokenisation as the GGUF itself."""
    from salign.llm.hf_lm import HFCausalLM, lm_source, load_tokenizer
    from salign.pretrained.convert import gguf_to_hf

    gguf_to_hf(next(gguf_dir.glob("*.gguf")), tmp_path / "hf")
    assert lm_source(str(tmp_path / "hf")) == (tmp_path / "hf", None)
    a = HFCausalLM(path=str(gguf_dir), finetune="frozen")
    b = HFCausalLM(path=str(tmp_path / "hf"), finetune="frozen")
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    assert sorted(pa) == sorted(pb) and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert b.config.rope_parameters["rope_theta"] == 100000.0 and b.config.tie_word_embeddings
    assert load_tokenizer(str(tmp_path / "hf"))(TEXT)["input_ids"] == load_tokenizer(str(gguf_dir))(TEXT)["input_ids"]


def test_a_directory_without_either_format_is_a_one_line_error(tmp_path, gguf_dir):
    from salign.llm.hf_lm import HFCausalLM, load_tokenizer
    from salign.utils.io import InputError

    empty = tmp_path / "empty"
    empty.mkdir()
    for path, words in ((empty, ["neither a Hugging Face model directory", "tools/get_pretrained.sh smollm2-135m"]),
                        (tmp_path / "missing", ["no such directory", "lm_conf.path"])):
        for load in (lambda p: HFCausalLM(path=p), load_tokenizer):
            with pytest.raises(InputError) as e:
                load(str(path))
            msg = str(e.value)
            assert "\n" not in msg and msg.startswith(str(path)) and all(w in msg for w in words), msg
    two = tmp_path / "two"
    shutil.copytree(gguf_dir, two)
    shutil.copy(next(two.glob("*.gguf")), two / "copy.gguf")
    with pytest.raises(InputError, match="2 GGUF files"):
        HFCausalLM(path=str(two))
