"""The real pretrained weights from the registry packages, when ``tools/get_pretrained.sh`` has set them up here
(skipped with the reason otherwise: CI fetches nothing). Whisper tiny.en: salign's encoder equals transformers' on
the same log-mel, and the converted model transcribes a synthetic sentence; SmolLM2: plain English is far likelier
than the same words shuffled."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from salign.bin.get_pretrained import DEFAULT_STORE
from salign.pretrained.fetch import status

SENTENCE = "the quick brown fox jumps over the lazy dog"


def ready(name: str) -> Path:
    why = status(name, DEFAULT_STORE)
    if why is not None:
        pytest.skip(f"{name} not set up in {DEFAULT_STORE} ({why}; tools/get_pretrained.sh {name})")
    return DEFAULT_STORE / name


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("flite not installed (tools/install.sh installs it)")
    import soundfile as sf

    from salign.feats.fbank import load_segment

    wav = tmp_path_factory.mktemp("tts") / "s.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", SENTENCE, "-o", str(wav)], check=True)
    assert sf.info(str(wav)).samplerate == 16000
    return load_segment(wav)


@pytest.mark.slow
def test_whisper_tiny_en_encoder_equals_transformers_and_transcribes(speech):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from salign.st.whisper import WhisperEncoder

    path = ready("whisper-tiny.en")
    proc = WhisperProcessor.from_pretrained(path)
    model = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    mel = proc(speech, sampling_rate=16000, return_tensors="pt").input_features  # the 30 s window
    with torch.no_grad():
        ref = model.model.encoder(mel).last_hidden_state
        ours, _ = WhisperEncoder(checkpoint=str(path)).eval().encode_mel(mel, torch.tensor([mel.size(-1)]))
        assert (ours - ref).abs().max() < 1e-4
        ids = model.generate(mel, max_new_tokens=30)
    text = proc.batch_decode(ids, skip_special_tokens=True)[0].lower().strip(" .")
    assert text == SENTENCE


@pytest.mark.slow
def test_smollm2_prefers_english_to_shuffled_words():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ready("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def nll(text: str) -> float:
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            return float(model(ids, labels=ids).loss)

    words = SENTENCE.split()
    shuffled = " ".join(words[i] for i in (3, 7, 0, 5, 8, 1, 6, 2, 4))
    assert nll(SENTENCE.capitalize() + ".") + 2.0 < nll(shuffled.capitalize() + ".")
