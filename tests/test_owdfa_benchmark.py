"""OW-DFA, the CPL benchmark: its class tables (20 methods, 8 known; P2 adds two real
classes) and both protocols trained end to end on the mini dataset in the release's
nested layout, the split table showing exactly the paper's counts, scaled."""
import json
from pathlib import Path

import pytest
from conftest import CPL_SCALE, REPO, TINY, start_cli

from dataset.protocols import load_table

P1, P2 = (load_table(REPO / "dataset" / f"owdfa_p{p}_classes.csv") for p in (1, 2))
KNOWN_METHODS = {"Deepfakes", "DeepFaceLab", "Face2Face", "FOMM", "MaskGAN", "FaceAPP", "StyleGAN", "CycleGAN"}
# the paper's images per class: (labelled, unlabelled) when known, unlabelled when novel
PAPER = {"known": (1500, 500), "novel": (0, 1500), "Youtube-Real": (15000, 5000), "Celeb-Real": (0, 5000)}


def test_protocol_1_is_the_20_methods_8_known():
    space = P1.protocol(1)
    assert (space.num_classes, space.num_known, len(space.novel)) == (20, 8, 12)
    assert {P1.get(i).method for i in space.known} == KNOWN_METHODS
    assert not any(c.is_real for c in P1.classes)
    assert {c.family for c in P1.classes} == {"Swap", "Reenact", "Edit", "Generate"}


def test_protocol_2_adds_youtube_real_known_and_celeb_real_novel():
    space = P2.protocol(2)
    assert (space.num_classes, space.num_known, len(space.novel)) == (22, 9, 13)
    real = {c.method: c.index for c in P2.classes if c.is_real}
    assert set(real) == {"Youtube-Real", "Celeb-Real"}
    assert real["Youtube-Real"] in space.known and real["Celeb-Real"] in space.novel
    fakes = [c for c in P2.classes if not c.is_real]
    assert fakes == list(P1.classes)
    assert [i for i in space.known if i not in real.values()] == list(P1.protocol(1).known)


def test_every_class_has_its_own_release_folder():
    folders = [c.folder for c in P2.classes]
    assert len(set(folders)) == 22 and all(len(f.split("/")) == 3 for f in folders)
    assert P2.get(1).folder == "IdentitySwap/Deepfakes/faceforensics"
    assert {f.split("/")[0] for f in folders} == {"RealFace", "IdentitySwap", "ExpressionTransfer",
                                                  "AttributeManipulation", "EntireFaceSyncthesis"}


def expected_rows(table, protocol: int, scale: float) -> dict[int, tuple[int, int, int]]:
    """Class index -> (train-L, train-U, test): the paper's counts times ``scale``, each role split 80/20."""
    known = set(table.protocol(protocol).known)
    rows = {}
    for cls in table.classes:
        labelled, unlabelled = PAPER.get(cls.method, PAPER["known" if cls.index in known else "novel"])
        labelled, unlabelled = (max(1, int(n * scale + 0.5)) if n else 0 for n in (labelled, unlabelled))
        rows[cls.index] = (int(0.8 * labelled), int(0.8 * unlabelled),
                           labelled - int(0.8 * labelled) + unlabelled - int(0.8 * unlabelled))
    return rows


def printed_rows(stdout: str) -> dict[int, tuple[int, int, int]]:
    """The split table of a run's output: class index -> (train-L, train-U, test)."""
    lines = stdout.split("idx code", 1)[1].splitlines()[2:]
    rows = {}
    for line in lines[:next(i for i, line in enumerate(lines) if line.startswith("---"))]:
        fields = line.split()
        rows[int(fields[0])] = tuple(map(int, fields[-3:]))
    return rows


@pytest.fixture(scope="module")
def owdfa_runs(cpl_root, tmp_path_factory):
    """Protocols 1 and 2 trained for one epoch on the CPL-layout mini dataset, side by side."""
    base = tmp_path_factory.mktemp("owdfa_runs")
    started = {p: start_cli("train.py", f"configs/owdfa_p{p}.py", f"dataset_root={cpl_root}",
                            f"run_dir={base / f'p{p}'}", f"budget_scale={CPL_SCALE}", "crop_face=false",
                            "epochs=1", "cal_pseudo_start=0", *TINY) for p in (1, 2)}
    runs = {}
    for p, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
        runs[p] = (base / f"p{p}", stdout)
    return runs


@pytest.mark.parametrize("protocol, table, known, novel", [(1, P1, 8, 12), (2, P2, 9, 13)])
def test_trains_on_the_cpl_layout_with_the_paper_counts(owdfa_runs, protocol, table, known, novel):
    run_dir, stdout = owdfa_runs[protocol]
    assert f"owdfa_p{protocol}_classes.csv protocol {protocol}: {known} known, {novel} novel classes" in stdout
    expected = expected_rows(table, protocol, CPL_SCALE)
    assert printed_rows(stdout) == expected
    assert "fewer than its budget" not in stdout
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["valid_prototypes"] == known + novel
    assert record["num_test"] == sum(test for _, _, test in expected.values())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["num_known"], summary["num_classes"]) == (known, known + novel)
    split = json.loads((run_dir / "split.json").read_text())
    assert {Path(image["path"]).parent.as_posix() for image in split["images"]} == {c.folder for c in table.classes}
