"""Attributing images on one tiny trained run: the saved cluster assignment,
test.py --save_predictions, predict.py (same predictions, error rows, names),
export.py (safetensors, same predictions, split fingerprint) and the hub path
against a local stub of the hub API."""
import csv
import io
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

import export as export_cli
import predict as predict_cli
from dataset.protocols import label_names
from utils.checkpoint import load_checkpoint
from inference.attributor import Attributor, collect_inputs
from inference.hub import HubError
from inference.loading import load_model_state
from inference.names import class_table, prototype_names, read_names, real_prototypes
from inference.predictions import COLUMNS, PREDICT_COLUMNS, TEST_COLUMNS
from utils.metrics import cluster_assignment


def read_csv(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def plain(value) -> bool:
    """Only JSON-like Python types (what weights_only loading accepts without allow-lists)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


@pytest.fixture(scope="module")
def run(known_k_run, tmp_path_factory):
    """The shared tiny run, and test.py --save_predictions on its last.pt."""
    run_dir, _ = known_k_run
    base = tmp_path_factory.mktemp("attribute")
    preds = base / "eval" / "preds.csv"
    result = run_cli("test.py", "--ckpt", str(run_dir), "--save_predictions", str(preds), "--out",
                     str(base / "eval" / "metrics.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, preds


def test_checkpoint_holds_the_final_hungarian_assignment(run):
    run_dir, preds = run
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # weights_only: plain values only
    saved = state["cluster_assignment"]
    assert saved and plain(saved)
    # recompute it from test.py's per-image predictions of the same checkpoint
    names = prototype_names({**state, "classes": class_table(1)})
    label_of = {name: i for i, name in enumerate(label_names(1))}
    _, rows = read_csv(preds)
    y_true = [label_of[r["true"]] for r in rows]
    y_pred = [names.index(r["nearest"]) for r in rows]
    assert saved == cluster_assignment(y_true, y_pred)
    for entry in saved:
        on_prototype = [t for t, p in zip(y_true, y_pred) if p == entry["prototype"]]
        assert entry["predicted"] == len(on_prototype) and entry["images"] == on_prototype.count(entry["label"])


def test_save_predictions_writes_the_report_files(run):
    _, preds = run
    metrics = json.loads((preds.parent / "metrics.json").read_text())
    columns, rows = read_csv(preds)
    assert tuple(columns) == TEST_COLUMNS
    assert len(rows) == metrics["num_test"] and not any(r["error"] for r in rows)
    assert all(r["is_real"] == str(r["predicted"] == label_names(1)[0]).lower() for r in rows)
    assert all(len(r["top3"].split("; ")) == 3 and r["top3"].startswith(r["nearest"] + ":") for r in rows)
    assert all(r["predicted"] in (r["nearest"], "unknown") for r in rows)
    _, per_class = read_csv(preds.parent / "per_class.csv")
    assert len(per_class) == 41 and [r["set"] for r in per_class].count("known") == 19
    for subset, key in (("known", "known_acc"), ("novel", "novel_acc")):
        chosen = [r for r in per_class if r["set"] == subset]
        share = sum(int(r["correct"]) for r in chosen) / sum(int(r["images"]) for r in chosen)
        assert share == pytest.approx(metrics[key])
    header, *matrix = list(csv.reader(open(preds.parent / "confusion.csv")))
    assert header[:2] == ["true", "set"] and len(header) == 2 + metrics["valid_prototypes"]
    counts = np.array([[int(v) for v in row[2:]] for row in matrix])
    assert counts.sum() == metrics["num_test"]
    known = [row[1] == "known" for row in matrix]
    assert header[2:2 + sum(known)] == label_names(1)[:sum(known)]  # known classes on their own prototypes
    novel_columns = header[2 + sum(known):]  # named by prototype, the matched class is the diagonal's row
    assert novel_columns and all(h.startswith("novel-") and "(" not in h for h in novel_columns)
    assert np.trace(counts[:19, :19]) / counts[known].sum() == pytest.approx(metrics["known_acc"])
    assert (preds.parent / "confusion.png").stat().st_size > 0


def test_predict_reproduces_test_py_and_lists_unreadable_files(run, tmp_path):
    run_dir, preds = run
    _, expected = read_csv(preds)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    paths = [r["path"] for r in expected] + [str(broken), str(tmp_path / "missing.jpg")]
    out = tmp_path / "predict.csv"
    result = run_cli("predict.py", "--ckpt", str(run_dir / "checkpoints" / "last.pt"), "-", "--out", str(out),
                     "--device", "cpu", stdin="\n".join(paths) + "\n")
    assert result.returncode == 0, result.stderr[-3000:]
    columns, rows = read_csv(out)
    assert tuple(columns) == PREDICT_COLUMNS and PREDICT_COLUMNS[:len(COLUMNS)] == COLUMNS
    assert [r["path"] for r in rows] == paths and {r["kind"] for r in rows} == {"image"}
    for got, want in zip(rows, expected):
        assert {k: got[k] for k in COLUMNS} == {k: want[k] for k in COLUMNS}
    assert rows[-2]["error"] == "not an image (unrecognised format)" and rows[-2]["predicted"] == ""
    assert rows[-1]["error"] == "missing file"
    unknown = sum(r["predicted"] == "unknown" for r in expected)
    assert f"{len(paths)} images: {len(expected) - unknown} attributed, {unknown} unknown, 2 unreadable" in result.stdout


def split_paths(run_dir, test: bool) -> list[str]:
    """The run's training (or test) images, from its split.json."""
    split = json.loads((run_dir / "split.json").read_text())
    root = json.loads((run_dir / "config.json").read_text())["dataset_root"]
    return [str(Path(root) / r["path"]) for r in split["images"] if (r["role"] == "test") == test]


def test_final_checkpoint_abstains_on_its_share_of_the_training_images(run):
    run_dir, preds = run
    calibration = load_checkpoint(run_dir / "checkpoints" / "last.pt")["abstain"]
    train = split_paths(run_dir, test=False)
    assert calibration["accept"] == 0.95 and calibration["images"] == len(train)
    rows = Attributor.load(str(run_dir), "cpu").predict_paths(train, progress=False)
    unknown = [r for r in rows if r["predicted"] == "unknown"]
    assert len(unknown) == pytest.approx(0.05 * len(train), abs=1)
    threshold = calibration["threshold"]  # similarity is written to 4 decimals
    assert all((float(r["similarity"]) < threshold + 5e-5) == (r in unknown) for r in rows
               if abs(float(r["similarity"]) - threshold) > 5e-5)
    assert all(r["nearest"] and r["is_real"] == "false" for r in unknown)
    report = (preds.parent / "report.md").read_text()
    assert f"prototype similarity below {calibration['threshold']:.4f}" in report


def test_predict_flags_unknown_and_counts_skipped_files(run, mini_root, tmp_path):
    run_dir, _ = run
    folder = tmp_path / "in"
    shutil.copytree(mini_root / "35_Generate_PixArt", folder)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "p.csv"
    result = run_cli("predict.py", "--ckpt", str(run_dir), str(folder), "--out", str(out), "--device", "cpu",
                     "--min_confidence", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 file that is neither an image nor a video (.jpg .jpeg .png .mp4" in result.stderr
    _, rows = read_csv(out)
    assert len(rows) == 12 and all(r["predicted"] == "unknown" and r["nearest"] for r in rows)
    assert "12 images: 0 attributed, 12 unknown, 0 unreadable" in result.stdout
    assert run_cli("predict.py", "--ckpt", str(run_dir), str(folder), "--out", str(out), "--device", "cpu",
                   "--no_unknown").returncode == 0
    _, rows = read_csv(out)
    assert all(r["predicted"] == r["nearest"] for r in rows)
    bad = run_cli("predict.py", "--ckpt", str(run_dir), str(folder), "--min_confidence", "2")
    assert bad.returncode == 2 and "--min_confidence 2.0 is not a probability" in bad.stderr


def test_report_md_gathers_metrics_tables_and_plots(run):
    run_dir, preds = run
    metrics = json.loads((preds.parent / "metrics.json").read_text())
    report = (preds.parent / "report.md").read_text()
    assert f"| ACC | {100 * metrics['all_acc']:.1f} | {100 * metrics['known_acc']:.1f} |" in report
    assert (f"Discovery: {100 * metrics['discovery_rate']:.1f} % of novel test images on a novel prototype, "
            f"{100 * metrics['known_on_novel_rate']:.1f} % of known ones; {metrics['novel_prototypes_used']} of "
            f"{metrics['valid_prototypes'] - 19} novel prototypes hold a test image.") in report
    for section in ("## Metrics", "## Per class", "## Novel clusters", "## Plots"):
        assert section in report
    assert "- [confusion](confusion.png)" in report
    link = next(line for line in report.splitlines() if line.startswith("- [tsne]("))
    assert (preds.parent / link[len("- [tsne]("):-1]).resolve() == (run_dir / "tsne.png").resolve()
    _, clusters = read_csv(preds.parent / "clusters.csv")
    assert len(clusters) == metrics["valid_prototypes"]
    assert sum(int(r["images"]) for r in clusters) == metrics["num_test"]
    for row in clusters:
        if row["purity"]:
            assert float(row["purity"]) == pytest.approx(int(row["class_images"]) / int(row["images"]), abs=1e-4)
            assert row["set"] == "known" or f"| {row['prototype']} | {row['name']} | novel |" in report


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """The run's last.pt and its folder written by export.py."""
    run_dir, _ = run
    checkpoint, folder = run_dir / "checkpoints" / "last.pt", tmp_path_factory.mktemp("export") / "export"
    assert export_cli.main(["--ckpt", str(run_dir), "--out", str(folder)]) == 0
    return checkpoint, folder


def test_export_is_small_safe_and_predicts_the_same(exported, mini_root):
    checkpoint, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert (folder / "model.safetensors").stat().st_size < 0.5 * checkpoint.stat().st_size
    info = json.loads((folder / "config.json").read_text())
    fingerprint = load_checkpoint(checkpoint)["split_fingerprint"]
    assert fingerprint and info["split_fingerprint"] == fingerprint
    assert info["valid_prototypes"] == 41 and len(info["classes"]) == 41 and info["num_known"] == 19
    assert all("name" in a for a in info["cluster_assignment"])
    assert info["abstain"] == load_checkpoint(checkpoint)["abstain"] is not None
    assert load_model_state(str(folder))["abstain"] == info["abstain"]
    assert load_model_state(str(folder))["split_fingerprint"] == fingerprint
    images = mini_root / "35_Generate_PixArt"
    from_checkpoint = Attributor.load(str(checkpoint), "cpu").predict_paths(collect_inputs([str(images)]).paths,
                                                                            progress=False)
    from_export = Attributor.load(str(folder), "cpu").predict_paths(collect_inputs([str(images)]).paths, progress=False)
    assert len(from_export) == 12 and from_export == from_checkpoint


def test_prototype_names_and_names_file(tmp_path):
    state = {"classes": class_table(1), "num_known": 19, "model": {"prototypes.valid": torch.tensor(41)},
             "cluster_assignment": [{"prototype": 25, "label": 30, "images": 3, "predicted": 4},
                                    {"prototype": 2, "label": 2, "images": 5, "predicted": 5}]}
    names = prototype_names(state)
    assert names[2] == label_names(1)[2] and names[20] == "novel-20"
    assert names[25] == f"novel-25 (~{label_names(1)[30]}, 75% pure)"  # 3 of the 4 test images on it
    assert real_prototypes(state) == {0}
    file = tmp_path / "names.csv"
    file.write_text("prototype,name\nnovel-25,Lab cluster A\n20, B \n")
    assert read_names(file) == {25: "Lab cluster A", 20: "B"}
    renamed = prototype_names(state, read_names(file))
    assert renamed[25] == "Lab cluster A" and renamed[20] == "B" and renamed[24] == "novel-24"
    file.write_bytes("novel-25,Lab cluster A\r\n".encode("utf-8-sig"))  # no header, a BOM: not read as a header
    assert read_names(file) == {25: "Lab cluster A"}
    file.write_text("prototype,name\n25,A\nnovel-25,B\n")
    with pytest.raises(ValueError, match="lines 2 and 3: both rename prototype 25"):
        read_names(file)
    file.write_text("25,A,extra\n")
    with pytest.raises(ValueError, match="line 1: expected two columns"):
        read_names(file)
    with pytest.raises(ValueError, match="prototypes 0..40"):
        prototype_names(state, {41: "x"})


def test_names_flag_renames_the_prediction(exported, mini_root, tmp_path, capsys):
    _, folder = exported
    image = str(mini_root / "35_Generate_PixArt" / "00000.png")
    assert predict_cli.main(["--ckpt", str(folder), image, "--device", "cpu"]) == 0
    first = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    prototype = prototype_names(load_model_state(str(folder))).index(first["predicted"])
    (tmp_path / "names.csv").write_text(f"{prototype},My cluster\n")
    assert predict_cli.main(["--ckpt", str(folder), image, "--device", "cpu", "--names",
                             str(tmp_path / "names.csv")]) == 0
    renamed = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert renamed["predicted"] == "My cluster" and renamed["confidence"] == first["confidence"]


def test_collect_inputs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/z.png", "a/b/y.JPG", "a/notes.txt", "a/b/clip.MOV", "x.jpeg"):
        (tmp_path / name).write_bytes(b"")
    stdin = io.StringIO(f"{tmp_path / 'listed.png'}\n\n")
    got, skipped = collect_inputs([str(tmp_path / "a"), "-", str(tmp_path / "given.txt")], stdin)
    assert skipped == 1  # a/notes.txt; a file named on the command line is kept, whatever its name
    assert got == [str(tmp_path / "a" / "b" / "clip.MOV"), str(tmp_path / "a" / "b" / "y.JPG"),
                   str(tmp_path / "a" / "z.png"), str(tmp_path / "listed.png"), str(tmp_path / "given.txt")]


@pytest.mark.parametrize("flag, value", [("--out", "preds.txt"), ("--min_confidence", "1.5")])
def test_a_wrong_argument_is_refused_before_torch_is_imported(tmp_path, flag, value):
    code = (f"import sys, predict; code = predict.main(['--ckpt', 'run', 'x.png', {flag!r}, {value!r}]); "
            "print(code, 'torch' in sys.modules)")
    result = run_cli("-c", code, env={"TMPDIR": str(tmp_path)})
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {flag} ") and len(result.stderr.splitlines()) == 1


class StubHub:
    """In-memory stand-in for the hub API calls the code makes: HfApi.create_repo,
    HfApi.upload_folder and snapshot_download (files per repo and revision)."""

    def __init__(self, root: Path):
        self.root, self.repos, self.calls = root, set(), []

    def api(self):
        hub = self

        class Api:
            def create_repo(self, repo_id, repo_type="model", private=False, exist_ok=False):
                hub.calls.append(("create_repo", repo_id, private))
                hub.repos.add(repo_id)

            def upload_folder(self, folder_path, repo_id, repo_type="model", allow_patterns=None, commit_message=""):
                assert repo_id in hub.repos, "upload to a repo that was never created"
                for revision in ("main", "v1"):
                    target = hub.root / repo_id / revision
                    shutil.copytree(folder_path, target, dirs_exist_ok=True)
                hub.calls.append(("upload_folder", repo_id, sorted(allow_patterns)))
                return f"https://hub.test/{repo_id}/commit/1"

        return Api()

    def snapshot_download(self, repo_id, revision=None, allow_patterns=None, etag_timeout=None):
        hub_copy = self.root / repo_id / (revision or "main")
        if not hub_copy.is_dir():
            raise FileNotFoundError(f"404: {repo_id}@{revision} not found")
        self.calls.append(("snapshot_download", repo_id, revision))
        return str(hub_copy)


@pytest.fixture
def stub_hub(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    hub = StubHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", hub.api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    listener = socket.create_server(("127.0.0.1", 0))  # answers the reachability probe
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    yield hub
    listener.close()


def test_push_and_pull_through_the_hub(exported, stub_hub, mini_root, capsys):
    checkpoint, folder = exported
    assert export_cli.main(["--ckpt", str(checkpoint), "--out", str(folder), "--push_to_hub", "lab/cal-p1"]) == 0
    assert "load it with --ckpt hf://lab/cal-p1" in capsys.readouterr().out
    assert stub_hub.calls[:2] == [("create_repo", "lab/cal-p1", False),
                                  ("upload_folder", "lab/cal-p1", ["README.md", "config.json", "model.safetensors"])]
    card = (stub_hub.root / "lab/cal-p1/main/README.md").read_text()
    fingerprint = json.loads((folder / "config.json").read_text())["split_fingerprint"]
    assert "hf://lab/cal-p1" in card and "OWDFA-40 protocol 1" in card and fingerprint in card
    images = collect_inputs([str(mini_root / "2_Swap_FaceSwap")]).paths
    pulled = Attributor.load("hf://lab/cal-p1@v1", "cpu").predict_paths(images, progress=False)
    assert stub_hub.calls[-1] == ("snapshot_download", "lab/cal-p1", "v1")
    assert pulled == Attributor.load(str(folder), "cpu").predict_paths(images, progress=False)
    with pytest.raises(Exception, match="cannot download hf://lab/missing"):
        load_model_state("hf://lab/missing")
    with pytest.raises(Exception, match="hf://OWNER/NAME"):
        load_model_state("hf://no-owner")


def test_unreachable_hub_fails_in_one_line(tmp_path):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more: connection refused
    (tmp_path / "face.png").write_bytes(b"")
    result = run_cli("predict.py", "--ckpt", "hf://lab/cal-p1", str(tmp_path), timeout=120,
                     env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach the Hugging Face hub at http://127.0.0.1:{port}")


def test_offline_mode_without_a_cached_copy_fails_in_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "is_offline_mode", lambda: True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(HubError) as caught:
        load_model_state("hf://lab/cal-p1")
    message = str(caught.value)
    assert message.startswith("cannot download hf://lab/cal-p1 (LocalEntryNotFoundError") and "\n" not in message
