"""The weighted labelled/unlabelled stream and the sharded test order."""
import numpy as np
import pytest

from dataset.sampler import EpochDrawSampler, ShardSampler, labelled_weights


def test_weights_balance_labelled_and_unlabelled():
    labelled = np.array([True] * 30 + [False] * 90)
    w = labelled_weights(labelled)
    assert np.allclose(w[:30], 1.0) and np.allclose(w[30:], 30 / 90)
    assert np.isclose(w[labelled].sum(), w[~labelled].sum())  # each half of the mass


def test_batches_are_about_half_labelled():
    labelled = np.array([True] * 200 + [False] * 1800)
    sampler = EpochDrawSampler(labelled_weights(labelled), batch_size=100, seed=0)
    share = np.mean([labelled[i] for batch in sampler for i, _, _ in batch])
    assert 0.45 < share < 0.55


def test_epoch_stream_is_seeded_and_drops_the_last_partial_batch():
    w = np.ones(1000)
    a = EpochDrawSampler(w, batch_size=64, seed=3)
    b = EpochDrawSampler(w, batch_size=64, seed=3)
    assert len(a) == 1000 // 64 == len(list(a))
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert all(epoch == 0 for batch in a for _, epoch, _ in batch)
    positions = [p for batch in a for _, _, p in batch]
    assert positions == list(range(len(positions)))


def test_processes_split_each_global_batch_without_overlap():
    w = np.random.default_rng(0).random(500)
    single = list(EpochDrawSampler(w, batch_size=60, seed=1))
    shards = [list(EpochDrawSampler(w, batch_size=60, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == len(single) for s in shards)
    for step, batch in enumerate(single):
        assert sum((s[step] for s in shards), []) == batch


def test_start_step_resumes_the_same_stream():
    w = np.ones(300)
    full = list(EpochDrawSampler(w, batch_size=32, seed=5))
    resumed = EpochDrawSampler(w, batch_size=32, seed=5)
    resumed.set_epoch(0, start_step=4)
    assert len(resumed) == len(full) - 4 and list(resumed) == full[4:]


def test_batch_must_divide_over_processes():
    with pytest.raises(ValueError, match="not divisible"):
        EpochDrawSampler(np.ones(10), batch_size=10, seed=0, world_size=3)


def test_test_shards_cover_every_index_once():
    shards = [list(ShardSampler(11, r, 2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(11))
