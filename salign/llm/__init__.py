"""The speech-LLM family (AI-STA's setting): speech encoder -> frame stacking -> projector -> decoder-only LM.

* :mod:`salign.llm.model` — :class:`~salign.llm.model.SpeechLLMModel` (ESPnet model: ST/MT/ASR behind prompts)
* :mod:`salign.llm.lm` — the LM interface and our tiny causal LM; :mod:`salign.llm.hf_lm` — Hugging Face LMs
* :mod:`salign.llm.projector` — ``linear`` / ``mlp`` projectors with frame stacking
* :mod:`salign.llm.moe` — ``moe``: Mixture-of-Experts projector in language expert groups (code-switch ST,
  docs/moe.md)
* :mod:`salign.llm.prompt` — prompt templates; :mod:`salign.llm.preprocess` — HF-tokenizer data preprocessing
* :mod:`salign.llm.task` — ``LLMSTTask`` (ESPnet registration); CLI ``python -m salign.bin.llm_train``
"""
