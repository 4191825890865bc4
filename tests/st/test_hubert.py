"""``--encoder hubert``: the HuBERT/wav2vec 2.0 encoder and its fairseq / Hugging Face checkpoint readers."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from salign.st.hubert import HuBERTEncoder
from salign.st.ssl_checkpoint import _PICKLE, load_ssl_checkpoint, read_safetensors
from salign.testing.tiny_ssl import save_fairseq, save_huggingface, tiny_arch, tiny_hubert
from salign.utils.io import InputError
from tests.conftest import REPO


def waves(n: int = 2, length: int = 1600, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, length, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return tiny_hubert()


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory) -> str:
    return str(save_fairseq(tiny, tmp_path_factory.mktemp("ssl") / "hubert_tiny.pt"))


def fairseq_keys_of_hubert_base(n_conv: int, n_layers: int) -> set:
    """The parameter names of fairseq's HubertModel (Base: group-norm CNN without bias), as in hubert_base_ls960.pt."""
    keys = {"feature_extractor.conv_layers.0.2.weight", "feature_extractor.conv_layers.0.2.bias", "layer_norm.weight",
            "layer_norm.bias", "post_extract_proj.weight", "post_extract_proj.bias", "mask_emb", "label_embs_concat",
            "final_proj.weight", "final_proj.bias", "encoder.pos_conv.0.bias", "encoder.pos_conv.0.weight_g",
            "encoder.pos_conv.0.weight_v", "encoder.layer_norm.weight", "encoder.layer_norm.bias"}
    keys |= {f"feature_extractor.conv_layers.{i}.0.weight" for i in range(n_conv)}
    for i in range(n_layers):
        for mod in ("self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.out_proj",
                    "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
            keys |= {f"encoder.layers.{i}.{mod}.weight", f"encoder.layers.{i}.{mod}.bias"}
    return keys


# ------------------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("large", [False, True], ids=["base", "large"])
def test_fairseq_checkpoint_gives_the_outputs_of_the_saved_model(large, tmp_path):
    model = tiny_hubert(large=large)
    enc = HuBERTEncoder(checkpoint=str(save_fairseq(model, tmp_path / "h.pt"))).eval()
    x, lens = waves(), torch.tensor([1600, 1600])
    with torch.no_grad():
        ref, ref_lens = model(x, lens)
        out, out_lens, _ = enc(x, lens)
    assert torch.equal(out_lens, ref_lens)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_fairseq_key_names_are_those_of_hubert_base_and_of_torchaudios_table(tiny, ckpt):
    from torchaudio.models.wav2vec2.utils.import_fairseq import _map_key

    saved = torch.load(ckpt, map_location="cpu", pickle_module=_PICKLE, weights_only=False)
    assert saved["cfg"]["model"]["_name"] == "hubert" and "dictionaries" in saved["task_state"]
    assert set(saved["model"]) == fairseq_keys_of_hubert_base(2, 2)
    # torchaudio's own fairseq table maps them onto the model (it names the weight-norm factors weight_g/weight_v)
    mapped = {_map_key(k) for k in saved["model"]} - {None, "label_embs_concat"}
    own = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                               "weight_v") for k in tiny.state_dict()}
    assert mapped == own


@pytest.mark.parametrize("large,safetensors", [(False, True), (True, False)], ids=["base-safetensors", "large-bin"])
def test_huggingface_directory_gives_the_outputs_of_the_saved_model(large, safetensors, tmp_path):
    model = tiny_hubert(large=large)
    path = save_huggingface(model, tmp_path / "hf", safetensors=safetensors)
    enc = HuBERTEncoder(checkpoint=str(path)).eval()
    x, lens = waves(), torch.tensor([1600, 1600])
    with torch.no_grad():
        ref, _ = model(x, lens)
        out, _, _ = enc(x, lens)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_huggingface_names_and_config_are_what_torchaudios_importer_reads(tiny, tmp_path):
    """torchaudio's import_huggingface_model copies HubertModel's feature_extractor, feature_projection and encoder
    state dicts into its modules, and reads the HubertConfig fields of _get_config: the files written here fit."""
    from torchaudio.models import wav2vec2_model
    from torchaudio.models.wav2vec2.utils.import_huggingface import _get_config

    path = save_huggingface(tiny, tmp_path / "hf")
    state = read_safetensors(path / "model.safetensors")
    fresh = wav2vec2_model(**tiny_arch(), aux_num_out=None)
    for module, prefix in ((fresh.feature_extractor, "feature_extractor."),
                           (fresh.encoder.feature_projection, "feature_projection."),
                           (fresh.encoder.transformer, "encoder.")):
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    assert set(state) - {k for k in state if k.startswith(("feature_extractor.", "feature_projection.", "encoder."))} \
        == {"masked_spec_embed"}
    config = _get_config(SimpleNamespace(**json.loads((path / "config.json").read_text())))
    config["extractor_conv_layer_config"] = [tuple(c) for c in config["extractor_conv_layer_config"]]
    assert config == tiny_arch() == load_ssl_checkpoint(path).arch


