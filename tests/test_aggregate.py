"""scripts/aggregate.py on hand-made run directories: grouping, mean ± sample std, LaTeX."""
import json

import pytest
from conftest import run_cli

from utils.results import mean_std


def make_run(root, name, seed, last, protocol=1, unknown_k=False, epochs=2, **config):
    run = root / name
    run.mkdir(parents=True)
    cfg = {"protocol": protocol, "unknown_k": unknown_k, "seed": seed, "epochs": epochs, "classes_file": "",
           "known_classes": [], "lr": 2e-4, "run_dir": str(run), **config}
    (run / "config.json").write_text(json.dumps(cfg))
    first = {"epoch": 0, "all_acc": 0.0, "known_acc": 0.0, "novel_acc": 0.0, "nmi": 0.0, "ari": 0.0}
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [first, {"epoch": epochs - 1, **last}]))
    return run


def acc(all_acc, known, novel, nmi=0.5, ari=0.25, **extra):
    return {"all_acc": all_acc, "known_acc": known, "novel_acc": novel, "nmi": nmi, "ari": ari, **extra}


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path, "p1_a", 2025, acc(0.80, 0.90, 0.70, nmi=0.60)),
        make_run(tmp_path, "p1_b", 2026, acc(0.84, 0.94, 0.74, nmi=0.62)),
        make_run(tmp_path, "p1_c", 2027, acc(0.88, 0.98, 0.78, nmi=0.64)),
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
    assert p1[2:8] == ["2025, 2026, 2027", "84.0 ± 4.0", "94.0 ± 4.0", "74.0 ± 4.0", "62.0 ± 2.0", "25.0 ± 0.0"]
    assert p1[9] == "88.3 / 98.0 / 76.5"
    wok = rows[("P1", "unknown K")]
    assert wok[3] == "60.0 ± 14.1" and wok[8] == "40.0 ± 2.8 (41)" and wok[9] == "87.5 / 98.2 / 74.5 (K 39)"
    custom = rows[("my_classes.csv known 0,3,8", "known K")]
    assert custom[3] == "90.0" and custom[9] == "", "no paper numbers for a custom table"
    assert md.read_text().count("84.0 ± 4.0") == 1
    latex = tex.read_text()
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"84.0 $\pm$ 4.0" in latex and r"my\_classes.csv known 0,3,8" in latex
    assert r"\begin{tabular}{lllccccccc}" in latex
    per_seed = latex.split("Per-seed")[1]
    assert "2026 & 84.0 & 94.0 & 74.0 & 62.0 & 25.0" in per_seed


def test_mixed_configs_are_noted_and_unfinished_runs_refused(tmp_path):
    a = make_run(tmp_path, "a", 2025, acc(0.8, 0.9, 0.7))
    b = make_run(tmp_path, "b", 2026, acc(0.8, 0.9, 0.7), lr=1e-3)
    result = run_cli("scripts/aggregate.py", str(a), str(b))
    assert result.returncode == 0 and "P1, known K: its runs differ in lr" in result.stdout
    unfinished = make_run(tmp_path, "c", 2025, acc(0.8, 0.9, 0.7), epochs=2)
    (unfinished / "config.json").write_text(json.dumps({**json.loads((unfinished / "config.json").read_text()),
                                                         "epochs": 5}))
    result = run_cli("scripts/aggregate.py", str(a), str(unfinished))
    assert result.returncode == 2 and "unfinished (2 of 5 epochs)" in result.stderr and "--resume" in result.stderr
