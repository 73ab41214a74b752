"""scripts/aggregate.py on hand-made run directories: grouping (by task, split and settings),
mean ± sample std, LaTeX, each run counted once, bad folders named, and the paper's numbers only
beside OWDFA-40 runs on the paper's recipe."""
import json
import shutil

import pytest
from conftest import REPO, run_cli

from dataset.split_file import ImageRecord, SplitRecord
from inference.results import mean_std


def make_run(root, name, seed, last, protocol=1, unknown_k=False, epochs=50, **config):
    """A finished run's config.json and metrics.jsonl (by default on the paper's schedule)."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"protocol": protocol, "unknown_k": unknown_k, "seed": seed, "epochs": epochs, "classes_file": "",
           "known_classes": [], "lr": 2e-4, "run_dir": str(run), **config}
    (run / "config.json").write_text(json.dumps(cfg))
    first = {"epoch": 0, "all_acc": 0.0, "known_acc": 0.0, "novel_acc": 0.0, "nmi": 0.0, "ari": 0.0}
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [first, {"epoch": epochs - 1, **last}]))
    return run


def with_split(run, *images):
    """The run with a split.json as train.py writes it, of ``images`` (default one test image)."""
    SplitRecord(1, {}, [ImageRecord(image, 1, "test", 10) for image in images or ("a/1.png",)]).write(
        run / "split.json")
    return run


def acc(all_acc, known, novel, nmi=0.5, ari=0.25, **extra):
    return {"all_acc": all_acc, "known_acc": known, "novel_acc": novel, "nmi": nmi, "ari": ari, **extra}


def discovery(rate, known_rate, used):
    return {"discovery_rate": rate, "known_on_novel_rate": known_rate, "novel_prototypes_used": used}


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path, "p1_a", 2025, acc(0.80, 0.90, 0.70, nmi=0.60, **discovery(0.5, 0.02, 20))),
        make_run(tmp_path, "p1_b", 2026, acc(0.84, 0.94, 0.74, nmi=0.62, **discovery(0.6, 0.04, 21))),
        make_run(tmp_path, "p1_c", 2027, acc(0.88, 0.98, 0.78, nmi=0.64, **discovery(0.7, 0.06, 22))),
        make_run(tmp_path, "p1_wok_a", 2025, acc(0.5, 0.6, 0.4, valid_prototypes=38, k_novel_estimate=19,
                                                 k_novel_true=22), unknown_k=True),
        make_run(tmp_path, "p1_wok_b", 2026, acc(0.7, 0.8, 0.6, valid_prototypes=42, k_novel_estimate=23,
                                                 k_novel_true=22), unknown_k=True),
        make_run(tmp_path, "custom", 2025, acc(0.9, 1.0, 0.8), classes_file="/x/my_classes.csv",
                 known_classes=[8, 0, 3]),
    ]


def test_mean_and_sample_std():
    assert mean_std([0.80, 0.84, 0.88]) == "84.0 ± 4.0"        # sample std of 80, 84, 88 is 4
    assert mean_std([38, 42], scale=1) == "40.0 ± 2.8"          # sqrt(8) = 2.83
    assert mean_std([0.5]) == "50.0" and mean_std([None]) == "n/a"


def test_groups_means_paper_and_latex(runs, tmp_path):
    md, tex = tmp_path / "r.md", tmp_path / "r.tex"
    result = run_cli("scripts/aggregate.py", *map(str, runs), "--out", str(md), "--latex", str(tex))
    assert result.returncode == 0, result.stderr
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[1:-1]]
            for line in result.stdout.split("Per run:")[0].splitlines()[2:] if line.startswith("|")}
    p1 = rows[("P1", "known K")]
    assert p1[2:11] == ["2025, 2026, 2027", "84.0 ± 4.0", "94.0 ± 4.0", "74.0 ± 4.0", "62.0 ± 2.0", "25.0 ± 0.0",
                        "60.0 ± 10.0", "4.0 ± 2.0", "21.0 ± 1.0"], "discovery beside accuracy"
    assert p1[12] == "88.3 / 98.0 / 76.5"
    wok = rows[("P1", "unknown K")]
    assert wok[3] == "60.0 ± 14.1" and wok[11] == "40.0 ± 2.8 (41)" and wok[12] == "87.5 / 98.2 / 74.5 (K 39)"
    assert wok[8:11] == ["n/a"] * 3, "runs that recorded no discovery show it as missing"
    custom = rows[("my_classes.csv known 0,3,8", "known K")]
    assert custom[3] == "90.0" and custom[12] == "", "no paper numbers for a custom table"
    assert md.read_text().count("84.0 ± 4.0") == 1
    latex = tex.read_text()
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"84.0 $\pm$ 4.0" in latex and r"my\_classes.csv known 0,3,8" in latex
    assert r"\begin{tabular}{lllcccccccccc}" in latex
    per_seed = latex.split("Per-seed")[1]
    assert "2026 & 84.0 & 94.0 & 74.0 & 62.0 & 25.0 & 60.0 & 4.0 & 21" in per_seed


def summary_of(stdout):
    """{label, K: cells} of the printed summary table."""
    return {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[1:-1]]
            for line in stdout.split("Per run:")[0].splitlines()[2:] if line.startswith("|")}


def test_runs_with_other_settings_form_their_own_labelled_group(tmp_path):
    a = make_run(tmp_path, "a", 2025, acc(0.8, 0.9, 0.7))
    b = make_run(tmp_path, "b", 2026, acc(0.6, 0.9, 0.7), lr=1e-3)
    result = run_cli("scripts/aggregate.py", str(a), str(b))
    assert result.returncode == 0, result.stderr
    rows = summary_of(result.stdout)
    assert rows[("P1 [lr=0.0002]", "known K")][3] == "80.0" and rows[("P1 [lr=0.001]", "known K")][3] == "60.0"
    assert "P1 [lr=0.001], known K: kept apart from the other P1 runs by lr=0.001" in result.stdout
    assert "lr 0.001 (paper 0.0002)" in result.stdout, "the lr=1e-3 run is not the paper's recipe"


def test_runs_on_other_data_are_not_averaged(tmp_path):
    a = make_run(tmp_path, "a", 2025, acc(0.8, 0.9, 0.7))
    b = make_run(tmp_path, "b", 2026, acc(0.4, 0.9, 0.7))
    with_split(a, "a/1.png")
    with_split(b, "b/2.png")
    fingerprints = [json.loads((run / "split.json").read_text())["fingerprint"][:8] for run in (a, b)]
    result = run_cli("scripts/aggregate.py", str(a), str(b))
    assert result.returncode == 0 and not result.stderr, result.stderr
    rows = summary_of(result.stdout)
    assert rows[(f"P1 [split {fingerprints[0]}]", "known K")][3] == "80.0"
    assert rows[(f"P1 [split {fingerprints[1]}]", "known K")][3] == "40.0"


def test_a_run_whose_split_json_was_edited_is_left_out_and_named(tmp_path):
    honest = [with_split(make_run(tmp_path, name, seed, acc(value, 0.9, 0.7)), "a/1.png", "a/2.png")
              for name, seed, value in (("a", 2025, 0.8), ("b", 2026, 0.6))]
    edited = with_split(make_run(tmp_path, "edited", 2027, acc(0.99, 0.99, 0.99)), "a/1.png", "a/2.png")
    split = json.loads((edited / "split.json").read_text())
    split["images"][0]["role"] = "train-labelled"  # a test image moved to training, the fingerprint left as it was
    (edited / "split.json").write_text(json.dumps(split))
    unreadable = with_split(make_run(tmp_path, "unreadable", 2028, acc(0.99, 0.99, 0.99)))
    (unreadable / "split.json").write_text("{truncated")
    result = run_cli("scripts/aggregate.py", *map(str, honest), str(edited), str(unreadable))
    assert result.returncode == 0, result.stderr
    assert summary_of(result.stdout)[("P1", "known K")][2:4] == ["2025, 2026", "70.0 ± 14.1"]
    assert str(edited) not in result.stdout and str(unreadable) not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("skipped: ") for line in lines)
    assert f"{edited / 'split.json'} states the fingerprint {split['fingerprint'][:12]}, but its images give" \
        in lines[0] and "edited after training" in lines[0] and "left out of every mean" in lines[0]
    assert f"split file {unreadable / 'split.json'} cannot be read" in lines[1]
    result = run_cli("scripts/aggregate.py", str(edited))
    assert result.returncode == 2 and "error: none of the 1 folders is a finished run with an intact" in result.stderr


def test_a_run_given_twice_or_copied_counts_once(tmp_path):
    a = make_run(tmp_path, "a", 2025, acc(0.8, 0.9, 0.7))
    b = make_run(tmp_path, "b", 2026, acc(0.6, 0.8, 0.5))
    copy = shutil.copytree(a, tmp_path / "copy_of_a")
    result = run_cli("scripts/aggregate.py", str(a), f"{a}/../a", str(b), str(copy))
    assert result.returncode == 0, result.stderr
    assert summary_of(result.stdout)[("P1", "known K")][2:4] == ["2025, 2026", "70.0 ± 14.1"]
    assert result.stderr.count("is the same run as") == 2 and f"{copy} is the same run as {a}" in result.stderr


def test_bad_folders_are_named_and_skipped(tmp_path):
    good = make_run(tmp_path, "good", 2025, acc(0.8, 0.9, 0.7))
    (tmp_path / "notes").mkdir()
    broken = make_run(tmp_path, "broken", 2026, acc(0.8, 0.9, 0.7))
    (broken / "metrics.jsonl").write_text("{not json\n")
    unfinished = make_run(tmp_path, "c", 2025, acc(0.8, 0.9, 0.7), epochs=2)
    (unfinished / "config.json").write_text(json.dumps({**json.loads((unfinished / "config.json").read_text()),
                                                         "epochs": 5}))
    result = run_cli("scripts/aggregate.py", str(tmp_path / "notes"), str(good), str(broken), str(unfinished))
    assert result.returncode == 0 and summary_of(result.stdout)[("P1", "known K")][2] == "2025"
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("skipped: ") for line in lines)
    assert f"{tmp_path / 'notes'} is not a run directory" in lines[0]
    assert f"{broken} has an unreadable config.json or metrics.jsonl (JSONDecodeError" in lines[1]
    assert "unfinished (2 of 5 epochs)" in lines[2] and "--resume" in lines[2]
    result = run_cli("scripts/aggregate.py", str(tmp_path / "notes"), str(unfinished))
    assert result.returncode == 2 and "error: none of the 2 folders is a finished run" in result.stderr


def test_paper_numbers_only_for_owdfa40_on_the_papers_recipe(tmp_path):
    table = tmp_path / "owdfa40_copy.csv"
    shutil.copy(REPO / "dataset" / "owdfa40_classes.csv", table)
    mini = make_run(tmp_path, "mini", 2025, acc(0.4, 0.7, 0.3), epochs=1, budget_known=12)
    copy = make_run(tmp_path, "copy", 2025, acc(0.8, 0.9, 0.7), classes_file=str(table))
    result = run_cli("scripts/aggregate.py", str(mini), str(copy))
    rows = summary_of(result.stdout)
    assert rows[("owdfa40_copy.csv P1", "known K")][12] == "88.3 / 98.0 / 76.5", "the same table by content"
    mini_row = next(cells for (label, _), cells in rows.items() if label.startswith("P1"))
    assert mini_row[12] == ""
    assert "no paper numbers, its recipe is not the paper's: budget_known 12 (paper 2000), epochs 1 (paper 50)" \
        in result.stdout


def test_out_and_latex_must_have_their_extension(runs, tmp_path):
    result = run_cli("scripts/aggregate.py", *map(str, runs), "--out", str(tmp_path / "r.tex"))
    assert result.returncode == 2 and "--out" in result.stderr and "takes a .md file" in result.stderr
    assert not result.stdout


def test_a_run_stopped_in_its_first_epoch_is_unfinished_with_its_resume_command(tmp_path):
    from inference.results import read_runs

    run = make_run(tmp_path, "stopped", 2025, acc(0.8, 0.9, 0.7))
    (run / "metrics.jsonl").unlink()  # SIGTERM before the first epoch ended: config.json, no metrics yet
    assert read_runs([run]) == ([], [f"{run} is unfinished (0 of 50 epochs); finish it with "
                                     f"python train.py --resume {run}"])
