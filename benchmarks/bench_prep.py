"""MuST-C data preparation speed: salign's segment-yaml parser vs PyYAML (what ESPnet's MuST-C data prep reads the
yaml with), on a train.yaml of full MuST-C size (~250k segments, one flow mapping per line).

Prints the median wall time of each over ``--repeats`` runs and the ratio. This is where the parser's speed is
measured (the test suite only asserts that it takes the fast path and scales linearly:
``tests/data/test_mustc.py``). Peers:

* ``salign parse_yaml``: :func:`salign.data.mustc.parse_yaml` (entries with their line numbers);
* ``PyYAML CSafeLoader``: ``yaml.load(text, Loader=yaml.CSafeLoader)`` (libyaml), or the pure-Python SafeLoader
  where libyaml is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def write_yaml(path: Path, n: int) -> Path:
    """A train.yaml of ``n`` segments in MuST-C's format (100 segments per talk)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f"- {{duration: 3.565, offset: {i}.4847, rw: 12, speaker_id: spk.{i // 100}, "
                    f"wav: ted_{i // 100}.wav}}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_segments", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "salign_bench_prep")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import yaml

    from salign.data.mustc import parse_yaml

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = write_yaml(args.workdir / "train.yaml", args.n_segments)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    ours = common.median_time(lambda: parse_yaml(path), args.repeats)
    theirs = common.median_time(lambda: yaml.load(path.read_text(encoding="utf-8"), Loader=loader), args.repeats)
    rows = [["salign parse_yaml", f"{common.med(ours):.2f}", f"{args.n_segments / common.med(ours):,.0f}"],
            [f"PyYAML {loader.__name__}", f"{common.med(theirs):.2f}", f"{args.n_segments / common.med(theirs):,.0f}"]]
    print(common.table(rows, ["parser", "seconds (median)", "segments/s"]))
    print(f"speed-up: {common.med(theirs) / common.med(ours):.1f}x ({args.n_segments} segments, {common.machine()})")
    if args.json:
        args.json.write_text(json.dumps({"n_segments": args.n_segments, "salign_s": ours, "pyyaml_s": theirs,
                                         "machine": common.machine()}, indent=1))


if __name__ == "__main__":
    main()
