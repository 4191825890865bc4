"""ESPnet training logs parsed once (salign/analysis/train_log.py): epoch lines, wall time, threads, parameters,
and the first -> last summary that salign.bin.train_summary prints."""
from __future__ import annotations

import pytest

from salign.analysis import train_log as tl
from salign.bin import train_summary

LINE = ("[vm] 2026-01-01 10:01:00,000 (trainer:394) INFO: {e}epoch results: [train] iter_time=0.01, loss={loss}, "
        "loss_st={st}, acc_st={acc}, train_time=0.5, time=1 minute and 3.5 seconds, total_count=5, [valid] "
        "loss={vloss}, acc=0.5, time=2 seconds, total_count=1, [att_plot] time=1.5 seconds, total_count=0")


def log_text(epochs=((1, 4.0, 5.0, 0.1, 3.0), (2, 2.5, 3.0, 0.4, 2.0)), footer=True, params="27.31 M") -> str:
    text = "# python -m salign.bin.st_train ...\n"
    text += f"    Total Number of model parameters: 1.00 K\n    Total Number of model parameters: {params}\n"
    text += "[vm] 2026-01-01 10:00:05,000 (st:1) INFO: start\n"
    for e, loss, st, acc, vloss in epochs:
        text += LINE.format(e=e, loss=loss, st=st, acc=acc, vloss=vloss).replace("10:01:00", f"10:{e:02d}:00") + "\n"
    if footer:
        text += ("# Accounting: time=300 threads=2\n"
                 "# Ended (code 0) at Thu Jan  1 10:05:00 UTC 2026, elapsed time 300 seconds\n")
    return text


@pytest.mark.parametrize("text, seconds", [("3.5 seconds", 3.5), ("1 minute and 3 seconds", 63.0),
                                           ("2 hours, 1 minute and 0.5 seconds", 7260.5), ("1 day", 86400.0),
                                           ("no span", 0.0)])
def test_parse_timespan(text, seconds):
    assert tl.parse_timespan(text) == seconds


def test_an_epoch_line_has_each_sections_numbers_and_the_summed_time():
    r = tl.parse_epoch_line(LINE.format(e=7, loss=1.5, st=2.0, acc=0.25, vloss=1.25))
    assert r.epoch == 7 and set(r.stats) == {"train", "valid", "att_plot"}
    assert r.stats["train"]["loss"] == 1.5 and r.stats["train"]["acc_st"] == 0.25
    assert r.stats["train"]["train_time"] == 0.5 and "iter_time" in r.stats["train"]
    assert r.stats["valid"] == {"loss": 1.25, "acc": 0.5, "time": 2.0, "total_count": 1.0}
    assert r.seconds == 63.5 + 2.0 + 1.5  # time= of every section, not train_time= / iter_time=


def test_a_log_is_parsed_once_into_epochs_time_threads_and_parameters():
    log = tl.parse_train_log(log_text())
    assert [e.epoch for e in log.epochs] == [1, 2]
    assert [s["loss"] for s in log.split_stats("train")] == [4.0, 2.5]
    assert [s["loss"] for s in log.split_stats("valid")] == [3.0, 2.0]
    assert log.split_stats("nope") == []
    assert (log.elapsed, log.threads, log.params) == (300.0, 2, 27.31e6)  # the last model summary counts
    assert log.stamp_span == 115.0  # 10:00:05 -> 10:02:00
    assert log.wall_time() == (300.0, True)


def test_wall_time_without_footer_resumed_or_empty():
    assert tl.parse_train_log(log_text(footer=False)).wall_time() == (115.0, True)
    resumed = tl.parse_train_log(log_text(epochs=((3, 1.0, 1.0, 0.5, 1.0), (4, 1.0, 1.0, 0.5, 1.0))))
    assert resumed.wall_time() == (2 * 67.0, False)  # not exact: the epochs' own times
    assert tl.parse_train_log("nothing yet\n").wall_time() == (None, False)
    assert tl.parse_train_log(log_text(params="12 B")).params == 12e9


def test_summary_first_to_last_epoch(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(log_text())
    assert tl.summary(path) == (f"{path}:\n"
                                "  train (epoch 1 -> 2): loss 4.000 -> 2.500, loss_st 5.000 -> 3.000, "
                                "acc_st 0.100 -> 0.400\n"
                                "  valid (epoch 1 -> 2): loss 3.000 -> 2.000")
    path.write_text("# started\n")
    assert tl.summary(path) == f"{path}: no finished epoch yet"
    assert tl.summary(tmp_path / "missing.log") is None


def test_train_summary_cli_prints_each_existing_log(tmp_path, capsys):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text(log_text())
    b.write_text("")
    assert train_summary.main([str(a), str(tmp_path / "skipped.log"), str(b)]) == 0
    out = capsys.readouterr().out
    assert out == f"{tl.summary(a)}\n{b}: no finished epoch yet\n"
    assert train_summary.main([]) == 0 and capsys.readouterr().out == ""