def test_waveform_normalisation_follows_the_checkpoint(tiny, tmp_path):
    assert load_ssl_checkpoint(save_fairseq(tiny, tmp_path / "n.pt", normalize=True)).normalize_waveform
    assert not load_ssl_checkpoint(save_huggingface(tiny, tmp_path / "hf")).normalize_waveform


# ------------------------------------------------------------------------------------------------ errors
def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_checkpoint_is_a_one_line_error_naming_the_path(tmp_path):
    with pytest.raises(InputError) as exc:
        HuBERTEncoder(checkpoint=str(tmp_path / "downloads" / "hubert_base_ls960.pt"))
    assert str(tmp_path / "downloads" / "hubert_base_ls960.pt") in one_line(exc)
    with pytest.raises(InputError, match="needs encoder_conf.checkpoint"):
        HuBERTEncoder()


@pytest.mark.parametrize("content", [b"\x00garbage" * 10, None], ids=["corrupt", "not-a-checkpoint"])
def test_unreadable_checkpoint_is_a_one_line_error(content, tmp_path):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": [1, 2]}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        HuBERTEncoder(checkpoint=str(path))
    assert str(path) in one_line(exc)
    (tmp_path / "hf").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        HuBERTEncoder(checkpoint=str(tmp_path / "hf"))


def test_features_input_is_refused_with_the_fix(ckpt):
    with pytest.raises(InputError, match="--input_size 1"):
        HuBERTEncoder(input_size=80, checkpoint=ckpt)


def test_too_short_input_raises_espnets_too_short_error(ckpt):
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    enc = HuBERTEncoder(checkpoint=ckpt)
    assert enc.min_samples == 10 + 15 * 5
    with pytest.raises(TooShortUttError):
        enc(waves(1, 84), torch.tensor([84]))


# ------------------------------------------------------------------------------------------------ behaviour
def test_feature_extractor_is_frozen_and_the_transformer_learns(ckpt):
    enc = HuBERTEncoder(checkpoint=ckpt, output_size=24).train()
    out, lens, _ = enc(waves(2, 1600).unsqueeze(-1), torch.tensor([1600, 1200]))  # (B, T, 1) as ESPnet gives it
    out.pow(2).sum().backward()
    cnn = list(enc.ssl.feature_extractor.parameters())
    assert all(p.grad is None and not p.requires_grad for p in cnn)
    rest = [(n, p) for n, p in enc.named_parameters() if not n.startswith("ssl.feature_extractor.")]
    assert rest and all(p.grad is not None for _, p in rest), [n for n, p in rest if p.grad is None]

    unfrozen = HuBERTEncoder(checkpoint=ckpt, freeze_feature_extractor=False)
    unfrozen(waves(1, 800), torch.tensor([800]))[0].sum().backward()
    assert all(p.grad is not None for p in unfrozen.ssl.feature_extractor.parameters())


def test_runs_under_no_grad(ckpt):
    enc = HuBERTEncoder(checkpoint=ckpt).eval()
    x, lens = waves(), torch.tensor([1600, 1000])
    with torch.no_grad():
        out, _, _ = enc(x, lens)
    assert not out.requires_grad
    torch.testing.assert_close(out, enc(x, lens)[0].detach())


