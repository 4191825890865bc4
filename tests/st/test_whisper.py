"""``--encoder whisper``: Whisper's encoder and log-mel front end from a local openai-format checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from salign.st.whisper import WhisperEncoder, mel_filters
from salign.testing.tiny_whisper import TINY_DIMS, save_openai, tiny_whisper
from salign.utils.io import InputError
from tests.conftest import REPO, run_tool

FULL = 2 * TINY_DIMS["n_audio_ctx"] * 160  # samples of the tiny model's whole window (openai's "30 s")
ENC_DIMS = {k: TINY_DIMS[k] for k in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")}


def waves(n: int = 2, length: int = FULL, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.randn(n, length, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return tiny_whisper()


@pytest.fixture(scope="module")
def ckpt(tiny, tmp_path_factory) -> str:
    return str(save_openai(tiny, tmp_path_factory.mktemp("whisper") / "tiny.pt"))


def reference_log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """openai's ``whisper.audio.log_mel_spectrogram`` in numpy (float64): ``torch.stft(audio, 400, 160,
    window=torch.hann_window(400), return_complex=True)`` (centred, reflect padding), ``[..., :-1].abs() ** 2``,
    ``mel_filters @`` (librosa.filters.mel(sr=16000, n_fft=400, n_mels), openai's mel_filters.npz), clamp 1e-10,
    log10, maximum(x, x.max() - 8), (x + 4) / 4."""
    import librosa

    n_fft, hop = 400, 160
    x = np.pad(audio.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # torch.hann_window: periodic
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop: i * hop + n_fft] * window for i in range(n_frames)], axis=1)
    magnitudes = np.abs(np.fft.rfft(frames, axis=0))[:, :-1] ** 2
    filters = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels)
    log_spec = np.log10(np.maximum(filters @ magnitudes, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def openai_encoder_keys(n_layers: int) -> set:
    """The ``encoder.*`` names of openai-whisper's model.py (AudioEncoder, ResidualAttentionBlock without
    cross-attention, MultiHeadAttention with a bias-free key)."""
    keys = {"encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
            "encoder.positional_embedding", "encoder.ln_post.weight", "encoder.ln_post.bias"}
    for i in range(n_layers):
        keys |= {f"encoder.blocks.{i}.attn.key.weight"}
        for mod in ("attn.query", "attn.value", "attn.out", "attn_ln", "mlp.0", "mlp.2", "mlp_ln"):
            keys |= {f"encoder.blocks.{i}.{mod}.weight", f"encoder.blocks.{i}.{mod}.bias"}
    return keys


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------------------------------------ format
def test_checkpoint_has_openais_layout(tiny, ckpt):
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(saved) == {"dims", "model_state_dict"} and saved["dims"] == TINY_DIMS
    keys = set(saved["model_state_dict"])
    assert {k for k in keys if k.startswith("encoder.")} == openai_encoder_keys(2)
    assert any(k.startswith("decoder.") for k in keys)
    enc = WhisperEncoder(checkpoint=ckpt)  # the decoder tensors are ignored; none is in the encoder
    assert {f"encoder.{k}" for k in enc.whisper.state_dict()} == openai_encoder_keys(2)
    assert not any("decoder" in k for k in enc.state_dict())


def test_full_window_gives_openais_output_on_openais_log_mel(tiny, ckpt):
    """A whole-window utterance (no padding in openai's model either): the outputs of openai's forward on the
    reference log-mel."""
    enc = WhisperEncoder(checkpoint=ckpt).eval()
    x = waves()
    mel = torch.from_numpy(np.stack([reference_log_mel(w.numpy()) for w in x])).float()
    with torch.no_grad():
        ref = tiny(mel)
        out, lens, _ = enc(x.unsqueeze(-1), torch.tensor([FULL, FULL]))  # (B, T, 1) as ESPnet gives it
    assert out.shape == ref.shape == (2, TINY_DIMS["n_audio_ctx"], 32) and lens.tolist() == [64, 64]
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=0)


def test_float16_checkpoint_loads_in_float32(tiny, tmp_path):
    enc = WhisperEncoder(checkpoint=str(save_openai(tiny, tmp_path / "half.pt", half=True)))
    assert all(p.dtype == torch.float32 for p in enc.parameters())
    assert torch.equal(enc.whisper.conv1.weight, tiny.conv1.weight.half().float())


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_are_librosas_slaney_filters(n_mels):
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)
    torch.testing.assert_close(mel_filters(n_mels), torch.from_numpy(ref).float(), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_front_end_is_whispers_log_mel_spectrogram(n_mels):
    enc = WhisperEncoder(arch=dict(ENC_DIMS, n_mels=n_mels))
    lengths = [5000, 3205, 401]  # 3205: the last frame reaches past the end (reflect padding); 401: 2 frames
    x = waves(3, 5000, seed=4) * torch.tensor([[1.0], [0.01], [3.0]])
    x[:2, 1000:2500] *= 1e-5  # near silence: the floor at max - 8 applies
    mel, flens = enc.log_mel(x, torch.tensor(lengths))
    assert flens.tolist() == [n // 160 for n in lengths] and mel.shape == (3, n_mels, 31)
    for i, n in enumerate(lengths):
        ref = reference_log_mel(x[i, :n].numpy(), n_mels)
        assert ref.shape == (n_mels, n // 160)
        torch.testing.assert_close(mel[i, :, : n // 160], torch.from_numpy(ref).float(), atol=1e-4, rtol=0)
        assert mel[i, :, n // 160:].abs().sum() == 0  # frames beyond the utterance are zero


# ------------------------------------------------------------------------------------------------ behaviour
def test_padded_batch_gives_each_utterance_its_output_alone(ckpt):
    enc = WhisperEncoder(checkpoint=ckpt, output_size=24).eval()
    # 31, 21, 7 frames: odd, so conv2's last output reads past the end; 10, 5, 10 samples past the last 160: the last
    # frame's window reaches the padding
    lengths = [FULL, 4970, 3365, 1130]
    batch = waves(4, FULL, seed=1)
    batch[:, 500:900] *= 1e-5  # near silence: the floor at each utterance's max - 8 applies
    for i, n in enumerate(lengths):
        batch[i, n:] = 5 * torch.randn(FULL - n)  # loud garbage as padding
    with torch.no_grad():
        out, lens, _ = enc(batch, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            alone, alone_lens, _ = enc(batch[i: i + 1, :n], torch.tensor([n]))
            m = int(alone_lens)
            assert int(lens[i]) == m == (n // 160 + 1) // 2 and alone.shape[1] == m
            torch.testing.assert_close(out[i, :m], alone[0], atol=1e-5, rtol=0)
            assert out[i, m:].abs().sum() == 0  # padding frames are zero


def test_layer_picks_a_block_and_ln_post_only_after_the_last(tiny, ckpt):
    x, lens = waves(1), torch.tensor([FULL])
    first = WhisperEncoder(checkpoint=ckpt, layer=1).eval()
    assert len(first.whisper.blocks) == 1 and first.whisper.ln_post is None
    with torch.no_grad():
        mel, _ = first.log_mel(x, lens)
        torch.testing.assert_close(first(x, lens)[0], tiny(mel, n_blocks=1, ln_post=False), atol=2e-5, rtol=0)
    last = WhisperEncoder(checkpoint=ckpt, layer=-1)
    assert last.layer == 2 and last.whisper.ln_post is not None
    assert WhisperEncoder(checkpoint=ckpt, layer=-2).layer == 1
    with pytest.raises(InputError, match="encoder_conf.layer"):
        WhisperEncoder(checkpoint=ckpt, layer=3)


def test_frozen_backbone_gets_no_grad_and_the_projection_learns(ckpt):
    enc = WhisperEncoder(checkpoint=ckpt, output_size=16).train()
    assert enc.output_size() == 16 and WhisperEncoder(checkpoint=ckpt, output_size=32).proj is None
    with enc.backbone_frozen():
        out, _, _ = enc(waves(2, 4000), torch.tensor([4000, 3000]))
    out.pow(2).sum().backward()
    assert all(p.grad is None for p in enc.whisper.parameters())
    assert enc.proj.weight.grad.abs().sum() > 0

    conv_frozen = WhisperEncoder(checkpoint=ckpt, freeze_conv=True).train()
    conv_frozen(waves(1, 4000), torch.tensor([4000]))[0].pow(2).sum().backward()
    convs = list(conv_frozen.whisper.conv1.parameters()) + list(conv_frozen.whisper.conv2.parameters())
    assert all(p.grad is None and not p.requires_grad for p in convs)
    assert all(p.grad is not None for p in conv_frozen.whisper.blocks.parameters())


def test_standalone_conf_rebuilds_the_encoder_without_the_checkpoint(ckpt):
    enc = WhisperEncoder(checkpoint=ckpt, output_size=16, layer=1).eval()
    conf = yaml.safe_load(yaml.safe_dump(enc.standalone_conf()))
    assert conf == {"arch": ENC_DIMS}
    assert WhisperEncoder(arch=TINY_DIMS).arch == ENC_DIMS  # openai's whole "dims" do too (text dims ignored)
    with pytest.raises(InputError, match="encoder_conf.arch"):
        WhisperEncoder(arch=dict(ENC_DIMS, n_audio_layers=2))
    again = WhisperEncoder(output_size=16, layer=1, **conf).eval()
    again.load_state_dict(enc.state_dict())
    x, lens = waves(2, 4000), torch.tensor([4000, 2500])
    torch.testing.assert_close(again(x, lens)[0], enc(x, lens)[0], atol=0, rtol=0)


def test_too_long_and_too_short_input(ckpt):
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    enc = WhisperEncoder(checkpoint=ckpt)
    enc(waves(1, FULL + 159), torch.tensor([FULL + 159]))  # still 128 frames
    with pytest.raises(ValueError, match=r"Whisper's 1.28 s window \(128 frames") as exc:
        enc(waves(1, FULL + 160), torch.tensor([FULL + 160]))
    one_line(exc)
    with pytest.raises(TooShortUttError):
        enc(waves(1, 200), torch.tensor([200]))
    assert enc(waves(1, 201), torch.tensor([201]))[1].tolist() == [1]


# ------------------------------------------------------------------------------------------------ errors
def test_missing_checkpoint_is_a_one_line_error_naming_the_path(tmp_path):
    path = tmp_path / "downloads" / "whisper-small.pt"
    with pytest.raises(InputError) as exc:
        WhisperEncoder(checkpoint=str(path))
    assert str(path) in one_line(exc) and "whisper" in str(exc.value).lower()
    with pytest.raises(InputError, match="needs encoder_conf.checkpoint"):
        WhisperEncoder()
    with pytest.raises(InputError, match="--input_size 1"):
        WhisperEncoder(input_size=80, arch=ENC_DIMS)


@pytest.mark.parametrize("content", ["garbage", "not-whisper", "no-encoder", "wrong-dims"])
def test_unreadable_checkpoint_is_a_one_line_error(content, tmp_path):
    path = tmp_path / "bad.pt"
    if content == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif content == "not-whisper":
        torch.save({"model": {"w": torch.zeros(2)}}, path)
    elif content == "no-encoder":
        torch.save({"dims": TINY_DIMS, "model_state_dict": {"decoder.ln.weight": torch.ones(2)}}, path)
    else:
        save_openai(tiny_whisper(), path, dims=dict(TINY_DIMS, n_audio_state=64, n_audio_head=8))
    with pytest.raises(InputError) as exc:
        WhisperEncoder(checkpoint=str(path))
    assert str(path) in one_line(exc)


# ------------------------------------------------------------------------------------------------ tasks
def test_salign_task_builds_and_trains_with_whisper(ckpt, tiny_data, tmp_path):
    """``--encoder whisper`` builds SAlignSTModel on the raw wave; frozen at first, only the projection learns;
    config.yaml's encoder_conf keeps the dims, not the path."""
    from salign.tasks.st import SAlignSTTask, encoder_choices

    assert encoder_choices.get_class("whisper") is WhisperEncoder
    conf = yaml.safe_load((REPO / "tests" / "conf" / "train_st_hubert_test.yaml").read_text())
    conf.update(encoder="whisper", encoder_conf={"checkpoint": ckpt, "output_size": 16})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(conf))
    tokens = str(tiny_data / "tokens.txt")
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(tmp_path / "train.yaml"), "--token_list", tokens, "--src_token_list", tokens,
        "--token_type", "word", "--src_token_type", "word", "--input_size", "1"])
    model = SAlignSTTask.build_model(args)
    assert isinstance(model.encoder, WhisperEncoder) and model.frontend is None
    assert args.encoder_conf == {"output_size": 16, "arch": ENC_DIMS}
    text = torch.tensor([[3, 4, 5], [6, 7, -1]])
    loss, _, _ = model.train()(text=text, text_lengths=torch.tensor([3, 2]), speech=waves(2, 2400),
                               speech_lengths=torch.tensor([2400, 1700]), src_text=text,
                               src_text_lengths=torch.tensor([3, 2]))
    loss.backward()  # update 0 < freeze_encoder_updates: Whisper frozen, its projection trains
    assert all(p.grad is None for p in model.encoder.whisper.parameters())
    assert model.encoder.proj.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def wav_data(tmp_path_factory) -> Path:
    from salign.testing.tiny_ssl import make_tiny_wav_data

    root = tmp_path_factory.mktemp("wav")
    make_tiny_wav_data(root, n_utts=4)
    save_openai(tiny_whisper(), root / "downloads" / "whisper-tiny.pt")
    return root


