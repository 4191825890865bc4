"""Prompts of the speech-LLM family: one template per task, with the source (speech or transcript) in the middle.

A template is a string with ``{src}``, ``{tgt}`` (language names) and exactly one ``{input}`` — where the projected
speech frames (ST, ASR) or the transcript's token embeddings (MT) go. The LM sees::

    [bos] prefix  <input>  suffix  target  eos
    └──── no loss ──────────────┘  └ CE ─┘

Defaults (``model_conf.prompts`` overrides any of them):

* a Hugging Face LM (natural-language instructions, its own tokenizer)::

    st:  "Translate the {src} speech into {tgt}.\\nSpeech: {input}\\n{tgt}:"
    mt:  "Translate the {src} text into {tgt}.\\nText: {input}\\n{tgt}:"
    asr: "Transcribe the {src} speech.\\nSpeech: {input}\\n{src}:"

* our tiny LM (one word per token; words not in the token list get reserved rows)::

    st:  "<st> <{src}> <{tgt}> {input} <sep>"
    mt:  "<mt> <{src}> <{tgt}> {input} <sep>"
    asr: "<asr> <{src}> {input} <sep>"
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

TASKS = ("st", "mt", "asr")
HF_PROMPTS: Dict[str, str] = {
    "st": "Translate the {src} speech into {tgt}.\nSpeech: {input}\n{tgt}:",
    "mt": "Translate the {src} text into {tgt}.\nText: {input}\n{tgt}:",
    "asr": "Transcribe the {src} speech.\nSpeech: {input}\n{src}:",
}
TOKEN_PROMPTS: Dict[str, str] = {
    "st": "<st> <{src}> <{tgt}> {input} <sep>",
    "mt": "<mt> <{src}> <{tgt}> {input} <sep>",
    "asr": "<asr> <{src}> {input} <sep>",
}
LANGUAGE_NAMES: Dict[str, str] = {
    "en": "English", "de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ar": "Arabic",
}


def prompt_words(text: str) -> List[str]:
    """A token-list prompt's words (whitespace split)."""
    return text.split()


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: the text before and after the input."""

    prefix: str
    suffix: str


def render(template: str, src: str, tgt: str, names: bool) -> Prompt:
    """Fill ``{src}``/``{tgt}`` (full language names when ``names``, else the codes) and split at ``{input}``."""
    if template.count("{input}") != 1:
        raise ValueError(f"a prompt template needs exactly one {{input}}: {template!r}")
    if names:
        src, tgt = LANGUAGE_NAMES.get(src, src), LANGUAGE_NAMES.get(tgt, tgt)
    before, after = template.split("{input}")
    try:
        return Prompt(before.format(src=src, tgt=tgt), after.format(src=src, tgt=tgt))
    except (KeyError, IndexError) as exc:
        raise ValueError(f"prompt template {template!r}: only {{src}}, {{tgt}}, {{input}} may be used") from exc


def render_all(src: str, tgt: str, natural: bool, overrides: Optional[Mapping[str, str]] = None
               ) -> Dict[str, Prompt]:
    """The three task prompts: natural-language defaults (HF LMs) or token defaults (our LM), with overrides."""
    templates = dict(HF_PROMPTS if natural else TOKEN_PROMPTS)
    unknown = sorted(set(overrides or {}) - set(TASKS))
    if unknown:
        raise ValueError(f"model_conf.prompts: unknown task(s) {unknown}; use {list(TASKS)}")
    templates.update(overrides or {})
    return {task: render(templates[task], src, tgt, names=natural) for task in TASKS}