@pytest.mark.parametrize("normalize", [False, True])
def test_padding_does_not_leak_into_a_short_utterance(ckpt, normalize):
    enc = HuBERTEncoder(checkpoint=ckpt, output_size=24, normalize_waveform=normalize).eval()
    long, short = waves(1, 2000, seed=1), waves(1, 900, seed=2)
    batch = torch.cat([long, torch.cat([short, 5 * waves(1, 1100, seed=3)], 1)])  # loud garbage as padding
    with torch.no_grad():
        out, lens, _ = enc(batch, torch.tensor([2000, 900]))
        alone, alone_lens, _ = enc(short, torch.tensor([900]))
    n = int(alone_lens)
    assert lens[1] == n == ((900 - 10) // 5 + 1 - 16) // 16 + 1
    torch.testing.assert_close(out[1, :n], alone[0], atol=1e-5, rtol=0)
    assert out[1, n:].abs().max() == 0  # padding frames are zero


def test_projection_and_layer_choice(tiny, ckpt):
    x, lens = waves(), torch.tensor([1600, 1600])
    same = HuBERTEncoder(checkpoint=ckpt, output_size=32)
    assert same.proj is None and same.output_size() == 32
    proj = HuBERTEncoder(checkpoint=ckpt, output_size=16).eval()
    assert proj.output_size() == 16 and proj(x, lens)[0].shape == (2, 19, 16)
    first = HuBERTEncoder(checkpoint=ckpt, layer=1).eval()
    assert len(first.ssl.encoder.transformer.layers) == 1
    with torch.no_grad():
        ref = tiny.extract_features(x, lens)[0][0]
        torch.testing.assert_close(first(x, lens)[0], ref, atol=1e-5, rtol=0)
    assert HuBERTEncoder(checkpoint=ckpt, layer=-1).layer == 2
    with pytest.raises(InputError, match="encoder_conf.layer"):
        HuBERTEncoder(checkpoint=ckpt, layer=3)


def test_standalone_conf_rebuilds_the_encoder_without_the_checkpoint(ckpt):
    import yaml

    enc = HuBERTEncoder(checkpoint=ckpt, output_size=16, layer=1, normalize_waveform=True).eval()
    conf = yaml.safe_load(yaml.safe_dump(enc.standalone_conf()))
    again = HuBERTEncoder(output_size=16, layer=1, **conf).eval()
    again.load_state_dict(enc.state_dict())
    x, lens = waves(), torch.tensor([1600, 1300])
    torch.testing.assert_close(again(x, lens)[0], enc(x, lens)[0], atol=0, rtol=0)


def test_registered_and_trains_inside_the_salign_model(ckpt, tiny_data):
    """--encoder hubert with --input_size 1 builds SAlignSTModel (no frontend) and a raw-wave batch trains it."""
    from salign.tasks.st import SAlignSTTask, encoder_choices

    assert encoder_choices.get_class("hubert") is HuBERTEncoder
    tokens = str(tiny_data / "tokens.txt")
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(REPO / "tests" / "conf" / "train_st_hubert_test.yaml"), "--token_list", tokens,
        "--src_token_list", tokens, "--token_type", "word", "--src_token_type", "word", "--input_size", "1",
        "--encoder_conf", f"checkpoint={ckpt}", "--encoder_conf", "output_size=16"])
    model = SAlignSTTask.build_model(args)
    assert model.frontend is None and model.normalize is None and isinstance(model.encoder, HuBERTEncoder)
    text = torch.tensor([[3, 4, 5], [6, 7, -1]])
    batch = dict(text=text, text_lengths=torch.tensor([3, 2]), speech=waves(2, 2400),
                 speech_lengths=torch.tensor([2400, 1700]), src_text=text, src_text_lengths=torch.tensor([3, 2]))
    loss, _, _ = model.train()(**batch)  # update 0 < freeze_encoder_updates: HuBERT frozen, its projection trains
    loss.backward()
    assert all(p.grad is None for p in model.encoder.ssl.parameters())
    assert model.encoder.proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    model.clock.forward_count.fill_(10)  # past model_conf.freeze_encoder_updates: the encoder trains, its CNN does not
    text = torch.tensor([[3, 4, 5], [6, 7, -1]])
    loss, stats, _ = model(text=text, text_lengths=torch.tensor([3, 2]), speech=waves(2, 2400),
                           speech_lengths=torch.tensor([2400, 1700]), src_text=text,
                           src_text_lengths=torch.tensor([3, 2]))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in model.encoder.ssl.feature_extractor.parameters())
    assert all(p.grad is not None for p in model.encoder.ssl.encoder.transformer.layers.parameters())
    assert "loss_asr" in stats and "loss_st" in stats


# ------------------------------------------------------------------------------------ fine-tuning regularisation
def test_the_checkpoints_mask_embedding_is_the_one_time_masks_use(tiny, ckpt, tmp_path):
    saved = torch.load(ckpt, map_location="cpu", pickle_module=_PICKLE, weights_only=False)["model"]["mask_emb"]
    enc = HuBERTEncoder(checkpoint=ckpt, mask_prob=0.5)
    assert torch.equal(enc.mask_emb.detach(), saved) and enc.mask_emb.requires_grad
    hf = save_huggingface(tiny, tmp_path / "hf")
    enc = HuBERTEncoder(checkpoint=str(hf), mask_prob=0.5)
    assert torch.equal(enc.mask_emb.detach(), read_safetensors(hf / "model.safetensors")["masked_spec_embed"])
    assert HuBERTEncoder(checkpoint=ckpt).mask_emb is None  # no masking: no parameter (older model files load)