@pytest.mark.slow
def test_llm_train_cli_runs_a_step_with_whisper(wav_data):
    """``python -m salign.bin.llm_train --encoder whisper`` on 16 kHz wav files: one update, then the saved config
    rebuilds the model without the checkpoint file, and ``st_inference`` decodes every utterance with it."""
    conf = yaml.safe_load((REPO / "tests" / "conf" / "train_st_llm_tiny_test.yaml").read_text())
    conf.update(input_size=1, normalize=None, encoder="whisper", max_epoch=1, num_iters_per_epoch=1, batch_size=2,
                encoder_conf={"checkpoint": "downloads/whisper-tiny.pt", "output_size": 32},
                model_conf=dict(conf["model_conf"], freeze_encoder=True))
    (wav_data / "train.yaml").write_text(yaml.safe_dump(conf))
    data = []
    for split in ("train", "valid"):
        data += [f"--{split}_data_path_and_name_and_type", f"{wav_data}/wav.scp,speech,sound",
                 f"--{split}_data_path_and_name_and_type", f"{wav_data}/text,text,text",
                 f"--{split}_data_path_and_name_and_type", f"{wav_data}/src_text,src_text,text",
                 f"--{split}_shape_file", f"{wav_data}/speech_shape"]
    tokens = wav_data / "tokens.txt"
    run_tool("salign.bin.llm_train", ["--config", wav_data / "train.yaml", "--output_dir", wav_data / "exp",
                                      "--token_type", "word", "--src_token_type", "word", "--token_list", tokens,
                                      "--src_token_list", tokens, "--fold_length", "80000", "--ngpu", "0",
                                      "--seed", "0", *data], wav_data, "train.log")
    exp = wav_data / "exp"
    assert "1epoch results" in (wav_data / "train.log").read_text()
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["encoder"] == "whisper" and saved["encoder_conf"] == {"output_size": 32, "arch": ENC_DIMS}

    from salign.llm.task import LLMSTTask

    (wav_data / "downloads" / "whisper-tiny.pt").rename(wav_data / "downloads" / "moved.pt")
    model, _ = LLMSTTask.build_model_from_file(exp / "config.yaml", exp / "1epoch.pth")
    assert isinstance(model.encoder, WhisperEncoder)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    out = wav_data / "decode_st"
    run_tool("salign.bin.st_inference", ["--task", "st", "--st_train_config", exp / "config.yaml",
                                         "--st_model_file", exp / "1epoch.pth", "--beam_size", "2",
                                         "--maxlenratio", "-3", "--data_path_and_name_and_type",
                                         f"{wav_data}/wav.scp,speech,sound", "--output_dir", out, "--ngpu", "0"],
             wav_data, "decode.log")
    keys = {line.split()[0] for line in (wav_data / "text").read_text().splitlines()}
    assert {line.split()[0] for line in (out / "1best_recog" / "token_int").read_text().splitlines()} == keys


