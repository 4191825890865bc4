"""The official S-Align acoustic encoder: HuBERT (or wav2vec 2.0, HuBERT-Large) on raw 16 kHz waveform.

``--encoder hubert`` with ``--input_size 1`` (no ESPnet frontend: speech is the (B, T) or (B, T, 1) waveform, its
lengths in samples). The model is torchaudio's ``wav2vec2_model`` built from a LOCAL checkpoint (a fairseq ``.pt``
file or a Hugging Face directory, see :mod:`salign.st.ssl_checkpoint`), then an optional Linear to ``output_size``
(the official 768 -> 512). ``encoder_conf``::

    checkpoint: downloads/hubert_base_ls960.pt   # required (or ``arch``: random weights, for tests/inference)
    output_size: 512            # Linear projection from the SSL width; none when equal or null
    layer: null                 # 1-based transformer layer whose output is used (null: the last; -2: one below)
    freeze_feature_extractor: true   # the CNN runs under no_grad, its parameters frozen (fairseq feature_grad_mult 0)
    normalize_waveform: null    # per-utterance zero mean / unit variance; null: what the checkpoint was trained with
    dropout / attention_dropout / activation_dropout / dropout_input / layerdrop: null  # null: checkpoint values
    mask_prob: 0.0              # time masks of fairseq fine-tuning (training only): span starts per frame x length
    mask_length: 10             # frames per time span
    mask_channel_prob: 0.0      # channel masks, the same semantics over the model width
    mask_channel_length: 10     # channels per span
    proj_dropout: 0.0           # dropout on the output (after the projection)

Fine-tuning regularisation as fairseq's HuBERT fine-tuning (the official S-Align A-enc: ``mask_prob 0.5``,
``mask_channel_prob 0.25``, ``layerdrop 0``, ``dropout_input 0``, ``activation_dropout 0.1``, ``proj_dropout 0.1``,
``conf/train_st_salign_hubert.yaml``): in training, spans of the transformer's input frames (after the feature
projection and ``dropout_input``, before the positional convolution) are replaced by the checkpoint's learned mask
embedding (fairseq ``mask_emb``, Hugging Face ``masked_spec_embed``; a fresh one, uniform in [0, 1), when the
checkpoint has none) and spans of its channels are zeroed, with the semantics of :mod:`salign.st.masking`.

Padding does not leak: output lengths follow the CNN's kernels and strides, the first conv block's GroupNorm
(HuBERT/wav2vec 2.0 Base) and the waveform normalisation use the valid samples only, attention masks the padding,
so an utterance gives the same output in a padded batch as alone (fairseq's GroupNorm sees the padding; this does
not). Time masks fall on valid frames only, but with fairseq's equal mask count per batch (``same_count``), so in
training an utterance's masks depend on its batch.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import Any, Dict, Optional, Tuple

import torch
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

from salign.st.masking import mask_spans
from salign.st.pretrained import PretrainedEncoder
from salign.st.ssl_checkpoint import load_ssl_checkpoint
from salign.utils.io import InputError
from salign.utils.tensor import length_mask

_OVERRIDES = {"dropout": "encoder_dropout", "attention_dropout": "encoder_attention_dropout",
              "activation_dropout": "encoder_ff_interm_dropout", "dropout_input": "encoder_projection_dropout",
              "layerdrop": "encoder_layer_drop"}


def masked_group_norm(x: torch.Tensor, lengths: torch.Tensor, norm: torch.nn.GroupNorm) -> torch.Tensor:
    """``norm`` (one group per channel) of (B, C, T) ``x`` with statistics over the valid frames only, in float32."""
    mask = length_mask(lengths, x.size(-1)).unsqueeze(1).float()
    xf = x.float()
    n = mask.sum(-1, keepdim=True).clamp(min=1.0)
    mean = (xf * mask).sum(-1, keepdim=True) / n
    var = (((xf - mean) * mask) ** 2).sum(-1, keepdim=True) / n
    y = (xf - mean) * torch.rsqrt(var + norm.eps)
    if norm.affine:
        y = y * norm.weight.float()[:, None] + norm.bias.float()[:, None]
    return y.to(x.dtype)


class HuBERTEncoder(PretrainedEncoder):
    """HuBERT / wav2vec 2.0 acoustic encoder (torchaudio model) loaded from a local checkpoint."""

    def __init__(
        self,
        input_size: int = 1,
        checkpoint: Optional[str] = None,
        output_size: Optional[int] = None,
        layer: Optional[int] = None,
        freeze_feature_extractor: bool = True,
        normalize_waveform: Optional[bool] = None,
        dropout: Optional[float] = None,
        attention_dropout: Optional[float] = None,
        activation_dropout: Optional[float] = None,
        dropout_input: Optional[float] = None,
        layerdrop: Optional[float] = None,
        arch: Optional[Dict[str, Any]] = None,
        mask_prob: float = 0.0,
        mask_length: int = 10,
        mask_channel_prob: float = 0.0,
        mask_channel_length: int = 10,
        proj_dropout: float = 0.0,
    ) -> None:
        """Build the model from ``checkpoint`` (or, without one, randomly from ``arch``); see the module doc."""
        super().__init__()
        from torchaudio.models import wav2vec2_model

        if input_size != 1:
            raise InputError(f"encoder hubert takes the raw 16 kHz waveform, got input_size {input_size}",
                             fix="pass --input_size 1 (no frontend) and wav.scp,speech,sound data")
        if checkpoint is None and arch is None:
            raise InputError("encoder hubert needs encoder_conf.checkpoint",
                             fix="a fairseq .pt file (e.g. downloads/hubert_base_ls960.pt) or a Hugging Face dir")
        state = mask_emb = None
        if checkpoint is not None:
            ckpt = load_ssl_checkpoint(checkpoint)
            arch, state, mask_emb = ckpt.arch, ckpt.state_dict, ckpt.mask_emb
            normalize_waveform = ckpt.normalize_waveform if normalize_waveform is None else normalize_waveform
            logging.info("hubert encoder: %s checkpoint %s (%d layers, width %d)", ckpt.kind, checkpoint,
                         arch["encoder_num_layers"], arch["encoder_embed_dim"])
        arch = copy.deepcopy(dict(arch))
        arch["extractor_conv_layer_config"] = [tuple(c) for c in arch["extractor_conv_layer_config"]]
        for name, value in (("dropout", dropout), ("attention_dropout", attention_dropout),
                            ("activation_dropout", activation_dropout), ("dropout_input", dropout_input),
                            ("layerdrop", layerdrop)):
            if value is not None:
                arch[_OVERRIDES[name]] = float(value)
        self.arch = arch  #: the architecture (torchaudio ``wav2vec2_model`` arguments) after the overrides
        self.ssl = wav2vec2_model(**arch, aux_num_out=None)
        if state is not None:
            missing, unexpected = self.ssl.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise InputError(f"checkpoint does not fit its own architecture: missing {sorted(missing)[:3]}, "
                                 f"unexpected {sorted(unexpected)[:3]}", checkpoint, fix="a complete checkpoint")
        n_layers = arch["encoder_num_layers"]
        layer = n_layers if layer is None else (layer + n_layers + 1 if layer < 0 else layer)
        if not 1 <= layer <= n_layers:
            raise InputError(f"encoder_conf.layer must be in 1..{n_layers} (or -1..-{n_layers}), got {layer}")
        transformer = self.ssl.encoder.transformer
        transformer.layers = transformer.layers[:layer]  # unused layers would be unused parameters (DDP)
        # layer_norm_first (Large) models normalise the last layer's output (not an intermediate one's) at the end
        self.final_norm = not transformer.layer_norm_first and layer == n_layers
        if not transformer.layer_norm_first and not self.final_norm:
            transformer.layer_norm = torch.nn.Identity()
        self.layer = layer
        self.normalize_waveform = bool(normalize_waveform)
        self.freeze_feature_extractor = freeze_feature_extractor
        if freeze_feature_extractor:
            self.ssl.feature_extractor.requires_grad_(False)
        convs = [(b.kernel_size, b.stride) for b in self.ssl.feature_extractor.conv_layers]
        self.min_samples = 1 + sum((k - 1) * math.prod(s for _, s in convs[:i]) for i, (k, _) in enumerate(convs))
        width = arch["encoder_embed_dim"]
        self.init_projection(width, output_size, proj_dropout)
        self.init_masking(mask_prob, mask_length, mask_channel_prob, mask_channel_length)
        self.mask_emb: Optional[torch.nn.Parameter] = None  #: learned embedding of time-masked frames
        if mask_prob > 0:
            if mask_emb is not None and mask_emb.numel() != width:
                raise InputError(f"the checkpoint's mask embedding has {mask_emb.numel()} values, its model width is "
                                 f"{width}", checkpoint, fix="a complete checkpoint")
            self.mask_emb = torch.nn.Parameter(mask_emb if mask_emb is not None else torch.rand(width))
            if mask_emb is None and checkpoint is not None:
                logging.warning("hubert encoder: %s has no mask embedding; time masks use a fresh one", checkpoint)


    def standalone_conf(self) -> Dict[str, Any]:
        """``encoder_conf`` entries that rebuild this architecture without the checkpoint file (YAML-safe).

        For a saved config.yaml that must load where the checkpoint is absent (a packed model): replace
        ``checkpoint`` by these; the weights then come from the trained model file.
        """
        arch = dict(self.arch, extractor_conv_layer_config=[list(c) for c in self.arch["extractor_conv_layer_config"]])
        return {"arch": arch, "normalize_waveform": self.normalize_waveform}


    def extract(self, wave: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """CNN feature extractor on (B, T) waveform: (B, T', C) features and their lengths, padding excluded."""
        x = wave.unsqueeze(1)
        for block in self.ssl.feature_extractor.conv_layers:
            x = block.conv(x)
            lengths = torch.div(lengths - block.kernel_size, block.stride, rounding_mode="floor") + 1
            lengths = lengths.clamp(min=0)
            if isinstance(block.layer_norm, torch.nn.GroupNorm) and block.layer_norm.num_groups == x.size(1):
                x = masked_group_norm(x, lengths, block.layer_norm)
            elif block.layer_norm is not None:
                x = block.layer_norm(x)
            x = torch.nn.functional.gelu(x)
        return x.transpose(1, 2), lengths

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """(B, T) or (B, T, 1) waveform, lengths in samples -> (B, T', output_size), frame lengths, None."""
        if xs_pad.dim() == 3:
            if xs_pad.size(-1) != 1:
                raise ValueError(f"encoder hubert expects mono waveform (B, T) or (B, T, 1), got {tuple(xs_pad.shape)}")
            xs_pad = xs_pad.squeeze(-1)
        ilens = ilens.to(xs_pad.device)
        if int(ilens.min()) < self.min_samples:
            raise TooShortUttError(f"has {int(ilens.min())} samples, the encoder's CNN needs >= {self.min_samples}",
                                   int(ilens.min()), self.min_samples)
        with self.backbone_grad():
            x, lens = self._backbone(xs_pad[:, : int(ilens.max())], ilens)
        x = self.project(x)
        x = x.masked_fill(~length_mask(lens, x.size(1)).unsqueeze(-1), 0.0)
        return x, lens, None

    def _backbone(self, wave: torch.Tensor, ilens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The SSL model on the (B, T) wave: (B, T', width) output of the chosen layer and its lengths."""
        if self.normalize_waveform:  # fairseq's per-utterance layer norm of the wave, over valid samples
            mask = length_mask(ilens, wave.size(1)).to(wave.dtype)
            mean = (wave * mask).sum(1, keepdim=True) / ilens[:, None]
            var = (((wave - mean) * mask) ** 2).sum(1, keepdim=True) / ilens[:, None]
            wave = (wave - mean) * torch.rsqrt(var + 1e-5) * mask
        with torch.no_grad() if self.freeze_feature_extractor else contextlib.nullcontext():
            feats, lens = self.extract(wave, ilens)
        x, mask = self.ssl.encoder._preprocess(feats, lens)
        if self.training and (self.mask_prob > 0 or self.mask_channel_prob > 0):
            x = mask_spans(x, lens, self.mask_prob, self.mask_length, self.mask_channel_prob, self.mask_channel_length,
                           self.mask_emb)
        transformer = self.ssl.encoder.transformer
        x = transformer._preprocess(x)
        for layer in transformer.layers:
            if self.training and transformer.layer_drop > 0 and torch.rand(1).item() < transformer.layer_drop:
                continue
            x, _ = layer(x, mask)
        if self.final_norm:
            x = transformer.layer_norm(x)
        return x, lens
