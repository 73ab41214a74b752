"""scripts/compare.py on hand-made run folders: one row per task, K and method with
mean ± std over seeds, and a refusal naming the runs when splits differ."""
import json

import pytest
from test_aggregate import acc, discovery, make_run, with_split

import scripts.compare as compare


@pytest.fixture
def runs(tmp_path):
    return [
        with_split(make_run(tmp_path, "cal_a", 2025, acc(0.80, 0.90, 0.70, **discovery(0.0, 0.0, 0)))),
        with_split(make_run(tmp_path, "cal_b", 2026, acc(0.84, 0.94, 0.74, **discovery(0.1, 0.02, 4)))),
        with_split(make_run(tmp_path, "cpl_a", 2025, acc(0.60, 0.80, 0.40), method="cpl")),
        with_split(make_run(tmp_path, "cpl_b", 2026, acc(0.62, 0.82, 0.42), method="cpl")),
        with_split(make_run(tmp_path, "simgcd_a", 2025, acc(0.70, 0.85, 0.55), method="simgcd")),
        with_split(make_run(tmp_path, "p2_cal", 2025, acc(0.5, 0.6, 0.4), protocol=2), "b/2.png"),
    ]


def test_one_row_per_task_and_method_with_mean_and_std(runs, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert compare.main([str(r) for r in runs] + ["--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| task | K | method | seeds | All | Known | Novel | NMI | ARI | Discovery | Known on novel "
                        "| Novel protos used |")
    assert lines[2] == ("| P1 | known K | cal | 2025, 2026 | 82.0 ± 2.8 | 92.0 ± 2.8 | 72.0 ± 2.8 | 50.0 ± 0.0 "
                        "| 25.0 ± 0.0 | 5.0 ± 7.1 | 1.0 ± 1.4 | 2.0 ± 2.8 |")
    assert lines[3].startswith("| P1 | known K | cpl | 2025, 2026 | 61.0 ± 1.4 | 81.0 ± 1.4 | 41.0 ± 1.4 |")
    assert lines[4].startswith("| P1 | known K | simgcd | 2025 | 70.0 | 85.0 | 55.0 |")
    assert lines[5].startswith("| P2 | known K | cal | 2025 | 50.0 |")  # another task may have its own split
    assert out.read_text().endswith("\n".join(lines) + "\n")


def test_runs_on_different_splits_are_refused_by_name(runs, tmp_path, capsys):
    other = with_split(make_run(tmp_path, "cpl_other", 2027, acc(0.9, 0.9, 0.9), method="cpl"), "c/3.png")
    assert compare.main([str(r) for r in runs] + [str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "P1: the runs were trained on 2 different splits" in err
    assert str(other) in err and str(runs[0]) in err and str(runs[-1]) not in err
    assert "split_file=" in err


def test_a_split_json_edited_after_training_is_refused(runs, capsys):
    split = json.loads((runs[0] / "split.json").read_text())
    split["images"][0]["role"] = "train-labelled"
    (runs[0] / "split.json").write_text(json.dumps(split))
    assert compare.main([str(r) for r in runs]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {runs[0] / 'split.json'} states the fingerprint" in err
    assert "edited after training" in err


def test_a_run_without_split_json_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path, "bare", 2025, acc(0.8, 0.9, 0.7))
    assert compare.main([str(run)]) == 2
    assert "has no split.json" in capsys.readouterr().err


def test_aggregate_keeps_methods_apart_and_the_papers_numbers_for_cal(runs):
    from inference.results import group_runs, read_run, summary_rows

    _, rows = summary_rows(group_runs([read_run(r) for r in runs]))
    labels = [(row[0], row[2], row[-1]) for row in rows]
    assert labels == [("P1", "2025, 2026", "88.3 / 98.0 / 76.5"), ("P1 cpl", "2025, 2026", ""),
                      ("P1 simgcd", "2025", ""), ("P2", "2025", "82.8 / 97.6 / 67.5")]


def test_one_methods_runs_with_other_settings_are_rows_of_their_own(runs, tmp_path, capsys):
    paper = [with_split(make_run(tmp_path, f"cal_paper_{seed}", seed, acc(0.4, 0.9, 0.5), cal_gamma=0.9))
             for seed in (2025, 2026)]
    assert compare.main([str(r) for r in runs + paper]) == 0
    rows = [line.split(" | ")[:4] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows[:2] == [["| P1", "known K", "cal [cal_gamma=0.9]", "2025, 2026"],
                        ["| P1", "known K", "cal [cal_gamma=unset]", "2025, 2026"]]
    assert rows[2][2] == "cpl"  # a method with one setting keeps its plain name
