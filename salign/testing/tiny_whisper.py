"""A tiny randomly initialised Whisper saved as openai's checkpoints are, for tests of ``--encoder whisper``.

:class:`OpenAIAudioEncoder` is openai-whisper's ``whisper.model.AudioEncoder`` rewritten without the package (same
module and state-dict names, same forward: no masks, the input must fill the ``n_audio_ctx`` window): the reference
that :class:`salign.st.whisper.WhisperEncoder` is checked against. :func:`tiny_whisper` builds one (2 blocks, width
32, 4 heads, 80 mels, a 64-frame = 1.28 s window); :func:`save_openai` writes it as ``whisper.load_model`` reads a
``.pt`` file: ``{"dims": ModelDimensions fields, "model_state_dict": encoder.* and decoder.* tensors}`` (a few
random decoder tensors with openai's names stand for the text decoder, which the encoder must ignore).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import torch
import torch.nn.functional as F

from salign.st.whisper import sinusoids

PathLike = Union[str, Path]
TINY_DIMS: Dict[str, int] = dict(n_mels=80, n_audio_ctx=64, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                                 n_vocab=60, n_text_ctx=16, n_text_state=32, n_text_head=4, n_text_layer=1)


class OpenAIAttention(torch.nn.Module):
    """openai's ``MultiHeadAttention`` for self-attention, no kv cache."""

    def __init__(self, n_state: int, n_head: int) -> None:
        """query, key (no bias), value, out."""
        super().__init__()
        self.n_head = n_head
        self.query = torch.nn.Linear(n_state, n_state)
        self.key = torch.nn.Linear(n_state, n_state, bias=False)
        self.value = torch.nn.Linear(n_state, n_state)
        self.out = torch.nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """openai's ``qkv_attention``: q and k each scaled by d_head^-1/4, softmax in float32."""
        q, k, v = self.query(x), self.key(x), self.value(x)
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        w = F.softmax((q @ k).float(), dim=-1).to(q.dtype)
        return self.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


class OpenAIBlock(torch.nn.Module):
    """openai's ``ResidualAttentionBlock`` without cross-attention."""

    def __init__(self, n_state: int, n_head: int) -> None:
        """attn, attn_ln, mlp (Linear, GELU, Linear), mlp_ln."""
        super().__init__()
        self.attn = OpenAIAttention(n_state, n_head)
        self.attn_ln = torch.nn.LayerNorm(n_state)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(n_state, 4 * n_state), torch.nn.GELU(),
                                       torch.nn.Linear(4 * n_state, n_state))
        self.mlp_ln = torch.nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-norm residual attention and MLP."""
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class OpenAIAudioEncoder(torch.nn.Module):
    """openai's ``AudioEncoder``: (B, n_mels, 2 n_audio_ctx) log-mel -> (B, n_audio_ctx, n_audio_state)."""

    def __init__(self, n_mels: int, n_audio_ctx: int, n_audio_state: int, n_audio_head: int,
                 n_audio_layer: int) -> None:
        """conv1, conv2, positional_embedding (buffer), blocks, ln_post."""
        super().__init__()
        self.conv1 = torch.nn.Conv1d(n_mels, n_audio_state, kernel_size=3, padding=1)
        self.conv2 = torch.nn.Conv1d(n_audio_state, n_audio_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_audio_ctx, n_audio_state))
        self.blocks = torch.nn.ModuleList([OpenAIBlock(n_audio_state, n_audio_head) for _ in range(n_audio_layer)])
        self.ln_post = torch.nn.LayerNorm(n_audio_state)

    def forward(self, x: torch.Tensor, n_blocks: int = -1, ln_post: bool = True) -> torch.Tensor:
        """openai's forward (``n_blocks``/``ln_post``: stop after that many blocks, skip ln_post, for tests)."""
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)
        assert x.shape[1:] == self.positional_embedding.shape, "incorrect audio shape"
        x = (x + self.positional_embedding).to(x.dtype)
        for block in list(self.blocks)[: len(self.blocks) if n_blocks < 0 else n_blocks]:
            x = block(x)
        return self.ln_post(x) if ln_post else x


def tiny_whisper(seed: int = 0, dims: Dict[str, int] = TINY_DIMS) -> OpenAIAudioEncoder:
    """A randomly initialised tiny openai-layout audio encoder (eval mode), non-trivial norms and biases."""
    torch.manual_seed(seed)
    model = OpenAIAudioEncoder(**{k: dims[k] for k in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head",
                                                       "n_audio_layer")})
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))  # so that a swapped norm or bias shows in the outputs
    return model.eval()


def save_openai(model: OpenAIAudioEncoder, path: PathLike, dims: Dict[str, int] = TINY_DIMS,
                half: bool = False) -> Path:
    """Write ``model`` as an openai Whisper checkpoint (``half``: float16 tensors, as openai's files have)."""
    state = {f"encoder.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    d, v, c = dims["n_text_state"], dims["n_vocab"], dims["n_text_ctx"]
    state["decoder.token_embedding.weight"] = torch.randn(v, d, generator=g)
    state["decoder.positional_embedding"] = torch.randn(c, d, generator=g)
    for name, shape in (("attn.query.weight", (d, d)), ("attn.key.weight", (d, d)), ("cross_attn.query.weight", (d, d)),
                        ("cross_attn_ln.weight", (d,)), ("mlp.0.weight", (4 * d, d))):
        state[f"decoder.blocks.0.{name}"] = torch.randn(*shape, generator=g)
    state["decoder.ln.weight"] = torch.ones(d)
    if half:
        state = {k: t.half() for k, t in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dict(dims), "model_state_dict": state}, path)
    return path

