"""The GPU step benchmark builds the method it is asked for through the method table and
times its training step (run here on the CPU with a tiny network)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "bench"))
import gpu_step_benchmark as bench  # noqa: E402

from models.cal import CAL  # noqa: E402
from models.cpl import CPL  # noqa: E402
from models.simgcd import SimGCD  # noqa: E402


@pytest.mark.parametrize("name, kind", [("cal", CAL), ("cpl", CPL), ("simgcd", SimGCD)])
def test_build_makes_the_named_method_and_its_step_trains(name, kind):
    device = torch.device("cpu")
    method, optimizer = bench._build("resnet18", 32, False, device, False, False, method_name=name)
    assert type(method) is kind
    before = [p.detach().clone() for p in method.parameters()]
    step = bench._make_step(method, optimizer, lambda: bench._fixed_batch(4, 32, device), device, False)
    assert step() is True
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, method.parameters()))


def test_every_step_and_e2e_case_carries_the_method(tmp_path):
    cases = bench.plan(True, "cpu", tmp_path, method="simgcd")
    timed = [args for args, _ in cases if args[1] in ("step", "e2e")]
    assert timed and all(args[args.index("--method") + 1] == "simgcd" for args in timed)
