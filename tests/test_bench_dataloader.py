"""The data-loader benchmark runs end to end on a handful of generated face images."""
import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench" / "dataloader.py"
_spec = importlib.util.spec_from_file_location("bench_dataloader", _SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_benchmark_reports_three_modes_with_positive_rates(tmp_path):
    paths = bench.make_face_images(tmp_path / "data", 8, seed=0, sides=(256, 384))
    result = bench.run_benchmark(paths, str(tmp_path / "data"), str(tmp_path), image_size=32, batch_size=4,
                                 batches=1, workers=(0,), repeats=1, log=lambda *a: None)
    assert [(r["mode"], r["workers"]) for r in result["rows"]] == [(m, 0) for m in bench.MODES]
    assert all(r["images"] == 4 and r["images_per_s"] > 0 for r in result["rows"])
    assert set(result["ratios"][0]) == {"warm/per-read", "cold/per-read"}
    assert result["settings"]["faces_found"] == 8  # the generated images hold a detectable face
    table = bench.format_table(result)
    assert all(f"| {m} | 0 |" in table for m in bench.MODES)


def test_modes_subset_and_gpu_augment_items(tmp_path):
    """--modes warm times only the warm cache; with device views the batches carry the resized
    face (image_size * 256 / 224) and one parameter row per sample instead of the views."""
    paths = bench.make_face_images(tmp_path / "data", 4, seed=1, sides=(256, 320))
    result = bench.run_benchmark(paths, str(tmp_path / "data"), str(tmp_path), image_size=32, batch_size=2,
                                 batches=1, workers=(0,), repeats=1, log=lambda *a: None, modes=("warm",),
                                 device_views=True)
    assert [r["mode"] for r in result["rows"]] == ["warm"] and result["ratios"] == {0: {}}
    assert "| warm | 0 |" in bench.format_table(result)
    from dataset.owdfa import ImageReader
    loader, sampler = bench._loader(paths, ImageReader(), 32, 2, 1, 0, 0, device_views=True)
    sampler.set_epoch(0)
    batch = next(iter(loader))
    assert batch["source"].shape == (2, 3, 36, 36) and batch["view_params"].shape == (2, 11)
