"""Data-pipeline tokenisation for ``--lm hf``: ``text`` and ``src_text`` become the LM tokenizer's ids.

ESPnet's ST preprocessor maps text to ids with ``--token_list``/``--bpemodel`` (right for ``--lm tiny``, whose
vocabulary *is* the recipe's token list). A Hugging Face LM must see its own tokenizer's ids, so the task uses
:class:`HFTokenizerPreprocessor` instead whenever ``--lm hf``: it loads the tokenizer from ``lm_conf.path`` (no
download), tokenises without special tokens (the model adds bos/eos around the prompt and target itself) and passes
every other field (speech) through unchanged. The transcript (``src_text``) uses the same tokenizer, so the MT branch
and the CTC head share the LM's vocabulary.
"""
from __future__ import annotations

from typing import Dict, Sequence, Union

import numpy as np
from espnet2.train.preprocessor import AbsPreprocessor

from salign.llm.hf_lm import load_tokenizer


class HFTokenizerPreprocessor(AbsPreprocessor):
    """Tokenise the text fields with a local Hugging Face tokenizer."""

    def __init__(self, train: bool, path: str, text_name: Sequence[str] = ("text", "src_text")) -> None:
        """``path``: the LM directory (``lm_conf.path``); ``text_name``: the fields to tokenise."""
        super().__init__(train)
        self.path = path
        self.text_name = tuple(text_name)
        self.tokenizer = load_tokenizer(path)

    def __call__(self, uid: str, data: Dict[str, Union[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """Replace each text field by its int64 token ids; leave the rest as ESPnet loaded it."""
        out: Dict[str, np.ndarray] = {}
        for name, value in data.items():
            if name in self.text_name and isinstance(value, str):
                ids = self.tokenizer(value.strip(), add_special_tokens=False)["input_ids"]
                out[name] = np.asarray(ids, dtype=np.int64)
            elif isinstance(value, np.ndarray) and value.dtype == np.float64:
                out[name] = value.astype(np.float32)
            else:
                out[name] = value  # type: ignore[assignment]
        return out
