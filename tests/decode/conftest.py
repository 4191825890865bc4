"""The tiny trained model the decoding tests share (trained once per session through the real st_train)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, run_tool, train_args

MT_CONFIG = REPO / "tests" / "conf" / "train_mt_test.yaml"


@pytest.fixture(scope="session")
def model_dir(tiny_data, tmp_path_factory) -> Path:
    """MT pre-training on text, then S-Align ST (+ st_ctc, + global CMVN as the recipe's models) initialised from it."""
    import kaldiio
    import numpy as np

    work = tmp_path_factory.mktemp("decode")
    feats = np.concatenate(list(kaldiio.load_scp(str(tiny_data / "feats.scp")).values())).astype(np.float64)
    np.savez(work / "stats.npz", count=np.array(len(feats)), sum=feats.sum(0), sum_square=(feats ** 2).sum(0))
    run_tool("salign.bin.st_train", train_args(tiny_data, work / "mt", speech=False, config=MT_CONFIG)
             + ["--max_epoch", "15"], work, "log_mt")
    args = train_args(tiny_data, work / "st") + ["--init_from_mt", work / "mt" / "valid.acc.best.pth",
                                                 "--max_epoch", "6", "--model_conf", "st_ctc_weight=0.3",
                                                 "--normalize", "global_mvn",
                                                 "--normalize_conf", f"stats_file={work / 'stats.npz'}"]
    run_tool("salign.bin.st_train", args, work, "log_st")
    return work / "st"
