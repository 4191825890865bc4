"""Feature extraction: Kaldi-compatible log-mel fbank (:mod:`salign.feats.fbank`)."""
from salign.feats.fbank import FBANK_DIM, SAMPLE_RATE, Segment, compute_fbank, load_segment, speed_perturb

__all__ = ["FBANK_DIM", "SAMPLE_RATE", "Segment", "compute_fbank", "load_segment", "speed_perturb"]
