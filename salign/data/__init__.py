"""Data: the one reader of Kaldi ``key value`` files (:mod:`salign.data.kaldi`), Kaldi data dirs
(:mod:`salign.data.datadir`), MuST-C preparation, the mini MuST-C generator, and stage 4/10 dumps
(:mod:`salign.data.dump`)."""
