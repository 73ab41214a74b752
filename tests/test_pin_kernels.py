"""scripts/_pin_kernels.sh, which the demo sources, reaches every library it pins: PyTorch's and
oneDNN's kernels at AVX2, MKL on its compatible branch, one thread, numpy without AVX-512."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PROBE = """
import numpy, torch
from numpy._core._multiarray_umath import __cpu_features__
x = torch.randn(8, 3, 16, 16).contiguous(memory_format=torch.channels_last)
torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)(x)
torch.randn(64, 64) @ torch.randn(64, 64)
print("threads", torch.get_num_threads(), "aten", torch.backends.cpu.get_cpu_capability(),
      "numpy X86_V4", __cpu_features__["X86_V4"])
"""


def test_the_pin_reaches_every_library():
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.is_file() or " avx2" not in cpuinfo.read_text():
        pytest.skip("the pin is for x86 CPUs with AVX2")
    result = subprocess.run(["bash", "-c", 'source scripts/_pin_kernels.sh && ONEDNN_VERBOSE=1 MKL_VERBOSE=1 '
                             '"$0" -c "$1"', sys.executable, PROBE], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "threads 1 aten AVX2 numpy X86_V4 False" in out
    assert "isa:Intel AVX2" in out and "CNR:COMPATIBLE" in out and "NThr:1" in out
