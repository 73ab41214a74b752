# Sourced by scripts/demo.sh: the same numbers on every x86 CPU with AVX2. The numerical libraries
# choose their kernels by the CPU's vector instructions (and split work by the thread count), and
# each choice rounds differently, which a training run amplifies into other final metrics
# (docs/performance.md#the-demos-numbers-on-another-machine). Pinned: PyTorch's own and oneDNN's
# kernels to AVX2, MKL to its one branch every vendor's CPU runs alike, numpy and OpenCV (which
# make the mini dataset) without their AVX-512 paths, and one thread.
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENCV_CPU_DISABLE=AVX512-SKX  # only where it exists: OpenCV warns about a feature the CPU lacks
fi
