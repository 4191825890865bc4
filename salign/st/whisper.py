"""Whisper's speech encoder on raw 16 kHz waveform, loaded from a LOCAL openai-format checkpoint.

``--encoder whisper`` with ``--input_size 1`` (no ESPnet frontend: speech is the (B, T) or (B, T, 1) waveform, its
lengths in samples). Neither the ``whisper`` package nor a download is needed: the checkpoint is one of openai's
``.pt`` files (``tiny.pt`` ... ``large-v3.pt``, as ``whisper.load_model`` caches them in ``~/.cache/whisper``), a
pickled dict ``{"dims": {n_mels, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_vocab, n_text_ctx,
n_text_state, n_text_head, n_text_layer}, "model_state_dict": {...}}`` (float16 tensors in openai's files). Only
the ``encoder.*`` keys are used (openai's ``AudioEncoder`` names: ``encoder.conv1``, ``encoder.conv2``,
``encoder.positional_embedding``, ``encoder.blocks.N.{attn_ln,attn.{query,key,value,out},mlp_ln,mlp.0,mlp.2}``,
``encoder.ln_post``); the text decoder is ignored. ``encoder_conf``::

    checkpoint: downloads/whisper-small.pt   # required (or ``arch``: the encoder dims, random weights)
    output_size: null           # Linear projection from n_audio_state; none when equal or null
    layer: null                 # 1-based block whose output is used (null: the last, then ln_post; -2: one below)
    freeze_conv: false          # the two input convolutions run under no_grad, their parameters frozen
    mask_prob: 0.0              # fine-tuning regularisation (training only), as HuBERT's: time span masks
    mask_length: 10             # log-mel frames per time span
    mask_channel_prob: 0.0      # mel-channel span masks
    mask_channel_length: 10     # mel channels per span
    dropout: 0.0                # after the positional embedding and on each block's two residual branches
    attention_dropout: 0.0      # on the attention weights
    activation_dropout: 0.0     # after the MLP's GELU
    layerdrop: 0.0              # probability of skipping a block
    proj_dropout: 0.0           # dropout on the output (after the projection)

The front end is Whisper's own (``whisper.audio.log_mel_spectrogram``): centred STFT (n_fft 400, hop 160, Hann
window, reflect padding), power spectrum without the last frame, librosa's Slaney mel filters (n_mels from the
checkpoint: 80, or 128 for large-v3), log10 clamped at 1e-10, floored at the maximum minus 8, then (x + 4) / 4.

Fine-tuning regularisation (all off by default; openai's model has no dropout): the knobs of ``--encoder hubert``
where they apply. Span masks with fairseq's semantics (:mod:`salign.st.masking`) fall on the log-mel input, time
spans of valid frames and mel-channel spans, filled with zeros (Whisper has no learned mask embedding; Hugging Face's
Whisper SpecAugment option masks the same place the same way); dropouts sit where Hugging Face's Whisper encoder has
them; ``proj_dropout`` follows the projection.

Differences from openai's model: no padding to 30 s. openai pads every utterance with zeros to 30 s (3000 frames)
and runs the encoder over the whole window; here the encoder runs over the utterance only (the positional
embedding sliced to its length, at most n_audio_ctx frames = 30 s; longer input is an error) and a padded batch is
handled by masks: each utterance's reflect padding and maximum for the log-mel floor are its own, features and the
first convolution's output beyond its length are zeroed (as the convolutions' zero padding sees them alone) and
attention masks the padded keys. An utterance therefore gives the same output in a padded batch as alone, and
outputs differ from openai's (which attend to the 30 s of silence padding) except for a full 30 s input. Output
frames: 20 ms each, ``ceil(floor(samples / 160) / 2)``.
"""
from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

from salign.encoders.whisper_format import ENCODER_DIMS, TEXT_DIMS, load_whisper
from salign.encoders.whisper_format import FIX as _FIX
from salign.st.masking import mask_spans
from salign.st.pretrained import PretrainedEncoder
from salign.utils.io import InputError
from salign.utils.tensor import length_mask

PathLike = Union[str, Path]
SAMPLE_RATE, N_FFT, HOP_LENGTH = 16000, 400, 160


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """openai's sinusoidal positional embedding (``whisper.model.sinusoids``): (length, channels)."""
    if channels % 2:
        raise InputError(f"Whisper's n_audio_state must be even, got {channels}")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2))
    scaled = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


