"""Where the frequency attention's time goes: its ops ranked by self time.

    python scripts/bench/attention_profile.py                                   # CPU, 256 px, batch 4
    python scripts/bench/attention_profile.py --device cuda --batch 256 --bf16  # a ResNet-50 step's share

Profiles ``FrequencyAttention`` alone (forward and backward, as in a training
step: the image needs no gradient, the two gate convolutions do) on uint8-range
random images in the trainer's layout, under bf16 autocast with ``--bf16``
(CUDA only). Prints the total per call and the top ops by self time on the
device (CUDA) or the CPU, so a speed change can aim at the op that dominates;
the whole-step share of the attention is measured by scripts/bench/throughput.py.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.frequency import FrequencyAttention  # noqa: E402
from utils.device import autocast_for, to_layout  # noqa: E402


def attention_step(attention: FrequencyAttention, images: torch.Tensor, bf16: bool) -> None:
    """Forward to a 8x8 mask and backward of its sum (the gate's gradients)."""
    with autocast_for(images.device, bf16):
        mask = attention(images, (8, 8))
    mask.sum().backward()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4, help="images per call (a step's 2B views)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--cudnn_benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="cuDNN's autotuning, as configs/base.py cudnn_benchmark (CUDA)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    attention = FrequencyAttention().to(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), generator=generator).float()
    images = to_layout(((images / 255 - 0.45) / 0.225).to(device), args.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):  # warm-up: basis cache, cuDNN algorithm choice
        attention_step(attention, images, args.bf16)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            attention_step(attention, images, args.bf16)
        sync()
    per_call = (time.perf_counter() - started) / args.steps * 1e3
    print(f"frequency attention, {args.batch} x {args.size} px, {device}, "
          f"{'bf16' if args.bf16 else 'fp32'}, channels_last {args.channels_last}"
          f"{f', cudnn_benchmark {args.cudnn_benchmark}' if device.type == 'cuda' else ''}: {per_call:.2f} ms per "
          f"forward + backward (under the profiler)")
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.top))


if __name__ == "__main__":
    main()
