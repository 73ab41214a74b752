"""2-D DCT and the frequency attention (METHOD.md section 3) against scipy.fft."""
import math

import numpy as np
import pytest
import scipy.fft
import torch

import models.frequency
from models.frequency import DCT2, FrequencyAttention, dct2, idct2, tensor_core_transform

SIZES = [(8, 8), (5, 7), (16, 3), (1, 4)]


def _rand(shape, dtype, seed=0):
    return torch.tensor(np.random.default_rng(seed).normal(size=shape), dtype=dtype)


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float64, 1e-10, 1e-9), (torch.float32, 1e-4, 1e-3)])
@pytest.mark.parametrize("hw", SIZES)
def test_dct2_matches_scipy_default_norm(hw, dtype, rtol, atol):
    """dct2(x) == scipy.fft.dctn(x, type=2, axes=(-2,-1)) (default 'backward' norm), any H x W, batched."""
    x = _rand((2, 3, *hw), dtype)
    expected = scipy.fft.dctn(x.double().numpy(), type=2, axes=(-2, -1))
    out = dct2(x)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float64, 1e-10, 1e-12), (torch.float32, 1e-4, 1e-5)])
@pytest.mark.parametrize("hw", SIZES)
def test_idct2_matches_scipy(hw, dtype, rtol, atol):
    """idct2(X) == scipy.fft.idctn(X, type=2, axes=(-2,-1)), any H x W."""
    x = _rand((2, 3, *hw), dtype, seed=1) * 10
    expected = scipy.fft.idctn(x.double().numpy(), type=2, axes=(-2, -1))
    out = idct2(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=rtol, atol=atol)