def load_whisper_checkpoint(path: PathLike) -> Tuple[Dict[str, int], Dict[str, torch.Tensor]]:
    """The dims and the ``encoder.*`` tensors (prefix removed, float32) of a Whisper checkpoint in any format
    :func:`salign.encoders.whisper_format.load_whisper` reads (openai ``.pt``, Hugging Face or CTranslate2
    directory); bad input is a one-line :class:`InputError` naming the file."""
    dims, state = load_whisper(path, encoder_only=True)
    return dims, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


class MultiHeadSelfAttention(torch.nn.Module):
    """openai's ``MultiHeadAttention`` (self-attention only) with a key padding mask."""

    def __init__(self, n_state: int, n_head: int, attention_dropout: float = 0.0) -> None:
        """``query``/``value``/``out`` with bias, ``key`` without (openai's layout); dropout on the weights in
        training."""
        super().__init__()
        self.n_head, self.attention_dropout = n_head, attention_dropout
        self.query = torch.nn.Linear(n_state, n_state)
        self.key = torch.nn.Linear(n_state, n_state, bias=False)
        self.value = torch.nn.Linear(n_state, n_state)
        self.out = torch.nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); ``key_mask`` (B, T) True on the real frames."""
        b, t, d = x.shape
        q, k, v = (lin(x).view(b, t, self.n_head, -1).transpose(1, 2) for lin in (self.query, self.key, self.value))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        # softmax(q k^T / sqrt(d_head)) v: openai scales q and k by d_head^-1/4 each, the same
        wv = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                            dropout_p=self.attention_dropout if self.training else 0.0)
        return self.out(wv.transpose(1, 2).reshape(b, t, d))


class ResidualAttentionBlock(torch.nn.Module):
    """openai's encoder ``ResidualAttentionBlock``: pre-norm self-attention and a 4x GELU MLP (+ optional dropouts
    where Hugging Face's Whisper has them: on each residual branch, after the GELU, on the attention weights)."""

    def __init__(self, n_state: int, n_head: int, dropout: float = 0.0, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0) -> None:
        """``attn``, ``attn_ln``, ``mlp`` (``mlp.0``, GELU, ``mlp.2``), ``mlp_ln`` as in openai's model."""
        super().__init__()
        self.attn = MultiHeadSelfAttention(n_state, n_head, attention_dropout)
        self.attn_ln = torch.nn.LayerNorm(n_state)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(n_state, 4 * n_state), torch.nn.GELU(),
                                       torch.nn.Linear(4 * n_state, n_state))
        self.mlp_ln = torch.nn.LayerNorm(n_state)
        self.dropout = torch.nn.Dropout(dropout)
        self.activation_dropout = torch.nn.Dropout(activation_dropout)

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        x = x + self.dropout(self.attn(self.attn_ln(x), key_mask))
        h = self.activation_dropout(self.mlp[1](self.mlp[0](self.mlp_ln(x))))
        return x + self.dropout(self.mlp[2](h))


class AudioEncoder(torch.nn.Module):
    """openai's ``AudioEncoder`` modules (same state-dict names); :class:`WhisperEncoder` runs them with masks."""

    def __init__(self, n_mels: int, n_audio_ctx: int, n_audio_state: int, n_audio_head: int,
                 n_audio_layer: int, dropout: float = 0.0, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0) -> None:
        """conv1 (k3, p1), conv2 (k3, s2, p1), the sinusoidal ``positional_embedding`` buffer, blocks, ln_post (the
        dropouts: see :class:`ResidualAttentionBlock`)."""
        super().__init__()
        if n_audio_state % n_audio_head:
            raise InputError(f"Whisper's n_audio_state {n_audio_state} is not a multiple of n_audio_head "
                             f"{n_audio_head}")
        self.conv1 = torch.nn.Conv1d(n_mels, n_audio_state, kernel_size=3, padding=1)
        self.conv2 = torch.nn.Conv1d(n_audio_state, n_audio_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_audio_ctx, n_audio_state))
        self.blocks = torch.nn.ModuleList([ResidualAttentionBlock(n_audio_state, n_audio_head, dropout,
                                                                  attention_dropout, activation_dropout)
                                           for _ in range(n_audio_layer)])
        self.ln_post: Optional[torch.nn.LayerNorm] = torch.nn.LayerNorm(n_audio_state)


def mel_filters(n_mels: int) -> torch.Tensor:
    """(n_mels, 201) Slaney mel filters: librosa's ``filters.mel(sr=16000, n_fft=400, n_mels=n_mels)``, openai's
    ``mel_filters.npz``."""
    import torchaudio

    return torchaudio.functional.melscale_fbanks(n_freqs=N_FFT // 2 + 1, f_min=0.0, f_max=SAMPLE_RATE / 2,
                                                 n_mels=n_mels, sample_rate=SAMPLE_RATE, norm="slaney",
                                                 mel_scale="slaney").T.contiguous()


