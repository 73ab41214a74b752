"""The attention profiler runs on the CPU and ranks the attention's own ops."""
import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench" / "attention_profile.py"
_spec = importlib.util.spec_from_file_location("bench_attention", _SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_profile_prints_the_per_call_time_and_the_gate_convolutions(capsys):
    bench.main(["--batch", "2", "--size", "32", "--steps", "1", "--top", "40"])
    out = capsys.readouterr().out
    assert "2 x 32 px, cpu, fp32, channels_last True:" in out and "ms per forward + backward" in out
    assert "aten::convolution_backward" in out  # the gate's gradients are part of what is timed


def test_attention_step_trains_the_gate_only():
    import torch

    attention = bench.FrequencyAttention()
    images = torch.randn(2, 3, 16, 16)
    bench.attention_step(attention, images, bf16=False)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attention.parameters())
    assert images.grad is None
