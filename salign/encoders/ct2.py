"""CTranslate2 ``model.bin`` files (format versions 1-6), read and written without the ``ctranslate2`` package.

Layout (little-endian)::

    u32 version ; string spec_name (version >= 2) ; u32 revision (version >= 3) ; u32 n_variables
    n_variables x { string name ; u8 rank ; rank x u32 dim ; u8 dtype (version >= 4, else f32) ;
                    u32 nbytes (version >= 4, else the element count) ; raw bytes }
    u32 n_aliases (version >= 3) ; n_aliases x { string alias ; string target }
    string := u16 length (the NUL included) ; bytes ; NUL

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Quantised models store an int8 weight ``W``
with a ``W_scale`` variable, one scale per output row: the float weight is ``W / scale[:, None]``
(:func:`dequantize`). This is the reader behind every CTranslate2 checkpoint salign accepts (Whisper's
``model.bin``; a model split in ``model.bin.part1``, ``.part2``, ... is concatenated in order).
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Dict, List, Sequence, Union

import torch

from salign.utils.io import InputError, atomic_write

PathLike = Union[str, Path]
DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}
CODES = {v: k for k, v in DTYPES.items()}
_FIX = "a CTranslate2 model.bin (e.g. from tools/get_pretrained.sh), complete and not truncated"


@dataclass
class CT2Model:
    """What a ``model.bin`` holds: the spec name and revision, the variables, and the aliases (alias -> target)."""

    spec: str
    revision: int
    variables: Dict[str, torch.Tensor]
    aliases: Dict[str, str] = field(default_factory=dict)
    version: int = 6

    def get(self, name: str) -> torch.Tensor:
        """A variable by its name or an alias of it."""
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise InputError(f"truncated CTranslate2 file (wanted {n} bytes at offset {self.f.tell() - len(data)})",
                             self.path, fix=_FIX)
        return data

    def u(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.u("H")
        raw = self.read(n)
        if not raw.endswith(b"\0"):
            raise InputError("malformed CTranslate2 file (a string without its NUL)", self.path, fix=_FIX)
        return raw[:-1].decode("utf-8")


def _open_parts(path: Path) -> BinaryIO:
    """``path`` (a model.bin or a directory holding one, or its ``.partN`` pieces) as one stream."""
    if path.is_dir():
        path = path / "model.bin"
    if path.is_file():
        return open(path, "rb")
    parts = sorted(path.parent.glob(path.name + ".part*"), key=lambda p: int(p.suffix[5:] or 0))
    if not parts:
        raise InputError("no CTranslate2 model.bin (nor model.bin.part1, ...)", path, fix=_FIX)
    return io.BytesIO(b"".join(p.read_bytes() for p in parts))


def read_ct2(path: PathLike) -> CT2Model:
    """Read every variable of a CTranslate2 model (a ``model.bin``, or the directory holding it); bad input is a
    one-line :class:`InputError` naming the file."""
    path = Path(path)
    with _open_parts(path) as f:
        r = _Reader(f, path)
        version = r.u("I")
        if not 1 <= version <= 6:
            raise InputError(f"not a CTranslate2 model.bin (format version {version}; 1-6 are known)", path, fix=_FIX)
        spec = r.string() if version >= 2 else ""
        revision = r.u("I") if version >= 3 else 1
        variables: Dict[str, torch.Tensor] = {}
        for _ in range(r.u("I")):
            name = r.string()
            shape = [r.u("I") for _ in range(r.u("B"))]
            code = r.u("B") if version >= 4 else 0
            if code not in DTYPES:
                raise InputError(f"variable {name}: unknown dtype code {code}", path, fix=_FIX)
            dtype = DTYPES[code]
            nbytes = r.u("I")
            if version < 4:
                nbytes *= torch.empty(0, dtype=dtype).element_size()
            numel = 1
            for d in shape:
                numel *= d
            if nbytes != numel * torch.empty(0, dtype=dtype).element_size():
                raise InputError(f"variable {name}: {nbytes} bytes for shape {shape} of {dtype}", path, fix=_FIX)
            buf = bytearray(r.read(nbytes))
            flat = torch.frombuffer(buf, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
            variables[name] = flat.reshape(shape)
        aliases = {}
        if version >= 3:
            for _ in range(r.u("I")):
                alias = r.string()
                aliases[alias] = r.string()
    return CT2Model(spec, revision, variables, aliases, version)


def dequantize(model: CT2Model, dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    """Every variable as a float tensor of ``dtype``: int8 weights divided by their per-row ``<name>_scale``
    (the scales themselves are dropped); integer scalars (head counts) are kept as they are."""
    out: Dict[str, torch.Tensor] = {}
    for name, t in model.variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in model.variables:
            continue
        scale = model.variables.get(name + "_scale")
        if scale is not None and t.dtype == torch.int8:
            s = scale.float()
            t = t.float() / (s.reshape(-1, *([1] * (t.dim() - 1))) if s.numel() > 1 else s)
            out[name] = t.to(dtype)
        elif t.is_floating_point():
            out[name] = t.to(dtype)
        else:
            out[name] = t
    return out


def quantize_int8(weight: torch.Tensor) -> Sequence[torch.Tensor]:
    """CTranslate2's int8 quantisation of a 2-D weight: (int8 weight, per-row scale) with ``W ~ q / scale``."""
    amax = weight.abs().amax(dim=1).clamp(min=1e-12)
    scale = 127.0 / amax
    return torch.round(weight * scale[:, None]).clamp(-127, 127).to(torch.int8), scale.float()


def _string(s: str) -> bytes:
    raw = s.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: PathLike, model: CT2Model) -> None:
    """Write ``model`` as a version-6 ``model.bin`` (atomically): what tests use to make tiny files in the real
    format."""
    chunks: List[bytes] = [struct.pack("<I", 6), _string(model.spec), struct.pack("<I", model.revision),
                           struct.pack("<I", len(model.variables))]
    for name, t in model.variables.items():
        t = t.detach().contiguous()
        chunks += [_string(name), struct.pack("<B", t.dim()), *(struct.pack("<I", d) for d in t.shape),
                   struct.pack("<B", CODES[t.dtype])]
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        chunks += [struct.pack("<I", len(raw)), raw]
    chunks.append(struct.pack("<I", len(model.aliases)))
    for alias, target in model.aliases.items():
        chunks += [_string(alias), _string(target)]
    with atomic_write(path, "wb") as f:
        for c in chunks:
            f.write(c)
