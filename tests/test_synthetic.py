"""The mini dataset: layout, determinism, image content and learnability."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dataset import synthetic
from dataset.protocols import CLASSES, REAL_CLASS, get_class, load_table

FAMILIES = ["Real", "Swap", "Reenact", "Edit", "Generate"]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def _images(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    synthetic.generate(root, per_class=4, size=32, seed=0)
    return root


def test_layout(small):
    folders = sorted(p.name for p in small.iterdir())
    assert all(re.fullmatch(r"\d+_.+", name) for name in folders)
    for cls in CLASSES:
        if cls.index != REAL_CLASS:
            assert len(list((small / cls.folder_name).glob("*.png"))) == 4, cls.folder_name
    real = [name for name in folders if name.startswith("0_Real_")]
    assert len(real) >= 2
    assert sum(len(list((small / name).glob("*.png"))) for name in real) == synthetic.REAL_FACTOR * 4
    assert len(folders) == len(CLASSES) - 1 + len(real)
    assert sorted(p.name for p in (small / "1_Swap_Deepfakes").iterdir()) == [f"{i:05d}.png" for i in range(4)]


def test_same_seed_identical_other_seed_different(tmp_path, small):
    synthetic.generate(tmp_path / "again", per_class=4, size=32, seed=0, workers=2)
    synthetic.generate(tmp_path / "other", per_class=4, size=32, seed=1)
    reference = _hashes(small)
    assert _hashes(tmp_path / "again") == reference
    other = _hashes(tmp_path / "other")
    assert other.keys() == reference.keys()
    assert sum(other[k] != reference[k] for k in reference) == len(reference)


def test_refuses_to_mix_with_existing_files(tmp_path):
    synthetic.generate(tmp_path, per_class=2, size=16)
    with pytest.raises(FileExistsError):
        synthetic.generate(tmp_path, per_class=1, size=16)
    synthetic.generate(tmp_path, per_class=1, size=16, overwrite=True)
    assert len(list(tmp_path.rglob("*.png"))) == len(CLASSES) - 1 + synthetic.REAL_FACTOR


def test_images_are_rgb_of_requested_size_and_not_constant(small):
    for folder in small.iterdir():
        for image in _images(folder):
            assert image.shape == (32, 32, 3) and image.dtype == np.uint8
            assert image.std() > 2, folder.name


def test_real_images_are_natural_not_noise(small):
    """Neighbouring pixels of natural images are strongly correlated; of noise, not."""
    def neighbour_correlation(image):
        luma = image.astype(np.float64).mean(2)
        return np.corrcoef(luma[:, :-1].ravel(), luma[:, 1:].ravel())[0, 1]

    real = [image for folder in small.glob("0_Real_*") for image in _images(folder)]
    correlations = np.array([neighbour_correlation(image) for image in real])
    assert np.median(correlations) > 0.7 and correlations.min() > 0.2, correlations
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3))
    assert abs(neighbour_correlation(noise)) < 0.2


def test_trace_parameters_distinct_within_each_family():
    for family in FAMILIES[1:]:
        params = [synthetic.trace_params(c) for c in CLASSES if c.family == family]
        assert len({tuple(sorted(p.items())) for p in params}) == len(params), family
    assert synthetic.trace_params(get_class(REAL_CLASS)) == {}


def _features(image: np.ndarray) -> np.ndarray:
    """Hand-made trace detectors: colour statistics, the whitened spectrum's peaks,
    the radial spectrum, centre-vs-border detail and colour, row colour profile."""
    x = image.astype(np.float64) / 255
    n = x.shape[0]
    luma = x @ [0.299, 0.587, 0.114]
    chroma = x - luma[..., None]
    spectrum = np.abs(np.fft.fft2(luma - luma.mean()))
    f = np.fft.fftfreq(n) * n
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    rbin = np.rint(radius).astype(int).ravel()
    radial_mean = np.bincount(rbin, spectrum.ravel()) / np.bincount(rbin)
    whitened = spectrum / np.maximum(radial_mean[rbin].reshape(n, n), 1e-9)
    peaks = np.log(np.sort(whitened[(radius >= 2) & (radius <= n / 3)])[-4:])
    radial = np.log(radial_mean[1:n // 2] + 1e-6)
    detail = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    r = np.hypot(*(np.indices(detail.shape) / (n - 3) - 0.5))
    gy, gx = np.diff(luma, axis=0)[:, :-1], np.diff(luma, axis=1)[:-1]
    c = np.hypot(*(np.indices(gx.shape) / (n - 2) - 0.5)) < 0.3
    rows = chroma.mean(1)
    centre_colour = chroma[n // 4:3 * n // 4, n // 4:3 * n // 4].mean((0, 1)) - chroma.mean((0, 1))
    return np.concatenate([x.mean((0, 1)), x.std((0, 1)), [np.abs(chroma).mean()], radial, peaks, [
        np.log(detail[r < 0.25].var() / detail[r > 0.4].var()), np.log(detail.var()),
        abs(np.log((gx[c] ** 2).mean() / (gy[c] ** 2).mean())), np.linalg.norm(centre_colour),
        np.linalg.norm(rows - rows.mean(0), axis=1).max()]])


def _family_accuracy(root: Path) -> float:
    """Balanced accuracy of a logistic regression on _features, half train, half test."""
    features, families = [], []
    for folder in sorted(root.iterdir()):
        family = FAMILIES.index(get_class(int(folder.name.split("_")[0])).family)
        for image in _images(folder):
            features.append(_features(image))
            families.append(family)
    x, y = np.array(features), np.array(families)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:len(y) // 2], order[len(y) // 2:]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    return balanced_accuracy_score(y[test], model.fit(x[train], y[train]).predict(x[test]))


def test_families_learnable_from_simple_features(tmp_path, monkeypatch):
    """Five families, chance 0.2: the traces must lift a linear probe far above it
    (about 0.7 measured), and without traces the same probe must fall to chance."""
    synthetic.generate(tmp_path / "traces", per_class=32, size=40, seed=1)
    assert _family_accuracy(tmp_path / "traces") > 0.6
    monkeypatch.setattr(synthetic, "TRACES", {f: lambda image, *a, **k: image for f in FAMILIES[1:]})
    synthetic.generate(tmp_path / "plain", per_class=32, size=40, seed=1)
    assert _family_accuracy(tmp_path / "plain") < 0.4


def test_cpl_layout_holds_each_class_in_its_release_folder(cpl_root):
    from conftest import CPL_SCALE

    table = load_table(synthetic.OWDFA_TABLE)
    assert sorted(p.name for p in cpl_root.iterdir()) == ["AttributeManipulation", "EntireFaceSyncthesis",
                                                         "ExpressionTransfer", "IdentitySwap", "RealFace"]
    found = {p.parent.relative_to(cpl_root).as_posix() for p in cpl_root.rglob("*.png")}
    assert found == {c.folder for c in table.classes}
    for cls in table.classes:  # the larger role's counts times the scale: what the split draws at that scale
        wanted = max(sum(cls.role_counts(known, CPL_SCALE) or (0,)) for known in (True, False))
        assert len(list((cpl_root / cls.folder).glob("*.png"))) == wanted, cls.folder
    assert len(list((cpl_root / "RealFace/Real/faceforensics").glob("*.png"))) == 80   # 60 + 20 Youtube-Real
    assert len(list((cpl_root / "RealFace/Real/CelebDF").glob("*.png"))) == 20          # 20 Celeb-Real
    assert _images(cpl_root / "RealFace/Real/CelebDF")[0].shape == (32, 32, 3)


def test_cpl_layout_overwrite_and_flags(tmp_path, capsys):
    synthetic.main(["--out", str(tmp_path), "--layout", "cpl", "--scale", "0.002", "--size", "16"])
    summary = synthetic.main(["--out", str(tmp_path), "--layout", "cpl", "--scale", "0.001", "--size", "16",
                              "--overwrite"])
    # 0.001: 1500 -> 2 labelled, 500 -> 1 unlabelled; the 4 images of scale 0.002 are gone
    assert len(list((tmp_path / "IdentitySwap/Deepfakes/faceforensics").glob("*.png"))) == 3
    assert len(list(tmp_path.rglob("*.png"))) == summary["images"]
    for argv, words in ((["--scale", "0.1"], "--scale does not apply to --layout owdfa40"),
                        (["--layout", "cpl", "--per_class", "3"], "--per_class does not apply to --layout cpl"),
                        (["--layout", "cpl", "--scale", "2"], "0 < scale <= 1")):
        with pytest.raises(SystemExit) as exit_:
            synthetic.main(["--out", str(tmp_path / "x"), *argv])
        assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_clips_and_their_flags(tmp_path, capsys):
    summary = synthetic.main(["--out", str(tmp_path / "clips"), "--clips", "1", "--clip_frames", "3", "--size", "16",
                              "--codec", "MJPG", "--frame_folders", str(tmp_path / "frames")])
    clips = sorted(tmp_path.joinpath("clips").rglob("*.avi"))
    assert summary["clips"] == len(clips) == len(CLASSES) - 1 + synthetic.REAL_FACTOR
    assert clips[0].relative_to(tmp_path / "clips").as_posix() == "0_Real_CelebDF/00000.avi"
    frames = sorted(tmp_path.joinpath("frames", "1_Swap_Deepfakes", "00000").glob("*.png"))
    assert [p.name for p in frames] == ["00000.png", "00001.png", "00002.png"]
    assert "wrote 42 MJPG clips of 3 frames of 16 px" in capsys.readouterr().out
    for argv, words in ((["--codec", "MJPG"], "--codec applies only with --clips N"),
                        (["--clips", "1", "--per_class", "3"], "drop --per_class"),
                        (["--clips", "1", "--layout", "cpl"], "drop --layout cpl"),
                        (["--clips", "1", "--codec", "H264"], "invalid choice: 'H264'")):
        with pytest.raises(SystemExit) as exit_:
            synthetic.main(["--out", str(tmp_path / "x"), *argv])
        assert exit_.value.code == 2 and words in capsys.readouterr().err


def test_the_command_line_shows_progress_while_it_writes(tmp_path, capsys, monkeypatch):
    now = [0.0]

    def write_slowly(*job):  # 10 s per folder: the log gets a line at every tenth of the folders
        now[0] += 10.0
        return writer(*job)

    writer = synthetic._write_folder
    monkeypatch.setattr(synthetic, "_write_folder", write_slowly)
    monkeypatch.setattr("tqdm.std.time", lambda: now[0])
    summary = synthetic.main(["--out", str(tmp_path / "mini"), "--per_class", "1", "--size", "16"])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and all(line.startswith(f"writing {tmp_path / 'mini'}: ") for line in lines)
    folders = len(summary["folders"])
    assert lines[-1].startswith(f"writing {tmp_path / 'mini'}: 100%") and f"{folders}/{folders}" in lines[-1]