def test_masks_replace_frames_by_the_mask_embedding_and_zero_channels_in_training_only(ckpt):
    """What the transformer's positional convolution receives (fairseq masks before it): time spans of valid frames
    equal to mask_emb, channel spans zero in every frame; nothing masked in evaluation."""
    enc = HuBERTEncoder(checkpoint=ckpt, mask_prob=0.5, mask_length=2, mask_channel_prob=0.25, mask_channel_length=2)
    seen = []
    enc.ssl.encoder.transformer.pos_conv_embed.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x, lens = waves(2, 3200), torch.tensor([3200, 1600])
    torch.manual_seed(0)
    enc.train()(x, lens)
    enc.eval()(x, lens)
    frames = torch.tensor([39, 19])  # ((samples - 10) // 5 + 1 - 16) // 16 + 1
    assert frames.tolist() == enc.extract(x, lens)[1].tolist()
    masked, plain = seen
    emb = enc.mask_emb.detach()
    timed = []
    for b, n in enumerate(frames.tolist()):
        zero = (masked[b, :n] == 0).all(0)  # channels zero in every frame of the utterance
        assert zero.any() and not zero.all()
        timed.append((masked[b][:, ~zero] == emb[~zero]).all(-1))  # frames equal to the mask embedding elsewhere
        assert timed[b][:n].any() and not timed[b][n:].any()
    assert timed[0].sum() == timed[1].sum()  # fairseq's equal count per batch
    assert not (plain == emb).all(-1).any() and not (plain[0, :39] == 0).all(0).any()


def test_proj_dropout_drops_the_projected_output_in_training(ckpt):
    enc = HuBERTEncoder(checkpoint=ckpt, output_size=16, proj_dropout=0.5)
    x, lens = waves(), torch.tensor([1600, 1600])
    torch.manual_seed(0)
    out = enc.train()(x, lens)[0]
    assert 0.4 < (out == 0).float().mean().item() < 0.6
    assert (enc.eval()(x, lens)[0] != 0).all()
    with pytest.raises(InputError, match="proj_dropout must be in"):
        HuBERTEncoder(checkpoint=ckpt, proj_dropout=1.0)
    with pytest.raises(InputError, match="mask_length must be >= 1"):
        HuBERTEncoder(checkpoint=ckpt, mask_prob=0.5, mask_length=0)


def test_official_config_turns_on_hubert_fine_tuning_regularisation(tiny, tmp_path):
    """conf/train_st_salign_hubert.yaml on a checkpoint with HuBERT-Base's pre-training dropouts (layerdrop 0.05,
    input dropout 0.1, activation dropout 0.0): the official fine-tuning overrides them (0, 0, 0.1), masks time
    (0.5) and channels (0.25) with the checkpoint's mask embedding, and drops 0.1 after the projection."""
    import yaml

    conf = yaml.safe_load((REPO / "conf" / "train_st_salign_hubert.yaml").read_text())["encoder_conf"]
    path = save_fairseq(tiny, tmp_path / "base_like.pt", encoder_layerdrop=0.05, dropout_input=0.1,
                        activation_dropout=0.0)
    assert load_ssl_checkpoint(path).arch["encoder_layer_drop"] == 0.05
    enc = HuBERTEncoder(**{**conf, "checkpoint": str(path), "output_size": 16})
    assert (enc.arch["encoder_layer_drop"], enc.arch["encoder_projection_dropout"],
            enc.arch["encoder_ff_interm_dropout"]) == (0.0, 0.0, 0.1)
    assert enc.ssl.encoder.transformer.layer_drop == 0.0
    assert (enc.mask_prob, enc.mask_length, enc.mask_channel_prob, enc.mask_channel_length) == (0.5, 10, 0.25, 10)
    assert enc.mask_emb is not None and enc.proj is not None and enc.proj_dropout.p == 0.1


def test_standalone_conf_keeps_the_mask_embedding(ckpt):
    """A packed model (config without the checkpoint) rebuilds the mask embedding, so the trained one loads."""
    import yaml

    enc = HuBERTEncoder(checkpoint=ckpt, mask_prob=0.5)
    conf = yaml.safe_load(yaml.safe_dump(enc.standalone_conf()))
    again = HuBERTEncoder(mask_prob=0.5, **conf)
    again.load_state_dict(enc.state_dict())  # strict
    assert torch.equal(again.mask_emb, enc.mask_emb)
