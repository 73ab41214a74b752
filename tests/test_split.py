"""Sampling rules of METHOD.md section 2: budgets, 80/20 split, labelled share,
label remap, determinism independent of file-system order."""
from pathlib import Path

import numpy as np
import pytest

from dataset.folders import scan_dataset
from dataset.protocols import CLASSES, known_classes, label_map
from dataset.split import DatasetError, SplitSpec, make_split

SPEC = SplitSpec(protocol=1, split_seed=7, real_source_cap=20, budget_real=40, budget_known=20, budget_novel=15)


def make_tree(root: Path, sizes: dict[str, int]) -> Path:
    """Folders of empty .png files (the split never opens images)."""
    for folder, n in sizes.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            (root / folder / f"{i:04d}.png").touch()
    return root


def standard_sizes(real=(50, 30, 5), known=25, novel=18, small=None):
    sizes = {f"0_Real_Source{chr(65 + i)}": n for i, n in enumerate(real)}
    known_set = set(known_classes(1))
    for cls in CLASSES[1:]:
        sizes[cls.folder_name] = known if cls.index in known_set else novel
    sizes.update(small or {})
    return sizes


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "data", standard_sizes(small={"19_Generate_CycleGAN": 7}))


def counts(split, cls):
    return int((split.train_orig == cls).sum()), int((split.test_orig == cls).sum())


def test_budgets_and_80_20_split(tree, caplog):
    split = make_split(scan_dataset(str(tree)), SPEC)
    # real: per-source cap 20 -> 20 + 20 + 5 = 45 pooled, budget 40 -> 32 train / 8 test
    assert counts(split, 0) == (32, 8)
    assert counts(split, 1) == (16, 4)      # known, 25 images, budget 20
    assert counts(split, 2) == (12, 3)      # novel, 18 images, budget 15
    assert counts(split, 19) == (5, 2)      # known with 7 < 20 images: all kept, floor(5.6) = 5 train
    assert any("class 19" in note and "fewer than its budget" in note for note in split.notes)
    assert "fewer than its budget" not in caplog.text  # shown once, in the summary train.py prints
    assert split.summary().count("fewer than its budget") == 1
    assert not set(split.train_paths) & set(split.test_paths)
    assert len(set(split.train_paths)) == len(split.train_paths)


def test_real_source_cap_applies_per_folder(tree):
    split = make_split(scan_dataset(str(tree)), SplitSpec(**{**SPEC.__dict__, "budget_real": 1000}))
    real = [p for p, c in zip(split.train_paths + split.test_paths,
                              np.concatenate([split.train_orig, split.test_orig])) if c == 0]
    per_source = {s: sum(f"0_Real_Source{s}" in p for p in real) for s in "ABC"}
    assert per_source == {"A": 20, "B": 20, "C": 5}


def test_labelled_share_and_remap(tree):
    split = make_split(scan_dataset(str(tree)), SPEC)
    known = np.isin(split.train_orig, known_classes(1))
    assert not split.labelled[~known].any(), "novel images are never labelled"
    assert split.labelled.sum() == int(known.sum() * 0.75)
    mapping = label_map(1)
    assert np.array_equal(split.train_labels, [mapping[c] for c in split.train_orig])
    assert np.array_equal(split.test_labels, [mapping[c] for c in split.test_orig])
    assert split.num_known == 19 and set(split.train_labels[split.labelled]) <= set(range(19))


def test_split_ignores_file_system_order(tree):
    scan = scan_dataset(str(tree))
    shuffled = {c: [(name, files[::-1]) for name, files in folders[::-1]] for c, folders in reversed(scan.items())}
    a, b = make_split(scan, SPEC), make_split(shuffled, SPEC)
    assert a.train_paths == b.train_paths and a.test_paths == b.test_paths
    assert np.array_equal(a.labelled, b.labelled)


def test_split_seed_changes_the_split_and_is_reproducible(tree):
    scan = scan_dataset(str(tree))
    a, b = make_split(scan, SPEC), make_split(scan, SPEC)
    c = make_split(scan, SplitSpec(**{**SPEC.__dict__, "split_seed": 8}))
    assert a.test_paths == b.test_paths and a.test_paths != c.test_paths


def test_missing_class_is_an_error_naming_the_fix(tmp_path):
    sizes = standard_sizes()
    del sizes["17_Generate_StyleGAN"]
    sizes["17_Generate_StyleGAN_empty"] = 0
    root = make_tree(tmp_path / "data", sizes)
    with pytest.warns(UserWarning, match="no .jpg/.jpeg/.png images"):
        scan = scan_dataset(str(root))
    with pytest.raises(DatasetError) as err:
        make_split(scan, SPEC, str(root))
    assert "17_Generate_StyleGAN" in str(err.value) and "get_data.py" in str(err.value)


def test_summary_table_totals(tree):
    split = make_split(scan_dataset(str(tree)), SPEC)
    text = split.summary()
    assert "protocol 1: 19 known, 22 novel" in text
    last = [line.split() for line in text.splitlines() if line.split()[:1] == ["all"]][-1]
    assert list(map(int, last[-3:])) == [int(split.labelled.sum()), int((~split.labelled).sum()),
                                         len(split.test_paths)]


def test_folders_matching_no_class_are_listed_with_counts(tmp_path):
    root = make_tree(tmp_path / "data", {**standard_sizes(), "41_Swap_NewMethod": 9, "57_Edit_Other": 2})
    split = make_split(scan_dataset(str(root)), SPEC)
    note = next(n for n in split.notes if "match no class" in n)
    assert "2 folder(s)" in note and "41_Swap_NewMethod (9 images)" in note and "57_Edit_Other (2 images)" in note
    assert "classes_file=" in note and not any("NewMethod" in p for p in split.train_paths + split.test_paths)


