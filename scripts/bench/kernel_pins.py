"""Which CPU kernel choices change the demo's numbers: the mini dataset and one short epoch per setting.

    python scripts/bench/kernel_pins.py --data data/mini                 # every setting (~30 min on 2 cores)
    python scripts/bench/kernel_pins.py --data data/mini --settings pinned_data pinned   # compare across machines

Each setting is a set of environment variables that imitates another CPU
(another vector instruction set in PyTorch, oneDNN, MKL, numpy, OpenCV, or
another thread count). A "data" setting writes the mini dataset under it and
counts the images that differ from ``--data`` (written unpinned, by
``python -m dataset.synthetic``); a "train" setting trains
configs/demo_lite0.py for one short epoch (the budgets below: 7 steps) on
``--data`` and prints 8 hex digits of a sha256 over the final weights (equal:
bit-identical) with the test ACC. "pinned" and "pinned_data" run under
scripts/_pin_kernels.sh, as scripts/demo.sh does. ``--step_seconds N`` times
training steps under each training setting instead. Results: docs/performance.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ONE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# name -> (kind, environment); train settings run on one thread unless they say otherwise
SETTINGS = {
    "numpy_without_avx2": ("data", {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}),
    "opencv_without_avx": ("data", {"OPENCV_CPU_DISABLE": "AVX2,FMA3,AVX"}),
    "openblas_prescott": ("data", {"OPENBLAS_CORETYPE": "Prescott"}),
    "none": ("train", ONE),
    "none_again": ("train", ONE),
    "aten_default": ("train", {**ONE, "ATEN_CPU_CAPABILITY": "default"}),
    "onednn_avx": ("train", {**ONE, "ONEDNN_MAX_CPU_ISA": "AVX"}),
    "mkl_compatible": ("train", {**ONE, "MKL_CBWR": "COMPATIBLE"}),
    "two_threads": ("train", {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}),
    "avx2_pins": ("train", {**ONE, **AVX2, "MKL_CBWR": "AVX2"}),
    "avx2_pins_two_threads": ("train", {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", **AVX2, "MKL_CBWR": "AVX2"}),
    "pinned_data": ("data", None),  # None: scripts/_pin_kernels.sh
    "pinned": ("train", None),
}
PROBE = ["epochs=1", "budget_real=60", "budget_known=30", "budget_novel=30"]


def pinned_environment() -> dict:
    """The variables scripts/_pin_kernels.sh exports, read by sourcing it in bash from an empty environment."""
    out = subprocess.run(["env", "-i", "bash", "-c", "source scripts/_pin_kernels.sh && env -0"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    pinned = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pinned.items() if k not in ("PWD", "SHLVL", "_")}


def weights_digest(run_dir: Path) -> str:
    from utils.checkpoint import load_checkpoint

    model = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    digest = hashlib.sha256()
    for key in sorted(model):
        digest.update(key.encode() + model[key].contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]


def images_that_differ(a: Path, b: Path) -> str:
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    differ = sum((a / f).read_bytes() != (b / f).read_bytes() for f in files)
    return f"{differ} of {len(files)} images differ"


def environment(env: dict) -> dict:
    """This process's environment without any variable a setting sets, plus ``env``."""
    known = {key for _, values in SETTINGS.values() for key in values or {}} | set(pinned_environment())
    return {**{k: v for k, v in os.environ.items() if k not in known}, **env, "PYTHONPATH": str(REPO)}


def timed_setting(env: dict, steps: int) -> str:
    out = subprocess.run([sys.executable, __file__, "--one_setting", "--step_seconds", str(steps)], cwd=REPO,
                         env=environment(env), check=True, capture_output=True, text=True).stdout
    return f"{float(out.split()[-1]):.2f} s per step"


def run_setting(kind: str, env: dict, data: Path, work: Path) -> str:
    """Run one setting in a subprocess (``environment``)."""
    full = environment(env)
    if kind == "data":
        subprocess.run([sys.executable, "-m", "dataset.synthetic", "--out", str(work / "data")], cwd=REPO,
                       env=full, check=True, capture_output=True)
        return images_that_differ(data, work / "data")
    run = work / "run"
    subprocess.run([sys.executable, "train.py", "configs/demo_lite0.py", f"dataset_root={data}", f"run_dir={run}",
                    *PROBE], cwd=REPO, env=full, check=True, capture_output=True)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    acc = " / ".join(f"{100 * last[k]:.1f}" for k in ("all_acc", "known_acc", "novel_acc"))
    return f"weights {weights_digest(run)}, test ACC {acc}, epoch {last['seconds']:.0f} s"


def step_seconds(steps: int) -> list[float]:
    """Seconds of each of ``steps`` training steps of configs/demo_lite0.py on random inputs (batch
    and size of the config, channels_last), after two warm-up steps, in this process."""
    import torch

    from models.method import create_method
    from utils.config import load_config
    from utils.device import place_model, to_layout

    cfg = load_config(REPO / "configs" / "demo_lite0.py", ["pretrained=false", "cal_pseudo_start=0"])
    torch.manual_seed(0)
    method = create_method(cfg, num_known=19, num_classes=41)
    place_model(method.model, torch.device("cpu"), cfg.channels_last)
    optimizer = method.make_optimizer()
    shape = (cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    batch = {view: to_layout(torch.randint(0, 256, shape, dtype=torch.uint8), cfg.channels_last)
             for view in ("weak", "strong")}
    batch["label"] = torch.randint(0, 19, (cfg.batch_size,))
    batch["label"][cfg.batch_size // 2:] = -1  # about half unlabelled, as the sampler draws them
    seconds = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        out = method.training_step(batch, epoch=cfg.epochs - 1)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="the mini dataset written unpinned (python -m dataset.synthetic)")
    parser.add_argument("--settings", nargs="*", choices=sorted(SETTINGS), default=list(SETTINGS),
                        help="settings to run (default: all)")
    parser.add_argument("--step_seconds", type=int, default=0, metavar="N",
                        help="instead: the median seconds of N training steps under each training setting")
    parser.add_argument("--one_setting", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_setting:
        print(statistics.median(step_seconds(args.step_seconds)))
        return
    if not args.data and not args.step_seconds:
        parser.error("--data is needed, except with --step_seconds")
    print("| setting | environment | result |\n|---|---|---|")
    for name in args.settings:
        kind, env = SETTINGS[name]
        if args.step_seconds and kind == "data":
            continue
        env = pinned_environment() if env is None else env
        with tempfile.TemporaryDirectory() as work:
            result = (timed_setting(env, args.step_seconds) if args.step_seconds
                      else run_setting(kind, env, Path(args.data).resolve(), Path(work)))
        shown = " ".join(f"{k}={v}" for k, v in env.items())
        print(f"| {name} | `{shown}` | {result} |", flush=True)


if __name__ == "__main__":
    main()
