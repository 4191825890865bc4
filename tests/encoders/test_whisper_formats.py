"""Whisper checkpoints in openai, Hugging Face and CTranslate2 formats: the readers against transformers' own model
(tiny random models written in the real formats; no download)."""
from __future__ import annotations

import struct

import pytest
import torch

from salign.encoders.ct2 import CT2Model, dequantize, quantize_int8, read_ct2, write_ct2
from salign.encoders.whisper_format import load_whisper, openai_to_hf, whisper_format
from salign.st.whisper import WhisperEncoder
from salign.testing.tiny_formats import save_ct2_dir, tiny_hf_whisper
from salign.utils.io import InputError


@pytest.fixture(scope="module")
def hf_model():
    return tiny_hf_whisper()


@pytest.fixture(scope="module")
def formats(hf_model, tmp_path_factory):
    """The same tiny model as an HF directory, a float32 CTranslate2 directory, a split float16 one, an int8 one and
    an openai .pt file."""
    root = tmp_path_factory.mktemp("formats")
    hf_model.save_pretrained(root / "hf")
    paths = {"hf": root / "hf",
             "ct2_f32": save_ct2_dir(hf_model, root / "ct2_f32", dtype=torch.float32),
             "ct2_f16_split": save_ct2_dir(hf_model, root / "ct2_f16", split=2),
             "ct2_int8": save_ct2_dir(hf_model, root / "ct2_int8", dtype=torch.float32, int8=True)}
    dims, state = load_whisper(paths["hf"])
    torch.save({"dims": dims, "model_state_dict": state}, root / "openai.pt")
    paths["openai"] = root / "openai.pt"
    return paths


def test_ct2_file_round_trip_keeps_names_shapes_dtypes_and_aliases(tmp_path):
    vs = {"a/w": torch.randn(3, 4).half(), "a/b": torch.randn(3), "n": torch.tensor(6, dtype=torch.int16),
          "q": torch.randint(-127, 127, (2, 5), dtype=torch.int8), "bf": torch.randn(2).bfloat16()}
    write_ct2(tmp_path / "model.bin", CT2Model("WhisperSpec", 3, vs, {"al": "a/w"}))
    m = read_ct2(tmp_path)
    assert (m.spec, m.revision, m.aliases) == ("WhisperSpec", 3, {"al": "a/w"})
    for k, v in vs.items():
        assert m.variables[k].dtype == v.dtype and torch.equal(m.variables[k], v)
    assert torch.equal(m.get("al"), vs["a/w"])


def test_int8_weights_are_divided_by_their_per_row_scale():
    w = torch.randn(4, 8) * torch.tensor([[0.1], [1.0], [10.0], [3.0]])
    q, s = quantize_int8(w)
    deq = dequantize(CT2Model("X", 1, {"l/weight": q, "l/weight_scale": s}))
    assert set(deq) == {"l/weight"}  # the scales are consumed
    assert torch.allclose(deq["l/weight"], w, atol=float(w.abs().max(dim=1).values.max()) / 127)
    rows = (deq["l/weight"] - w).abs().max(dim=1).values / w.abs().max(dim=1).values
    assert (rows < 1 / 127 + 1e-6).all()  # each row's error is relative to its own range


def test_truncated_or_foreign_ct2_file_is_a_one_line_error(tmp_path, formats):
    data = (formats["ct2_f32"] / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated CTranslate2 file"):
        read_ct2(tmp_path)
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + data[4:])
    with pytest.raises(InputError, match="format version 99"):
        read_ct2(tmp_path)


def test_every_format_gives_the_same_weights_in_openais_layout(formats):
    dims, ref = load_whisper(formats["hf"])
    assert dims == dict(n_mels=80, n_audio_ctx=64, n_audio_state=32, n_audio_head=4, n_audio_layer=2, n_vocab=64,
                        n_text_ctx=16, n_text_state=32, n_text_head=4, n_text_layer=1)
    assert "encoder.blocks.1.attn.key.weight" in ref and "encoder.blocks.1.attn.key.bias" not in ref
    assert "decoder.blocks.0.cross_attn.value.bias" in ref
    for name in ("ct2_f32", "ct2_f16_split", "ct2_int8", "openai"):
        d, st = load_whisper(formats[name])
        assert d == dims and set(st) == set(ref), name
        tol = {"ct2_f16_split": 2e-3, "ct2_int8": 0.05}.get(name, 0.0)
        for k, v in ref.items():
            assert torch.allclose(st[k].float(), v.float(), atol=tol, rtol=0), (name, k)
    assert {n: whisper_format(formats[n]) for n in formats} == {
        "hf": "huggingface", "ct2_f32": "ct2", "ct2_f16_split": "ct2", "ct2_int8": "ct2", "openai": "openai"}


@pytest.mark.parametrize("name", ["hf", "ct2_f32", "openai"])
def test_encoder_from_each_format_equals_transformers_encoder(hf_model, formats, name):
    mel = torch.randn(2, 80, 128)  # a full 1.28 s window, where masked and padded encoders agree
    with torch.no_grad():
        ref = hf_model.model.encoder(mel).last_hidden_state
        enc = WhisperEncoder(checkpoint=str(formats[name])).eval()
        ours, _ = enc.encode_mel(mel, torch.full((2,), 128))
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_openai_layout_converts_to_transformers_and_back(hf_model, formats):
    dims, state = load_whisper(formats["ct2_f32"])
    cfg, hf_state = openai_to_hf(dims, state)
    ref = {k: v for k, v in hf_model.state_dict().items() if k != "proj_out.weight"}
    assert set(hf_state) == set(ref)
    for k, v in ref.items():
        assert torch.equal(hf_state[k], v), k
    assert cfg["d_model"] == 32 and cfg["encoder_layers"] == 2 and cfg["vocab_size"] == 64


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such Whisper checkpoint"):
        load_whisper(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither config.json"):
        load_whisper(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="not Whisper"):
        load_whisper(tmp_path / "bert")