def test_custom_table_any_indices_and_its_real_class(tmp_path):
    table = tmp_path / "classes.csv"
    table.write_text("index,code,family,method\n2,R,Real,Camera\n5,A,Swap,A\n9,B,Edit,B\n")
    root = make_tree(tmp_path / "data", {"2_Real_X": 30, "2_Real_Y": 25, "5_Swap_A": 25, "9_Edit_B": 25})
    spec = SplitSpec(**{**SPEC.__dict__, "classes_file": str(table), "known_classes": (2, 9)})
    split = make_split(scan_dataset(str(root)), spec)
    assert counts(split, 2) == (32, 8)      # the Real family: per-source cap 20 + 20 -> 40, real budget 40
    assert counts(split, 9) == (16, 4)      # known, budget 20
    assert counts(split, 5) == (12, 3)      # novel, budget 15
    assert split.num_known == 2 and split.num_classes == 3
    assert set(split.test_labels[split.test_orig == 5]) == {2}, "novel after the known classes"
    assert "classes.csv known 2,9: 2 known, 1 novel classes" in split.summary()


def test_split_file_of_a_custom_table_keeps_its_label_space(tmp_path):
    import json
    from dataclasses import asdict

    from dataset.split_file import record_split, split_from_file

    table = tmp_path / "classes.csv"
    table.write_text("index,code,family,method\n2,R,Real,Camera\n5,A,Swap,A\n45,B,Edit,B\n")
    root = make_tree(tmp_path / "data", {"2_Real_X": 30, "5_Swap_A": 25, "45_Edit_B": 25})
    spec = SplitSpec(**{**SPEC.__dict__, "classes_file": str(table), "known_classes": (2, 45)})
    drawn = make_split(scan_dataset(str(root)), spec)
    path = tmp_path / "split.json"
    path.write_text(json.dumps(record_split(drawn, str(root), asdict(spec)).to_json()))
    read, _ = split_from_file(path, str(root), spec.protocol, spec.label_space())
    assert read.space == drawn.space and np.array_equal(read.test_labels, drawn.test_labels)
    with pytest.raises(DatasetError, match=r"classes \[45\] that the OWDFA-40 class table lacks"):
        split_from_file(path, str(root), 1)


COUNTS_TABLE = """index,code,family,method,known_in,folder,known_labelled,known_unlabelled,novel_unlabelled
0,YT,Real,Youtube,1,Real/Youtube,30,10,
1,A,Swap,A,1,Swap/A/src,15,5,15
2,B,Swap,B,,Swap/B/src,15,5,15
3,C,Edit,C,1,Edit/C/src,,,
4,D,Edit,D,,Edit/D/src,,,
5,CD,Real,Celeb,,Real/Celeb,,,10
"""


def counts_split(tmp_path, sizes, **spec):
    table = tmp_path / "classes.csv"
    table.write_text(COUNTS_TABLE)
    root = make_tree(tmp_path / "data", sizes)
    spec = SplitSpec(**{**SPEC.__dict__, "classes_file": str(table), **spec})
    return make_split(scan_dataset(str(root), spec.label_space().table.class_folders()), spec, str(root))


def roles(split, cls):
    """(train labelled, train unlabelled, test) images of class ``cls``."""
    train = split.train_orig == cls
    test = int((split.test_orig == cls).sum())
    return int((train & split.labelled).sum()), int((train & ~split.labelled).sum()), test


SIZES = {"Real/Youtube": 60, "Swap/A/src": 30, "Swap/B/src": 30, "Edit/C/src": 30, "Edit/D/src": 30, "Real/Celeb": 12}


def test_table_counts_are_drawn_exactly_per_role_then_80_20(tmp_path):
    split = counts_split(tmp_path, SIZES)
    assert roles(split, 0) == (24, 8, 8)   # known real: 30 + 10, no per-source cap (20) although real
    assert roles(split, 1) == (12, 4, 4)   # known: 15 labelled + 5 unlabelled, each 80/20
    assert roles(split, 2) == (0, 12, 3)   # novel: 15 unlabelled
    assert roles(split, 5) == (0, 8, 2)    # novel real: its own count, not budget_novel (15)
    # the classes without counts keep the config budgets (known 20, novel 15) and the pooled labelled share
    assert sum(roles(split, 3)) == 20 and sum(roles(split, 4)) == 15 and roles(split, 4)[0] == 0
    assert roles(split, 3)[0] == int(0.75 * 16)
    assert "fewer than its budget" not in " ".join(split.notes)


def test_budget_scale_rounds_half_up_and_keeps_at_least_one(tmp_path):
    split = counts_split(tmp_path, SIZES, budget_scale=0.1)
    assert roles(split, 0) == (2, 0, 2)    # 30 x 0.1 = 3 labelled, 10 x 0.1 = 1 unlabelled
    assert roles(split, 1) == (1, 0, 2)    # 1.5 -> 2 labelled, 0.5 -> 1 unlabelled
    assert roles(split, 2) == (0, 1, 1)    # 1.5 -> 2
    assert sum(roles(split, 3)) == 20      # config budgets are not scaled


def test_too_few_images_keep_the_labelled_share(tmp_path):
    split = counts_split(tmp_path, {**SIZES, "Swap/A/src": 10})
    assert roles(split, 1) == (5, 2, 3)    # 10 of 15 + 5: 7 labelled (floor 10 x 15/20), 3 unlabelled
    assert any("class 1" in note and "fewer than its budget 20" in note for note in split.notes)


def test_a_missing_table_folder_is_named(tmp_path):
    sizes = {k: v for k, v in SIZES.items() if k != "Swap/B/src"}
    with pytest.raises(DatasetError, match="missing: Swap/B/src"):
        counts_split(tmp_path, sizes)