# ------------------------------------------------------------------------------------ fine-tuning regularisation
def test_masks_fall_on_the_log_mel_input_in_training_only(ckpt):
    """Time spans of valid frames and mel-channel spans of the log-mel input are zero in training (fairseq's span
    semantics, as HuBERT's; zeros: Whisper has no mask embedding); evaluation sees the plain spectrum."""
    enc = WhisperEncoder(checkpoint=ckpt, mask_prob=0.5, mask_length=3, mask_channel_prob=0.25, mask_channel_length=2)
    seen = []
    enc.whisper.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x, lens = waves(2, FULL), torch.tensor([FULL, FULL // 2])
    torch.manual_seed(0)
    enc.train()(x, lens)
    enc.eval()(x, lens)
    masked, plain = seen
    frames = [FULL // 160, FULL // 320]
    zero_frames = [(masked[b, :, :n] == 0).all(0) for b, n in enumerate(frames)]
    zero_mels = [(masked[b, :, :n] == 0).all(1) for b, n in enumerate(frames)]
    assert all(z.any() and not z.all() for z in zero_frames + zero_mels)
    assert len({int(z.sum()) for z in zero_mels}) == 1  # fairseq's equal count per batch
    assert not (plain[0] == 0).all(0).any() and not (plain[0] == 0).all(1).any()


@pytest.mark.parametrize("knob", ["dropout", "attention_dropout", "activation_dropout", "proj_dropout"])
def test_dropouts_act_in_training_only(ckpt, knob):
    plain = WhisperEncoder(checkpoint=ckpt, output_size=16)
    enc = WhisperEncoder(checkpoint=ckpt, output_size=16, **{knob: 0.5})
    enc.load_state_dict(plain.state_dict())
    x, lens = waves(2, 4000), torch.tensor([4000, 3000])
    ref = plain.eval()(x, lens)[0]
    torch.testing.assert_close(enc.eval()(x, lens)[0], ref, atol=0, rtol=0)
    torch.testing.assert_close(plain.train()(x, lens)[0], ref, atol=0, rtol=0)  # nothing random without the knob
    torch.manual_seed(0)
    assert not torch.allclose(enc.train()(x, lens)[0], ref, atol=1e-3)
    with pytest.raises(InputError, match=f"{knob} must be in"):
        WhisperEncoder(checkpoint=ckpt, **{knob: 1.0})


def test_layerdrop_skips_blocks_in_training(ckpt):
    """With layerdrop near 1 no block runs in training: the output does not depend on the blocks' weights."""
    enc = WhisperEncoder(checkpoint=ckpt, layerdrop=0.9999).train()
    x, lens = waves(1, 4000), torch.tensor([4000])
    out = enc(x, lens)[0]
    with torch.no_grad():
        for p in enc.whisper.blocks.parameters():
            p.add_(1.0)
    torch.testing.assert_close(enc(x, lens)[0], out, atol=0, rtol=0)
    assert not torch.allclose(enc.eval()(x, lens)[0], out, atol=1e-3)


@pytest.mark.parametrize("branch", ["attention", "mlp"])
def test_dropout_is_on_each_residual_branch_of_a_block(branch):
    """Hugging Face's Whisper places `dropout` on both residual branches: with the other branch silenced, the one
    left still differs between training and evaluation."""
    from salign.st.whisper import ResidualAttentionBlock

    torch.manual_seed(0)
    block = ResidualAttentionBlock(8, 2, dropout=0.5)
    silenced = block.mlp[2] if branch == "attention" else block.attn.out
    with torch.no_grad():
        silenced.weight.zero_()
        silenced.bias.zero_()
    x = torch.randn(2, 5, 8)
    assert not torch.allclose(block.train()(x), block.eval()(x), atol=1e-4)
