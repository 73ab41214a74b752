"""Training-step and evaluation throughput of the CAL model.

    python scripts/bench/throughput.py                  # CPU, and CUDA when present
    python scripts/bench/throughput.py --devices cuda --out bench_results/throughput_cuda.md

One training step is ``CAL.training_step`` exactly as the trainer runs it
(forward of both views, the four loss terms, backward, Adam), inputs already
on the device (data loading: scripts/bench/dataloader.py); images/s counts both
views. Evaluation is a no-grad forward of B test images. Each configuration
runs in its own process, warm-up steps excluded; the table shows the median
and [min, max] over repeats. "attention share" is 1 - t(no attention) /
t(with attention). Variants: fp32 and bf16 autocast (CUDA), channels_last
off/on; ``--compare`` adds a row with a host sync per logged term per step
against on-device accumulation. Results: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# (backbone, image size, batch per device kind): batch = samples, each with two views
CASES = [("resnet18", 64, {"cpu": 32, "cuda": 128}), ("resnet50", 256, {"cpu": 4, "cuda": 128})]
REPEATS = {"cpu": 3, "cuda": 5}
STEPS = {"cpu": 2, "cuda": 10}


def build(backbone: str, size: int, device, attention: bool, channels_last: bool):
    import torch

    from models.method import create_method
    from utils.device import place_model
    from utils.config import load_config

    cfg = load_config(None, [f"backbone={backbone}", "pretrained=false", f"image_size={size}",
                             f"cal_frequency_attention={attention}", "cal_pseudo_start=0", "epochs=10"])
    torch.manual_seed(0)
    method = create_method(cfg, num_known=19, num_classes=41)
    place_model(method.model, device, channels_last)
    return method, method.make_optimizer()


def fake_batch(batch: int, size: int, device, channels_last: bool) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8) for _ in range(2)]
    labels = torch.randint(0, 19, (batch,), generator=g)
    labels[batch // 2:] = -1  # about half unlabelled, as the sampler gives
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {"weak": views[0].to(device).contiguous(memory_format=fmt),
            "strong": views[1].to(device).contiguous(memory_format=fmt), "label": labels.to(device)}


def timed(fn, device, steps: int, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per call of ``fn`` for each repeat (``steps`` calls each)."""
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        out.append((time.perf_counter() - start) / steps)
    return out


def run_case(args) -> dict:
    """One configuration, in this process: train and eval images/s, memory."""
    import torch

    from utils.device import autocast_for

    device = torch.device(args.device)
    method, optimizer = build(args.backbone, args.size, device, args.attention, args.channels_last)
    batch = fake_batch(args.batch, args.size, device, args.channels_last)

    def train_step():
        with autocast_for(device, args.bf16):
            out = method.training_step(batch, epoch=5)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        if args.sync_logging:  # "before": a host sync per logged term per step
            for value in out.values():
                float(value)
        else:  # the trainer's path: one finiteness check per step
            bool(torch.isfinite(out["loss"]))

    @torch.no_grad()
    def eval_step():
        method.model.eval()
        with autocast_for(device, args.bf16):
            method.predict(batch["weak"])
        method.model.train()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = timed(train_step, device, args.steps, args.repeats)
    eval_s = timed(eval_step, device, args.steps, args.repeats)
    images = 2 * args.batch
    result = {"train": [images / s for s in train_s], "eval": [args.batch / s for s in eval_s],
              "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["cuda_max_alloc_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def case_args(device: str, backbone: str, size: int, batch: int, **flags) -> list[str]:
    args = ["--case", "--device", device, "--backbone", backbone, "--size", str(size), "--batch", str(batch),
            "--steps", str(STEPS[device.split(":")[0]]), "--repeats", str(REPEATS[device.split(":")[0]])]
    names = {"channels_last": "cl"}
    return args + [f"--{names.get(k, k)}" for k, v in flags.items() if v]


def spawn(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"benchmark case {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.1f} [{min(rates):.1f}, {max(rates):.1f}]"


def grid(devices: list[str], compare: bool, models: list[str] | None = None,
         precisions: list[str] | None = None, layouts: list[str] | None = None):
    """Rows of (label, result, attention share) for the table; ``models``
    (e.g. resnet50@256), ``precisions`` (fp32, bf16) and ``layouts``
    (off, on: channels_last) select a subset."""
    for device in devices:
        kind = device.split(":")[0]
        for backbone, size, batches in CASES:
            if models and f"{backbone}@{size}" not in models:
                continue
            batch = batches[kind]
            for precision in ("fp32", "bf16") if kind == "cuda" else ("fp32",):
                for layout in ("off", "on"):
                    if (precisions and precision not in precisions) or (layouts and layout not in layouts):
                        continue
                    flags = {"bf16": precision == "bf16", "channels_last": layout == "on"}
                    with_att = spawn(case_args(device, backbone, size, batch, attention=True, **flags))
                    without = spawn(case_args(device, backbone, size, batch, attention=False, **flags))
                    # step time t = 1 / rate: share = 1 - t_without / t_with
                    share = 1 - statistics.median(with_att["train"]) / statistics.median(without["train"])
                    yield (device, f"{backbone}@{size}", batch, precision, layout, ""), with_att, share
            if compare:
                for variant in ("sync_logging",):
                    result = spawn(case_args(device, backbone, size, batch, attention=True,
                                             bf16=kind == "cuda", **{variant: True}))
                    label = (device, f"{backbone}@{size}", batch, "bf16" if kind == "cuda" else "fp32", "off",
                             "before: .item() per term per step")
                    yield label, result, None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="*", default=None, help="cpu and/or cuda (default: cpu + cuda if present)")
    parser.add_argument("--out", default=str(REPO / "bench_results" / "throughput.md"))
    parser.add_argument("--compare", action="store_true", help="add the before/after rows of the speed work")
    parser.add_argument("--models", nargs="*", default=None, help="subset, e.g. resnet50@256")
    parser.add_argument("--precisions", nargs="*", default=None, choices=["fp32", "bf16"])
    parser.add_argument("--channels_last", dest="layouts", nargs="*", default=None, choices=["off", "on"])
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    for name in ("device", "backbone"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("size", "batch", "steps", "repeats"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    for name in ("bf16", "attention", "sync_logging"):
        parser.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cl", dest="channels_last", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args)))
        return 0

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    header = ("| device | model | batch | precision | channels_last | variant | train img/s median [min, max] "
              "| eval img/s median [min, max] | attention share | peak RSS MB | CUDA max alloc MB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    print(header, flush=True)
    for label, result, share in grid(devices, args.compare, args.models, args.precisions, args.layouts):
        device, model, batch, precision, cl, variant = label
        row = (f"| {device} | {model} | {batch} | {precision} | {cl} | {variant or 'as shipped'} | "
               f"{summary(result['train'])} | {summary(result['eval'])} | "
               f"{'' if share is None else f'{100 * share:.1f}%'} | {result['rss_mb']:.0f} | "
               f"{result.get('cuda_max_alloc_mb', float('nan')):.0f} |")
        lines.append(row)
        print(row, flush=True)
    info = (f"\n{torch.__version__}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}"
            + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n" + info + "\n")
    print(info.strip() + f"\ntable written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
