"""GPU training-step benchmark comparing settings of this tree, each case in its own process.

    python scripts/bench/gpu_step_benchmark.py --out results_dir   # every case
    python scripts/bench/gpu_step_benchmark.py --cases fused_gate  # the fused gate's cases only
    python scripts/bench/gpu_step_benchmark.py --smoke             # CPU check of the harness

Cases: ``step`` (the training step of ``--method``, default cal: images/s of both views at
bf16 / fp32, with and without the frequency attention, with and without cuDNN autotuning,
with ``--compile`` and the fused gate; host syncs per step), ``check`` (the attention's CUDA
path and the fused gate against float64 and fp32 CPU references), ``gate`` (the attention
alone: its two convolutions against the fused gate at several launch settings) and ``e2e``
(a training epoch from JPEGs, with CPU or GPU augmentation, against the step-only rate).
Results go to stdout and ``--out`` (.md / .jsonl).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- cases (each in its own process)

def _build(backbone: str, size: int, attention: bool, device, compile_net: bool, cudnn_benchmark: bool,
           fused_gate: bool = False, method_name: str = "cal"):
    import torch

    from models.method import create_method
    from utils.config import load_config
    from utils.device import compile_network, place_model

    cal = [f"cal_frequency_attention={attention}", "cal_pseudo_start=0", f"cal_fused_gate={fused_gate}"]
    cfg = load_config(None, [f"method={method_name}", f"backbone={backbone}", "pretrained=false",
                             f"image_size={size}", "epochs=10", *(cal if method_name == "cal" else [])])
    torch.manual_seed(0)
    method = create_method(cfg, num_known=19, num_classes=41)
    place_model(method.model, device, True, cudnn_benchmark)
    optimizer = method.make_optimizer()  # fused Adam when the parameters are on CUDA
    if compile_net:
        method.model = compile_network(method.model, device)
    return method, optimizer


def _make_step(method, optimizer, batch_fn, device, bf16: bool):
    import torch

    from utils.device import autocast_for

    def step():
        batch = batch_fn()
        with autocast_for(device, bf16):
            out = method.training_step(batch, epoch=5)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        finite = bool(torch.isfinite(out["loss"]))  # the trainer's one host sync
        optimizer.step()
        return finite
    return step


def _sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fixed_batch(batch: int, size: int, device):
    import torch
    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8) for _ in range(2)]
    labels = torch.randint(0, 19, (batch,), generator=g)
    labels[batch // 2:] = -1
    return {"weak": views[0].to(device).contiguous(memory_format=torch.channels_last),
            "strong": views[1].to(device).contiguous(memory_format=torch.channels_last), "label": labels.to(device)}


def _rate(step, device, images: int, steps: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        out.append(images * steps / (time.perf_counter() - start))
    return out


def _count_syncs(step, device) -> int | None:
    """Host syncs in one step (CUDA's sync debug mode warns at each)."""
    import warnings

    import torch
    if device.type != "cuda":
        return None
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def case_step(args) -> None:
    import torch
    device = torch.device(args.device)
    for variant in args.variants:
        precision, attention = variant.split(":")
        started = time.perf_counter()
        method, optimizer = _build(args.backbone, args.size, attention == "att", device, args.compile,
                                   args.cudnn_benchmark, args.fused_gate, args.method)
        batch = _fixed_batch(args.batch, args.size, device)
        step = _make_step(method, optimizer, lambda: batch, device, precision == "bf16")
        first = time.perf_counter()
        step()
        _sync(device)
        first_step_s = time.perf_counter() - first
        for _ in range(args.warmup):
            step()
        rates = _rate(step, device, 2 * args.batch, args.steps, args.repeats)
        record = {"case": "step", "method": args.method,
                  "model": f"{args.backbone}@{args.size}", "batch": args.batch,
                  "precision": precision, "attention": attention == "att", "compile": args.compile,
                  "cudnn_benchmark": args.cudnn_benchmark, "fused_gate": args.fused_gate,
                  "images_per_s": statistics.median(rates), "rates": [round(r, 1) for r in rates],
                  "first_step_s": round(first_step_s, 2), "syncs_per_step": _count_syncs(step, device),
                  "fused_adam": bool(optimizer.param_groups[0].get("fused")),
                  "setup_s": round(time.perf_counter() - started, 1)}
        print(json.dumps(record), flush=True)
        del method, optimizer, step
        if device.type == "cuda":
            torch.cuda.empty_cache()


def case_check(args) -> None:
    """The attention's CUDA path (TF32 transforms, bf16 gate convs or the fused gate) against float64."""
    import numpy as np
    import scipy.fft
    import torch

    from models.frequency import FrequencyAttention, dct2
    from utils.device import autocast_for
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.avg_pool2d(torch.randint(0, 256, (4, 3, 256, 256), generator=g).float(), 5, 1, 2)
    x = (u / 255 - 0.45) / 0.225
    expected = scipy.fft.dctn(x.double().numpy(), type=2, axes=(-2, -1))
    fast = dct2(x.to(device)).double().cpu().numpy()
    torch.manual_seed(0)
    attn = FrequencyAttention()
    with torch.no_grad():
        reference = attn(x, (8, 8)).double()  # float32 on the CPU (no TF32, no autocast)
        attn.to(device)
        with autocast_for(device, True):
            mask = attn(x.to(device), (8, 8)).double().cpu()
            attn.fused_gate = True  # the same weights through the Triton kernel
            fused = attn(x.to(device), (8, 8)).double().cpu()
    print(json.dumps({"case": "check",
                      "dct_rel_error_vs_scipy": float(np.linalg.norm(fast - expected) / np.linalg.norm(expected)),
                      "mask_max_abs_error_vs_fp32_cpu": float((mask - reference).abs().max()),
                      "fused_mask_max_abs_error_vs_fp32_cpu": float((fused - reference).abs().max())}), flush=True)


def case_gate(args) -> None:
    """The attention alone, forward + backward of 2 x batch images under bf16 autocast: the two
    convolutions, then the fused gate with its settings (gate_kernel.FORWARD, BACKWARD) and with
    other tiles and warp counts for one kernel at a time."""
    import torch

    from models import gate_kernel
    from models.frequency import FrequencyAttention, fused_gate_runs_on
    from utils.device import autocast_for
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2 * args.batch, 3, args.size, args.size), generator=g).float()
    images = ((images / 255 - 0.45) / 0.225).to(device).contiguous(memory_format=torch.channels_last)
    attention = FrequencyAttention().to(device)

    def call():
        with autocast_for(device, True):
            mask = attention(images, (8, 8))
        mask.sum().backward()

    forward, backward = dict(gate_kernel.FORWARD), dict(gate_kernel.BACKWARD)
    settings = [("convolutions", None, None), ("fused", forward, backward)]
    settings += [("fused", {**forward, "TILE_H": h, "TILE_W": w, "num_warps": warps}, backward)
                 for h, w, warps in [(16, 16, 8), (16, 32, 4), (16, 32, 8), (8, 32, 4)]]
    settings += [("fused", forward, {**backward, "TILE_H": h, "TILE_W": w, "num_warps": warps})
                 for h, w, warps in [(8, 16, 8), (16, 16, 4), (16, 16, 8), (8, 32, 8)]]
    for name, forward_launch, backward_launch in settings:
        attention.fused_gate = forward_launch is not None
        if attention.fused_gate:
            gate_kernel.FORWARD, gate_kernel.BACKWARD = forward_launch, backward_launch
        record = {"case": "gate", "gate": name, "forward": forward_launch, "backward": backward_launch,
                  "kernel_ran": attention.fused_gate and fused_gate_runs_on(device),
                  "images": 2 * args.batch, "size": args.size}
        try:
            for _ in range(2):  # compile, cuDNN's choice
                call()
            rates = _rate(call, device, 1, args.steps, args.repeats)  # calls per second
            record["ms_per_call"] = round(1e3 / statistics.median(rates), 2)
        except Exception as err:  # a setting the card cannot run (resources): recorded, not fatal
            record["error"] = str(err)[:300]
        print(json.dumps(record), flush=True)