def test_dct2_hand_worked_1x2_and_constant():
    """Hand values of the unnormalised DCT-II, X[k] = 2 sum_n x[n] cos(pi k (2n+1) / (2N)).

    x = [[1, 2]] (H=1, W=2): along H (N=1) the factor is 2; along W:
      X[0] = 2 (1 + 2) = 6; X[1] = 2 (cos(pi/4) - 2 cos(pi/4))... = 2 * (1 - 2) * cos(pi/4) = -sqrt 2.
      times 2 from the H axis: [[12, -2 sqrt 2]].
    A constant c on H x W gives X[0,0] = 4 H W c and zeros elsewhere.
    """
    out = dct2(torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    np.testing.assert_allclose(out.numpy(), [[12.0, -2 * math.sqrt(2)]], atol=1e-12)
    const = dct2(torch.full((4, 6), 0.5, dtype=torch.float64))
    expected = np.zeros((4, 6))
    expected[0, 0] = 4 * 4 * 6 * 0.5
    np.testing.assert_allclose(const.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
@pytest.mark.parametrize("hw", SIZES + [(32, 32)])
def test_round_trip(hw, dtype, atol):
    """idct2(dct2(x)) == x and dct2(idct2(x)) == x."""
    x = _rand((2, *hw), dtype, seed=2)
    torch.testing.assert_close(idct2(dct2(x)), x, atol=atol, rtol=0)
    torch.testing.assert_close(dct2(idct2(x)), x, atol=atol, rtol=0)


def test_module_forward_and_inverse():
    """The DCT2 module agrees with scipy and its inverse; a second call (cached basis) too."""
    module = DCT2()
    x = _rand((1, 2, 6, 9), torch.float64, seed=3)
    for _ in range(2):
        np.testing.assert_allclose(module(x).numpy(), scipy.fft.dctn(x.numpy(), type=2, axes=(-2, -1)),
                                   rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(module.inverse(x).numpy(), scipy.fft.idctn(x.numpy(), type=2, axes=(-2, -1)),
                                   rtol=1e-10, atol=1e-12)


def test_dct2_is_linear_and_separable_per_channel():
    """Each [H, W] slice is transformed independently (no mixing across batch or channel)."""
    x = _rand((2, 3, 5, 4), torch.float64, seed=4)
    out = dct2(x)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[b, c].numpy(), scipy.fft.dctn(x[b, c].numpy(), type=2), atol=1e-9)


# ----------------------------------------------------------------- attention

@pytest.mark.parametrize("feature_size", [(8, 8), (4, 4), (1, 1), (3, 5)])
def test_attention_shape_and_range(feature_size):
    """Output [B, 1, h, w], float32, every value strictly inside (0, 1)."""
    torch.manual_seed(0)
    attn = FrequencyAttention()
    image = torch.randn(3, 3, 32, 32)
    mask = attn(image, feature_size)
    assert mask.shape == (3, 1, *feature_size)
    assert mask.dtype == torch.float32
    assert torch.all(mask > 0) and torch.all(mask < 1)


def test_attention_float32_under_bf16_autocast():
    """Under torch.autocast('cpu', bfloat16) the mask is float32; only the two gate convolutions
    follow autocast (the transforms stay float32), which moves the mask by < 1e-3."""
    torch.manual_seed(0)
    attn = FrequencyAttention()
    image = torch.randn(2, 3, 32, 32)
    reference = attn(image, (4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mask = attn(image, (4, 4))
        mask_bf16_input = attn(image.bfloat16(), (4, 4))
    assert mask.dtype == torch.float32 and mask_bf16_input.dtype == torch.float32
    torch.testing.assert_close(mask, reference, atol=1e-3, rtol=0)
    assert not torch.equal(mask, reference)  # the gate convolutions did run in bf16
    assert torch.all(mask_bf16_input > 0) and torch.all(mask_bf16_input < 1)


def test_attention_matches_spec_formula():
    """Recompute the mask from the spec with scipy's DCT and the module's conv weights:
    X = dctn(x); a = sigmoid(conv2(relu(conv1(X)))); s = idctn(X * a); m = sigmoid(mean_c s);
    average-pool to 8x8; bilinear resize to h x w."""
    torch.manual_seed(1)
    attn = FrequencyAttention()
    image = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    conv = torch.nn.functional.conv2d
    spectrum = torch.tensor(scipy.fft.dctn(image.numpy(), type=2, axes=(-2, -1)))
    with torch.no_grad():
        hidden = torch.relu(conv(spectrum, attn.conv1.weight.double(), attn.conv1.bias.double(), padding=1))
        gate = torch.sigmoid(conv(hidden, attn.conv2.weight.double(), attn.conv2.bias.double(), padding=1))
        s = torch.tensor(scipy.fft.idctn((spectrum * gate).numpy(), type=2, axes=(-2, -1)))
        m = torch.sigmoid(s.mean(dim=1, keepdim=True))
        pooled = torch.nn.functional.adaptive_avg_pool2d(m, 8)
        expected = torch.nn.functional.interpolate(pooled, size=(5, 3), mode="bilinear", align_corners=False)
        out = attn(image.float(), (5, 3))
        out_8 = attn(image.float(), (8, 8))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out_8.numpy(), pooled.numpy(), rtol=1e-4, atol=1e-5)
    # the 8x8 pool of a 16x24 mask is plain block averaging of 2x3 blocks
    blocks = m.numpy().reshape(2, 1, 8, 2, 8, 3).mean(axis=(3, 5))
    np.testing.assert_allclose(pooled.numpy(), blocks, atol=1e-12)


def test_attention_is_differentiable():
    """Gradients reach both convolutions (the attention is learnt)."""
    torch.manual_seed(0)
    attn = FrequencyAttention()
    attn(torch.randn(2, 3, 16, 16), (4, 4)).sum().backward()
    assert attn.conv1.weight.grad is not None and torch.count_nonzero(attn.conv1.weight.grad) > 0
    assert attn.conv2.weight.grad is not None and torch.count_nonzero(attn.conv2.weight.grad) > 0


# ----------------------------------------------------------------- fast path (TF32 on CUDA)

def _round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32's 10 explicit mantissa bits (round half up on the bit pattern)."""
    bits = t.float().contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


def _tf32_transform(x, left, right):
    """What a TF32 tensor-core sandwich computes: each product's inputs rounded to TF32,
    float32 accumulation and output."""
    return _round_to_tf32(left) @ _round_to_tf32(_round_to_tf32(x) @ _round_to_tf32(right))


def _image(size: int, seed: int = 0) -> torch.Tensor:
    """A normalised image batch [2, 3, size, size] with natural-image-like smooth content plus texture."""
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.avg_pool2d(torch.randint(0, 256, (2, 3, size, size), generator=g).float(), 5, 1, 2)
    return (u / 255 - 0.45) / 0.225


def test_round_to_tf32_keeps_ten_mantissa_bits():
    x = torch.tensor([1.0 + 2 ** -10, 1.0 + 2 ** -12, 3.0])
    assert _round_to_tf32(x).tolist() == [1.0 + 2 ** -10, 1.0, 3.0]


def test_fast_path_tolerance_at_256_px(monkeypatch):
    """Stated tolerance of the CUDA path (TF32 products of the orthonormal bases, emulated here):
    dct2 within 1e-3 relative (Frobenius) of scipy.fft.dctn at 256 x 256, idct2 round trip within
    1e-3 relative, the attention mask within 1e-4 of the float64 spec computed with scipy."""
    x = _image(256)
    expected = torch.tensor(scipy.fft.dctn(x.double().numpy(), type=2, axes=(-2, -1)))
    torch.manual_seed(0)
    attn = FrequencyAttention()
    conv = torch.nn.functional.conv2d
    with torch.no_grad():
        hidden = torch.relu(conv(expected, attn.conv1.weight.double(), attn.conv1.bias.double(), padding=1))
        gate = torch.sigmoid(conv(hidden, attn.conv2.weight.double(), attn.conv2.bias.double(), padding=1))
        s = torch.tensor(scipy.fft.idctn((expected * gate).numpy(), type=2, axes=(-2, -1)))
        spec_mask = torch.nn.functional.adaptive_avg_pool2d(torch.sigmoid(s.mean(dim=1, keepdim=True)), 8)
        monkeypatch.setattr(models.frequency, "tensor_core_transform", _tf32_transform)
        fast = dct2(x).double()
        round_trip = idct2(dct2(x)).double()
        mask = attn(x, (8, 8)).double()
    assert ((fast - expected).norm() / expected.norm()) < 1e-3
    assert ((round_trip - x.double()).norm() / x.double().norm()) < 1e-3
    assert (fast - expected).norm() > 0  # the rounding did take effect
    np.testing.assert_allclose(mask.numpy(), spec_mask.numpy(), atol=1e-4, rtol=0)


def test_fast_path_float32_on_cpu_is_exact_to_float32_precision():
    """Without TF32 (CPU) the orthonormal route matches scipy to float32 precision at 256 x 256."""
    x = _image(256, seed=1)
    expected = scipy.fft.dctn(x.double().numpy(), type=2, axes=(-2, -1))
    out = dct2(x).double().numpy()
    assert np.abs(out - expected).max() <= 1e-6 * np.abs(expected).max()


def test_tensor_core_transform_gradient():
    """The custom backward (left^T g right^T) is the true gradient of left @ x @ right."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    left = torch.randn(5, 5, dtype=torch.float64, generator=g)
    right = torch.randn(4, 4, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda t: tensor_core_transform(t, left, right), (x,))


def test_attention_uses_one_inverse_transform_per_image(monkeypatch):
    """The channel mean is taken before the inverse transform (linearity): the inverse product
    runs on [B, 1, H, W], a third of the per-channel work, with the same mask (spec test above)."""
    shapes = []
    real = models.frequency.tensor_core_transform

    def recording(x, left, right):
        shapes.append(tuple(x.shape))
        return real(x, left, right)

    monkeypatch.setattr(models.frequency, "tensor_core_transform", recording)
    FrequencyAttention()(torch.randn(2, 3, 16, 16), (4, 4))
    assert shapes == [(2, 3, 16, 16), (2, 1, 16, 16)]
