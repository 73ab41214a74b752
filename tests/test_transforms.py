"""Training views (METHOD.md 2): one draw of random choices per sample, used
by the CPU views and by the batched device views (gpu_augment)."""
import math

import numpy as np
import pytest
import torch

from dataset.transforms import TrainViews, ViewParams, device_views, draw_view_params


def _draws(n: int, height: int = 120, width: int = 90) -> list[ViewParams]:
    return [draw_view_params(height, width, np.random.default_rng([7, 0, i])) for i in range(n)]


def test_parameter_distributions_follow_the_spec():
    """Over 4000 (seed, epoch, position) draws: flips p=0.5 each, crop p=0.2 with area scale in
    [0.5, 1] and aspect in [3/4, 4/3] (up to integer rounding of the box), jitter p=0.2 with
    factors in [0.6, 1.4] and either order half the time."""
    draws = _draws(4000)
    n = len(draws)
    sd = lambda p: 4 * math.sqrt(p * (1 - p) / n)  # noqa: E731  (4 standard errors)
    assert abs(np.mean([d.weak_flip for d in draws]) - 0.5) < sd(0.5)
    assert abs(np.mean([d.strong_flip for d in draws]) - 0.5) < sd(0.5)
    crops = [d.crop for d in draws if d.crop is not None]
    jitters = [d.jitter for d in draws if d.jitter is not None]
    assert abs(len(crops) / n - 0.2) < sd(0.2) and abs(len(jitters) / n - 0.2) < sd(0.2)
    for top, left, h, w in crops:
        area = h * w  # fraction of the image
        aspect = (w * 90) / (h * 120)
        assert 0.5 - 0.03 <= area <= 1.0 and 0.75 - 0.03 <= aspect <= 4 / 3 + 0.03
        assert 0 <= top and top + h <= 1 + 1e-9 and 0 <= left and left + w <= 1 + 1e-9
    factors = np.array([j[:2] for j in jitters])
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and factors.std() > 0.2
    assert abs(np.mean([j[2] for j in jitters]) - 0.5) < sd(0.5) * math.sqrt(n / len(jitters))


def test_device_path_draws_exactly_what_the_cpu_path_draws():
    """``source`` (gpu_augment) and the CPU views consume the (seed, epoch, position) stream
    identically: same parameters, and the generator ends in the same state."""
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    views = TrainViews(32)
    for position in range(200):
        cpu_rng, dev_rng = np.random.default_rng([3, 1, position]), np.random.default_rng([3, 1, position])
        expected = draw_view_params(50, 70, np.random.default_rng([3, 1, position])).as_tensor()
        views(image, cpu_rng)
        source, params = views.source(image, dev_rng)
        assert torch.equal(params, expected) and source.shape == (3, 36, 36) and source.dtype == torch.uint8
        assert cpu_rng.random() == dev_rng.random()


def _smooth_image(size: int, seed: int) -> np.ndarray:
    """A smooth uint8 image (resampling differences stay small), asymmetric so flips show."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 6, 6, generator=g) * 200 + 20
    big = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    ramp = torch.linspace(0, 30, size).view(1, 1, 1, size)
    return (big + ramp).clamp(0, 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("position", range(12))
def test_device_views_match_cpu_views(position):
    """For the same draw, the batched device views equal the CPU views up to resampling
    (mean |difference| <= 2 grey levels); a wrong flip, crop box or jitter would be far off."""
    size, views = 64, TrainViews(64)
    image = _smooth_image(views.inter, position)  # already at the source size: no extra resize
    seed = [11, 0, position]
    weak, strong = views(image, np.random.default_rng(seed))
    source, params = views.source(image, np.random.default_rng(seed))
    dev_weak, dev_strong = device_views(source[None], params[None], size)
    assert dev_weak.dtype == torch.uint8 and dev_weak.shape == (1, 3, size, size)
    for cpu, dev in ((weak, dev_weak[0]), (strong, dev_strong[0])):
        assert (cpu.float() - dev.float()).abs().mean() <= 2.0


def test_device_views_batch_equals_per_sample_and_repeats_exactly():
    """Per-sample parameters inside one batch: a batch gives what each sample alone gives, and
    the same inputs give the same views (the (seed, epoch, position) draw fixes them: exact resume)."""
    views = TrainViews(32)
    items = [views.source(_smooth_image(50, i), np.random.default_rng([5, 2, i])) for i in range(16)]
    sources, params = torch.stack([s for s, _ in items]), torch.stack([p for _, p in items])
    assert params[:, 2].any() and params[:, 7].any() and params[:, 0].any()  # crop, jitter, flip occur
    weak, strong = device_views(sources, params, 32)
    again = device_views(sources, params, 32)
    assert torch.equal(weak, again[0]) and torch.equal(strong, again[1])
    for i in (0, 5, 15):
        one = device_views(sources[i:i + 1], params[i:i + 1], 32)
        assert (one[1][0].float() - strong[i].float()).abs().max() <= 1


def test_device_views_read_nothing_back_to_the_host(host_reads):
    """gpu_augment's views run once per training step: no host read or host-built tensor in them
    (a per-batch torch.tensor(..., device=cuda) is a host-to-device copy, a sync on CUDA)."""
    views = TrainViews(32)
    items = [views.source(_smooth_image(50, i), np.random.default_rng([5, 2, i])) for i in range(4)]
    sources, params = torch.stack([s for s, _ in items]), torch.stack([p for _, p in items])
    spy = host_reads()
    with spy:
        device_views(sources, params, 32)
    assert spy.seen == []
    with spy:
        torch.tensor([0.5])  # the spy sees a host-built tensor when there is one
    assert spy.seen


def test_training_with_gpu_augment_runs(mini_root, tmp_path):
    """gpu_augment=true end to end (TINY, one epoch): the loader ships sources, the trainer makes the views."""
    import json

    import train
    from conftest import TINY

    run_dir = tmp_path / "gpu_augment"
    code = train.main(["configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}", *TINY, "epochs=1",
                       "gpu_augment=true"])
    assert code == 0
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["all_acc"] is not None and record["loss"] > 0
