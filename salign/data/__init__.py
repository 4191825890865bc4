"""Corpus reading and validation (MuST-C), Kaldi data-dir tools and the mini MuST-C generator."""