def _jpeg_worker(job):
    import numpy as np
    from PIL import Image
    folder, start, count, size = job
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        low = rng.uniform(20, 235, (8, 8, 3)).astype(np.uint8)
        image = Image.fromarray(low).resize((size, size), Image.BICUBIC)
        noise = rng.normal(0, 6, (size, size, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(Path(folder) / f"{i:05d}.jpg", quality=90)


def make_jpegs(folder: Path, count: int, size: int = 256) -> list[str]:
    """``count`` synthetic JPEG crops of ``size`` px (smooth colour fields plus noise), in parallel."""
    from multiprocessing import Pool
    folder.mkdir(parents=True, exist_ok=True)
    chunk = max(1, count // 32)
    jobs = [(str(folder), s, min(chunk, count - s), size) for s in range(0, count, chunk)]
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        pool.map(_jpeg_worker, jobs)
    return sorted(str(p) for p in folder.glob("*.jpg"))


def case_e2e(args) -> None:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from dataset.owdfa import ImageReader, TrainSet, _worker_options
    from dataset.sampler import EpochDrawSampler
    device = torch.device(args.device)
    paths = sorted(str(p) for p in Path(args.images).glob("*.jpg"))
    n = len(paths)
    labels = np.arange(n) % 19
    labelled = np.arange(n) % 2 == 0
    extra = {"device_views": True} if args.gpu_augment else {}
    dataset = TrainSet(paths, labels, labelled, ImageReader(), args.size, 0, **extra)
    # several draws per image, so the wait for the first batch (paid once per epoch) stays a small
    # share of the timed epoch, as in a full-size training epoch
    sampler = EpochDrawSampler(np.ones(n), args.batch, 0, num_draws=4 * n)
    loader = DataLoader(dataset, batch_sampler=sampler, **_worker_options(args.workers, device.type == "cuda"))
    method, optimizer = _build(args.backbone, args.size, True, device, args.compile, args.cudnn_benchmark,
                               method_name=args.method)
    bf16 = args.size >= 128

    def prepare(batch):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
        if args.gpu_augment:
            from dataset.transforms import device_views
            batch["weak"], batch["strong"] = device_views(batch.pop("source"), batch.pop("view_params"), args.size)
        for key in ("weak", "strong"):
            batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
        return batch

    current = {}
    step = _make_step(method, optimizer, lambda: current["batch"], device, bf16)

    def epoch(index: int) -> tuple[float, int, float]:
        sampler.set_epoch(index)
        _sync(device)
        start, steps, first_batch_s = time.perf_counter(), 0, 0.0
        for batch in loader:
            if not steps:
                first_batch_s = time.perf_counter() - start
            current["batch"] = prepare(batch)
            step()
            steps += 1
        _sync(device)
        return time.perf_counter() - start, steps, first_batch_s

    warm_s, _, _ = epoch(0)  # workers start, page cache, cuDNN autotuning
    seconds, steps, first_batch_s = epoch(1)
    fixed = prepare(next(iter(loader)))
    current["batch"] = fixed
    step_only = _rate(step, device, 2 * args.batch, 10, 2)
    e2e = 2 * args.batch * steps / seconds
    print(json.dumps({"case": "e2e", "gpu_augment": args.gpu_augment, "compile": args.compile,
                      "workers": args.workers,
                      "images_in_epoch": steps * args.batch, "e2e_images_per_s": round(e2e, 1),
                      "step_only_images_per_s": round(statistics.median(step_only), 1),
                      "ratio": round(e2e / statistics.median(step_only), 3), "warm_epoch_s": round(warm_s, 1),
                      "timed_epoch_s": round(seconds, 2), "first_batch_s": round(first_batch_s, 2)}), flush=True)


# ---------------------------------------------------------------- orchestration

def run_case(args: list[str], timeout: float) -> tuple[list[dict], str]:
    """Run one case in its own process of this repository; returns its JSON records and any error."""
    command = [sys.executable, str(ROOT / "scripts" / "bench" / "gpu_step_benchmark.py"), "--case", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        stdout, error = out.stdout, (f"exit {out.returncode}: {out.stderr[-1500:]}" if out.returncode else "")
    except subprocess.TimeoutExpired as err:
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        error = f"timed out after {timeout:.0f} s"
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return records, error


def plan(smoke: bool, device: str, jpegs: Path, only: str = "", method: str = "cal") -> list[tuple]:
    """(case args, timeout) in order of importance. The step cases run with cuDNN's autotuning
    (the trainer's default, ``cudnn_benchmark``) and once without it, to show its share.
    ``only="fused_gate"``: the fused gate's cases alone. ``method``: whose training step the
    step and e2e cases time."""
    common = ["--device", device, "--method", method]
    if smoke:
        r50, r18, batch = ("resnet18", 64), ("resnet18", 32), "4"
        timing = ["--steps", "1", "--repeats", "1", "--warmup", "0"]
    else:
        r50, r18, batch = ("resnet50", 256), ("resnet18", 64), "128"
        timing = ["--steps", "8", "--repeats", "3", "--warmup", "2"]

    def step(model, variants, timeout, *flags):
        return (["--kind", "step", "--backbone", model[0], "--size", str(model[1]), "--batch", batch,
                 "--variants", *variants, *flags, *timing, *common], timeout)

    bench = ["--cudnn_benchmark"]
    if only == "fused_gate":
        return [(["--kind", "check", *common], 60),
                (["--kind", "gate", "--size", str(r50[1]), "--batch", batch, *timing, *common], 120),
                step(r50, ["bf16:att", "bf16:noatt"], 90, *bench),
                step(r50, ["bf16:att"], 90, "--fused_gate", *bench),
                step(r50, ["bf16:att", "bf16:noatt"], 150, "--compile", *bench),
                step(r50, ["bf16:att"], 150, "--compile", "--fused_gate", *bench)]
    cases = [(["--kind", "check", *common], 60),
             step(r50, ["bf16:att", "bf16:noatt", "fp32:att"], 120, *bench),
             step(r50, ["bf16:att", "bf16:noatt"], 90),
             step(r50, ["bf16:att"], 150, "--compile", *bench)]
    e2e = ["--kind", "e2e", "--backbone", r50[0], "--size", str(r50[1]), "--batch", batch,
           "--workers", "2" if smoke else "15", "--images", str(jpegs), *bench, *common]
    cases += [(e2e, 120), ([*e2e, "--gpu_augment"], 120), ([*e2e, "--compile"], 240),
              step(r18, ["bf16:att", "fp32:att", "fp32:noatt"], 90, *bench)]
    return cases


def format_results(records: list[dict]) -> str:
    steps = [r for r in records if r["case"] == "step"]

    def setting(r):
        return (r.get("method", "cal"), r["model"], r["precision"], r["compile"],
                r.get("cudnn_benchmark", False))

    # the share compares with the same setting without attention (the gate kernel plays no part there)
    rate = {(*setting(r), r["attention"]): r["images_per_s"] for r in steps}
    lines = ["| method | model | precision | compile | cuDNN autotune | fused gate | train img/s (both views) "
             "| attention share | first step s | host syncs/step | fused Adam |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in steps:
        if not r["attention"]:
            continue
        without = rate.get((*setting(r), False))
        share = f"{100 * (1 - r['images_per_s'] / without):.1f} %" if without else "-"
        lines.append(f"| {r.get('method', 'cal')} | {r['model']} | {r['precision']} | {r['compile']} "
                     f"| {r.get('cudnn_benchmark', False)} | {r.get('fused_gate', False)} | {r['images_per_s']:.0f} "
                     f"{r['rates']} | {share} | {r['first_step_s']} | {r['syncs_per_step']} | {r['fused_adam']} |")
    for r in records:
        if r["case"] == "e2e":
            lines.append(f"\ne2e (gpu_augment={r['gpu_augment']}, compile={r.get('compile', False)}, "
                         f"{r['workers']} workers, "
                         f"{r['images_in_epoch']} samples): {r['e2e_images_per_s']} img/s vs step-only "
                         f"{r['step_only_images_per_s']} img/s = {100 * r['ratio']:.1f} % (first batch "
                         f"{r['first_batch_s']} s)")
        elif r["case"] == "check":
            lines.append(f"\nattention CUDA path: dct2 relative error vs scipy {r['dct_rel_error_vs_scipy']:.2e}; "
                         f"mask (bf16 autocast) max |error| vs fp32 CPU {r['mask_max_abs_error_vs_fp32_cpu']:.2e}; "
                         f"fused gate {r.get('fused_mask_max_abs_error_vs_fp32_cpu', float('nan')):.2e}")
        elif r["case"] == "gate":
            ran = "" if r["gate"] == "convolutions" or r["kernel_ran"] else ", kernel not run here"
            lines.append(f"\nattention alone, gate {r['gate']} (forward {r['forward']}, backward {r['backward']}{ran}): "
                         + (f"{r['ms_per_call']} ms per forward + backward of {r['images']} x {r['size']} px"
                            if "ms_per_call" in r else f"failed: {r['error']}"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for the results files")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every case (checks the harness)")
    parser.add_argument("--cases", default="", choices=["", "fused_gate"],
                        help="fused_gate: only the fused gate's cases")
    parser.add_argument("--method", default="cal",
                        help="the method whose training step is timed: cal, cpl or simgcd (models/method.py)")
    parser.add_argument("--budget_s", type=float, default=float(os.environ.get("GPU_BENCH_BUDGET_S", "360")),
                        help="skip the cases still waiting after this many seconds")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--variants", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    for name in ("size", "batch", "steps", "repeats", "warmup", "workers"):
        parser.add_argument(f"--{name}", type=int, default=0, help=argparse.SUPPRESS)
    for name in ("compile", "gpu_augment", "cudnn_benchmark", "fused_gate"):
        parser.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        sys.path.insert(0, str(ROOT))
        {"step": case_step, "check": case_check, "gate": case_gate, "e2e": case_e2e}[args.kind](args)
        return 0

    started = time.time()
    device = "cpu" if args.smoke else "cuda"
    jpegs = Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_step_jpegs"
    if not args.cases and not list(jpegs.glob("*.jpg")):
        made = make_jpegs(jpegs, 64 if args.smoke else 3072)
        print(f"made {len(made)} JPEGs in {time.time() - started:.1f} s", flush=True)
    records, errors = [], []
    for case_args, timeout in plan(args.smoke, device, jpegs, args.cases, args.method):
        name = " ".join(case_args)
        left = args.budget_s - (time.time() - started)
        if left < 20:
            errors.append(f"skipped (budget): {name}")
            print(errors[-1], flush=True)
            continue
        found, error = run_case(case_args, min(timeout, left))
        records += found
        for record in found:
            print(json.dumps(record), flush=True)
        if error:
            errors.append(f"FAILED {name}: {error}")
            print(errors[-1], flush=True)
    import torch
    info = (f"torch {torch.__version__}, {os.cpu_count()} CPU cores"
            + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA")
            + f"; {time.time() - started:.0f} s in all")
    report = "\n".join([format_results(records), "", info, *errors])
    print("\n" + report, flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_step_results.md").write_text(report + "\n")
        (out / "gpu_step_results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