class WhisperEncoder(PretrainedEncoder):
    """Whisper's audio encoder (openai layout, masked, no 30 s padding) with its log-mel front end."""

    def __init__(
        self,
        input_size: int = 1,
        checkpoint: Optional[str] = None,
        output_size: Optional[int] = None,
        layer: Optional[int] = None,
        freeze_conv: bool = False,
        arch: Optional[Dict[str, Any]] = None,
        mask_prob: float = 0.0,
        mask_length: int = 10,
        mask_channel_prob: float = 0.0,
        mask_channel_length: int = 10,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        layerdrop: float = 0.0,
        proj_dropout: float = 0.0,
    ) -> None:
        """Build the encoder from ``checkpoint`` (or, without one, randomly from ``arch``); see the module doc."""
        super().__init__()
        if input_size != 1:
            raise InputError(f"encoder whisper takes the raw 16 kHz waveform, got input_size {input_size}",
                             fix="pass --input_size 1 (no frontend) and wav.scp,speech,sound data")
        if checkpoint is None and arch is None:
            raise InputError("encoder whisper needs encoder_conf.checkpoint", fix=_FIX)
        state = None
        if checkpoint is not None:
            arch, state = load_whisper_checkpoint(checkpoint)
            logging.info("whisper encoder: checkpoint %s (%d layers, width %d, %d mels)", checkpoint,
                         arch["n_audio_layer"], arch["n_audio_state"], arch["n_mels"])
        if set(ENCODER_DIMS) - set(arch) or set(arch) - set(ENCODER_DIMS + TEXT_DIMS):
            raise InputError(f"encoder_conf.arch must have the Whisper dims {list(ENCODER_DIMS)}, got {sorted(arch)}")
        self.arch = {k: int(arch[k]) for k in ENCODER_DIMS}  #: the encoder's openai ``ModelDimensions`` fields
        rates = {"dropout": dropout, "attention_dropout": attention_dropout, "activation_dropout": activation_dropout,
                 "layerdrop": layerdrop}
        for name, value in rates.items():
            if not 0.0 <= value < 1.0:
                raise InputError(f"encoder_conf.{name} must be in [0, 1), got {value}", fix="e.g. 0.1, or 0: off")
        self.whisper = AudioEncoder(**self.arch, dropout=dropout, attention_dropout=attention_dropout,
                                    activation_dropout=activation_dropout)
        self.input_dropout = torch.nn.Dropout(dropout)  # after the positional embedding
        self.layerdrop = layerdrop
        if state is not None:
            try:
                missing, unexpected = self.whisper.load_state_dict(state, strict=False)
            except RuntimeError as e:  # a tensor of another shape than the dims say
                raise InputError(f"checkpoint does not fit its own dims ({str(e).splitlines()[-1].strip()[:160]})",
                                 checkpoint, fix="a complete checkpoint") from None
            if missing or unexpected:
                raise InputError(f"checkpoint does not fit its own dims: missing {sorted(missing)[:3]}, "
                                 f"unexpected {sorted(unexpected)[:3]}", checkpoint, fix="a complete checkpoint")
        self.register_buffer("mel_filters", mel_filters(self.arch["n_mels"]), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        n_layers = self.arch["n_audio_layer"]
        layer = n_layers if layer is None else (layer + n_layers + 1 if layer < 0 else layer)
        if not 1 <= layer <= n_layers:
            raise InputError(f"encoder_conf.layer must be in 1..{n_layers} (or -1..-{n_layers}), got {layer}")
        self.whisper.blocks = self.whisper.blocks[:layer]  # unused blocks would be unused parameters (DDP)
        if layer < n_layers:  # ln_post normalises the last block's output only
            self.whisper.ln_post = None
        self.layer = layer
        self.freeze_conv = freeze_conv
        if freeze_conv:
            for conv in (self.whisper.conv1, self.whisper.conv2):
                conv.requires_grad_(False)
        width = self.arch["n_audio_state"]
        self.init_projection(width, output_size, proj_dropout)
        self.init_masking(mask_prob, mask_length, mask_channel_prob, mask_channel_length)
        self.max_frames = 2 * self.arch["n_audio_ctx"]  #: mel frames of openai's 30 s window


    def standalone_conf(self) -> Dict[str, Any]:
        """``encoder_conf`` entries that rebuild this architecture without the checkpoint file (YAML-safe): the
        encoder dims; the weights then come from the trained model file."""
        return {"arch": dict(self.arch)}


    def log_mel(self, wave: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Whisper's log-mel spectrogram of each utterance of (B, T) ``wave``: (B, n_mels, F) with F the longest
        ``lengths // 160``, and the frame counts; each utterance reflect-padded and floored by its own frames, the
        frames beyond its length zero."""
        half = N_FFT // 2
        b, t = wave.shape
        # centred STFT with reflect padding at each utterance's own end (torch.stft(center=True) per utterance)
        pos = torch.arange(-half, t + half, device=wave.device)[None, :].expand(b, -1)
        last = (lengths - 1)[:, None]
        idx = torch.where(pos < 0, -pos, torch.where(pos > last, 2 * last - pos, pos)).clamp(0, t - 1)
        padded = torch.gather(wave, 1, idx)
        stft = torch.stft(padded.float(), N_FFT, HOP_LENGTH, window=self.window.float(), center=False,
                          return_complex=True)
        power = stft[..., :-1].abs() ** 2  # (B, 201, F): whisper drops the last frame
        mel = (self.mel_filters.float() @ power).clamp(min=1e-10).log10()
        flens = torch.div(lengths, HOP_LENGTH, rounding_mode="floor")
        valid = length_mask(flens, mel.size(-1)).unsqueeze(1)
        peak = mel.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
        mel = (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
        return mel.masked_fill(~valid, 0.0), flens

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """(B, T) or (B, T, 1) waveform, lengths in samples -> (B, T', output_size), frame lengths, None."""
        if xs_pad.dim() == 3:
            if xs_pad.size(-1) != 1:
                raise ValueError(f"encoder whisper expects mono waveform (B, T) or (B, T, 1), got "
                                 f"{tuple(xs_pad.shape)}")
            xs_pad = xs_pad.squeeze(-1)
        ilens = ilens.to(xs_pad.device)
        if int(ilens.min()) <= N_FFT // 2:  # reflect padding of the centred STFT needs > 200 samples
            raise TooShortUttError(f"has {int(ilens.min())} samples, Whisper's front end needs >= {N_FFT // 2 + 1}",
                                   int(ilens.min()), N_FFT // 2 + 1)
        if int(ilens.max()) // HOP_LENGTH > self.max_frames:
            raise ValueError(f"encoder whisper: an utterance of {int(ilens.max())} samples is longer than Whisper's "
                             f"{self.max_frames / 100:g} s window ({self.max_frames} frames of 10 ms); segment it")
        with self.backbone_grad():
            x, lens = self._backbone(xs_pad[:, : int(ilens.max())], ilens)
        x = self.project(x)
        x = x.masked_fill(~length_mask(lens, x.size(1)).unsqueeze(-1), 0.0)
        return x, lens, None

    def _backbone(self, wave: torch.Tensor, ilens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Front end and Whisper's encoder on the (B, T) wave: (B, T', width) output of the chosen block, lengths."""
        with torch.no_grad(), torch.autocast(wave.device.type, enabled=False):  # the spectrum in float32
            mel, flens = self.log_mel(wave, ilens)
        return self.encode_mel(mel, flens)

    def encode_mel(self, mel: torch.Tensor, flens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Whisper's encoder on (B, n_mels, F) log-mel frames (``flens`` each, the rest zero): (B, T', width) output
        of the chosen block and its lengths (a full window of ``2 n_audio_ctx`` frames gives openai's output)."""
        w = self.whisper
        if self.training and (self.mask_prob > 0 or self.mask_channel_prob > 0):  # (B, F, n_mels) for the masks
            mel = mask_spans(mel.transpose(1, 2), flens, self.mask_prob, self.mask_length, self.mask_channel_prob,
                             self.mask_channel_length).transpose(1, 2)
        mel = mel.to(w.conv1.weight.dtype)
        with torch.no_grad() if self.freeze_conv else contextlib.nullcontext():
            x = F.gelu(w.conv1(mel))
            x = x.masked_fill(~length_mask(flens, x.size(-1)).unsqueeze(1), 0.0)  # conv2 sees zeros, as alone
            x = F.gelu(w.conv2(x)).transpose(1, 2)
        lens = torch.div(flens + 1, 2, rounding_mode="floor")  # (F + 2 - 3) // 2 + 1
        x = self.input_dropout(x + w.positional_embedding[: x.size(1)].to(x.dtype))
        key_mask = length_mask(lens, x.size(1))
        for block in w.blocks:
            if self.training and self.layerdrop > 0 and torch.rand(1).item() < self.layerdrop:
                continue
            x = block(x, key_mask)
        if w.ln_post is not None:
            x = w.ln_post(x)
        return x, lens
