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
