"""Stage 3: Kaldi-compatible log-mel fbank (:mod:`salign.feats.fbank`), the sharded dumps of a data dir
(:mod:`salign.feats.shards`) as fbank ark/scp (:mod:`salign.feats.fbank_dump`) or raw audio files
(:mod:`salign.feats.raw_dump`)."""
from salign.feats.fbank import FBANK_DIM, SAMPLE_RATE, Segment, compute_fbank, load_segment, speed_perturb

__all__ = ["FBANK_DIM", "SAMPLE_RATE", "Segment", "compute_fbank", "load_segment", "speed_perturb"]
