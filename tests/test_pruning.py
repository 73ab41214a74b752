"""Dynamic prototype pruning (METHOD.md section 5) on crafted usage vectors.

Each expected K is worked out by hand in a comment: sorted usage s, cumulative
coverage c, k_min (0-based, first c >= coverage), tail mean t, mean absolute
consecutive tail difference d, the walk, and K = last accepted i + 1.
"""
import numpy as np
import torch

from discovery.pruning import estimate_kept, merge_into_anchors, move_optimizer_rows, prune_prototypes

COV = 0.9544


def u(values):
    return torch.tensor(values, dtype=torch.long)


# ----------------------------------------------------------------- estimate_kept

def test_coverage_reached_early_then_one_extension():
    """s = [60, 36, 1, 1, 1, 1, 0, 0, 0, 0], sum 100.
    c = .60, .96 -> k_min = 1.
    tail = [36, 1, 1, 1, 1, 0, 0, 0, 0]: t = 41/9 = 4.56; diffs 35,0,0,0,1,0,0,0 -> d = 36/8 = 4.5.
    i=1 accepted (first step); i=2: 1 < 4.56 but |1-36| = 35 >= 4.5 -> accepted;
    i=3: 1 < 4.56 and |1-1| = 0 < 4.5 -> stop.  K = 2 + 1 = 3.
    """
    assert estimate_kept(u([60, 36, 1, 1, 1, 1, 0, 0, 0, 0]), COV) == 3


def test_input_order_does_not_matter():
    """The same usage in a scrambled order gives the same K = 3 (usage is sorted first)."""
    assert estimate_kept(u([1, 0, 36, 0, 1, 60, 0, 1, 0, 1]), COV) == 3


def test_tail_extension_accepts_two_then_stops():
    """s = [70, 20, 6, 3, 1, 0, 0, 0], sum 100.
    c = .70, .90, .96 -> k_min = 2.
    tail = [6, 3, 1, 0, 0, 0]: t = 10/6 = 1.67; diffs 3,2,1,0,0 -> d = 6/5 = 1.2.
    i=2 accepted; i=3: 3 >= 1.67 -> accepted (mean rule);
    i=4: 1 < 1.67 but |1-3| = 2 >= 1.2 -> accepted (difference rule);
    i=5: 0 < 1.67 and |0-1| = 1 < 1.2 -> stop.  K = 4 + 1 = 5.
    """
    assert estimate_kept(u([70, 20, 6, 3, 1, 0, 0, 0]), COV) == 5


def test_tail_extension_runs_to_the_end():
    """s = [50, 30, 10, 4, 3, 2, 1], sum 100.
    c = .50, .80, .90, .94, .97 -> k_min = 4.
    tail = [3, 2, 1]: t = 2; diffs 1,1 -> d = 1.
    i=4 accepted; i=5: 2 >= 2 -> accepted; i=6: 1 < 2 but |1-2| = 1 >= 1 -> accepted; end.
    K = 6 + 1 = 7 (all).
    """
    assert estimate_kept(u([50, 30, 10, 4, 3, 2, 1]), COV) == 7


def test_coverage_exactly_reached_counts():
    """'Reaches' means >=.  s = [6, 2, 1, 1], coverage 0.8.
    c = .6, .8 -> k_min = 1 (8/10 == 0.8 exactly).
    tail = [2, 1, 1]: t = 4/3; diffs 1,0 -> d = 0.5.
    i=1 accepted; i=2: 1 < 1.33 but |1-2| = 1 >= 0.5 -> accepted; i=3: 1 < 1.33, 0 < 0.5 -> stop.
    K = 2 + 1 = 3.   (With '>' instead, k_min = 2 and K would be 4.)
    """
    assert estimate_kept(u([6, 2, 1, 1]), 0.8) == 3


def test_low_coverage_target():
    """s = [40, 30, 20, 10], coverage 0.5.
    c = .4, .7 -> k_min = 1.  tail = [30, 20, 10]: t = 20; diffs 10,10 -> d = 10.
    i=1 accepted; i=2: 20 >= 20 -> accepted; i=3: 10 < 20 but |10-20| = 10 >= 10 -> accepted.
    K = 4.   And coverage 0.3: c_0 = .4 -> k_min = 0, tail = whole list, t = 25, d = 10:
    i=1: 30 >= 25 ok; i=2: 20 < 25 but 10 >= 10 ok; i=3: 10 < 25 but 10 >= 10 ok -> K = 4.
    """
    assert estimate_kept(u([40, 30, 20, 10]), 0.5) == 4
    assert estimate_kept(u([40, 30, 20, 10]), 0.3) == 4


def test_first_element_alone_covers():
    """s = [97, 1, 1, 1, 0, 0], sum 100.  c_0 = .97 -> k_min = 0.
    tail = [97, 1, 1, 1, 0, 0]: t = 100/6 = 16.7; diffs 96,0,0,1,0 -> d = 97/5 = 19.4.
    i=0 accepted; i=1: 1 < 16.7 but |1-97| = 96 >= 19.4 -> accepted;
    i=2: 1 < 16.7 and 0 < 19.4 -> stop.  K = 1 + 1 = 2.
    """
    assert estimate_kept(u([97, 1, 1, 1, 0, 0]), COV) == 2


def test_all_zero_usage_keeps_all():
    """Sum 0 -> keep all N = 5."""
    assert estimate_kept(u([0, 0, 0, 0, 0]), COV) == 5


def test_all_equal_usage_keeps_all():
    """s = [4]*8: c = 1/8 .. 8/8; first c >= .9544 is c_7 = 1 -> k_min = 7, tail = [4] -> K = 8.
    (Coverage 0.5: c_3 = .5 -> k_min = 3, tail = [4]*5, t = 4, d = 0; every s_i >= t -> K = 8.)
    """
    assert estimate_kept(u([4] * 8), COV) == 8
    assert estimate_kept(u([4] * 8), 0.5) == 8


def test_single_novel_prototype():
    """N = 1: c_0 = 1 -> k_min = 0 -> K = 1; with zero usage, keep all = 1."""
    assert estimate_kept(u([7]), COV) == 1
    assert estimate_kept(u([0]), COV) == 1


def test_coverage_never_reached_keeps_all():
    """A target above 1 is never reached -> keep all."""
    assert estimate_kept(u([9, 1, 0]), 1.5) == 3


# ----------------------------------------------------------------- merge_into_anchors

def _np_normalize(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _reference_merge(novel, usage, keep):
    """Spec 5.4 in plain numpy: top-`keep` by usage are anchors (in usage order),
    others join the anchor of highest cosine; a joined anchor = normalise(mean of
    itself + members), an anchor nobody joined keeps its vector."""
    order = sorted(range(len(usage)), key=lambda j: (-usage[j], j))
    anchors, others = order[:keep], order[keep:]
    groups = {a: [a] for a in anchors}
    for o in others:
        cos = [np.dot(_np_normalize(novel[o]), _np_normalize(novel[a])) for a in anchors]
        groups[anchors[int(np.argmax(cos))]].append(o)
    rows = [_np_normalize(np.mean([novel[j] for j in groups[a]], axis=0)) if len(groups[a]) > 1
            else np.asarray(novel[a], dtype=np.float64) for a in anchors]
    return np.stack(rows), groups


def test_merge_hand_worked_cosine_not_distance_or_dot():
    """Anchors: the 3 most used (idx 1 usage 10, idx 3 usage 7, idx 0 usage 3), in that order.
    Vectors (non-unit on purpose):
      v1 = [10, 0, 0]   anchor A
      v3 = [0, 1, 0]    anchor B
      v0 = [0, 0, 2]    anchor C, nobody joins it -> stays [0, 0, 2] (norm 2 kept)
      v4 = [0.3, 1, 0]  cos B = .96 > cos A = .29 -> B  (largest dot product would be A)
      v2 = [1, 0.9, 0.1] cos A = .74 > cos B = .67 > cos C -> A (Euclidean nearest would be B)
    A = normalise(mean(v1, v2)) = normalise([5.5, 0.45, 0.05])
    B = normalise(mean(v3, v4)) = normalise([0.15, 1, 0])
    """
    novel = torch.tensor([[0, 0, 2], [10, 0, 0], [1, 0.9, 0.1], [0, 1, 0], [0.3, 1, 0]], dtype=torch.float64)
    usage = u([3, 10, 0, 7, 1])
    merge = merge_into_anchors(novel, usage, keep=3)
    assert merge.anchors.shape == (3, 3)
    assert merge.order.tolist() == [1, 3, 0, 4, 2]
    np.testing.assert_allclose(merge.anchors[0].numpy(), _np_normalize([5.5, 0.45, 0.05]), atol=1e-7)
    np.testing.assert_allclose(merge.anchors[1].numpy(), _np_normalize([0.15, 1.0, 0.0]), atol=1e-7)
    assert torch.equal(merge.anchors[2], novel[0]), "an anchor without members keeps its vector and norm"
    ref, groups = _reference_merge(novel.numpy(), [3, 10, 0, 7, 1], 3)
    assert groups == {1: [1, 2], 3: [3, 4], 0: [0]}
    np.testing.assert_allclose(merge.anchors.numpy(), ref, atol=1e-7)


def test_merge_random_against_reference():
    """Random prototypes: result equals the plain-numpy reference."""
    rng = np.random.default_rng(0)
    novel = rng.normal(size=(12, 6)) * rng.uniform(0.1, 3, size=(12, 1))
    usage = rng.permutation(12) * 3 + 1  # distinct usages, no ties
    merge = merge_into_anchors(torch.tensor(novel), torch.tensor(usage), keep=4)
    ref, _ = _reference_merge(novel, list(usage), 4)
    np.testing.assert_allclose(merge.anchors.numpy(), ref, atol=1e-6)


def test_merge_keep_all_is_a_reordering_of_untouched_rows():
    """keep = N: no member joins; every anchor is its own row unchanged, ordered by usage."""
    novel = torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]])
    merge = merge_into_anchors(novel, u([1, 5, 3]), keep=3)
    assert torch.equal(merge.anchors, novel[[1, 2, 0]])


def test_merge_keep_one_averages_everything():
    """keep = 1: all join the single anchor -> normalise(mean of all)."""
    novel = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    merge = merge_into_anchors(novel, u([2, 9, 1]), keep=1)
    np.testing.assert_allclose(merge.anchors.numpy(), [_np_normalize([2.0, 2.0])], atol=1e-6)


def test_members_anchor_norm_keeps_the_members_mean_norm():
    """anchor_norm="members" (an option beyond the paper): a joined anchor has the
    direction of the unit anchor, length = mean norm of the anchor and its members.
    v0=[3,0] (usage 9, anchor A), v1=[0,2] (usage 5, anchor B), v2=[1,0.1] joins A
    (cos 0.995 vs 0.0995): A direction = normalise([4, 0.1] / 2), length (3 + |v2|) / 2
    = (3 + 1.00499) / 2 = 2.002494; B nobody joined: [0, 2] unchanged."""
    novel = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 0.1]])
    usage = torch.tensor([9, 5, 1])
    unit = merge_into_anchors(novel, usage, keep=2).anchors
    scaled = merge_into_anchors(novel, usage, keep=2, anchor_norm="members").anchors
    assert torch.allclose(scaled[0] / scaled[0].norm(), unit[0], atol=1e-6)
    assert torch.allclose(scaled[0].norm(), torch.tensor((3 + 1.0049876) / 2), atol=1e-5)
    assert torch.equal(scaled[1], novel[1]) and torch.equal(unit[1], novel[1])


# ----------------------------------------------------------------- prune_prototypes (write-back)

def _weights(p, d, seed=0):
    return torch.tensor(np.random.default_rng(seed).normal(size=(p, d)) * 0.01, dtype=torch.float32)


def test_prune_write_back():
    """num_known = 2, P = valid = 10, novel usage = [70, 20, 6, 3, 1, 0, 0, 0] -> K_novel = 5
    (worked out in test_tail_extension_accepts_two_then_stops).
    Known rows unchanged bit for bit; rows 2..6 are the anchors (reference merge);
    rows 7..9 are zero; valid = 2 + 5 = 7."""
    weight = _weights(10, 4)
    original = weight.clone()
    valid = torch.tensor(10)
    novel_usage = [70, 20, 6, 3, 1, 0, 0, 0]
    usage = u([500, 400] + novel_usage)  # known usage must play no part
    result = prune_prototypes(weight, valid, 2, usage, COV)
    assert result.k_kept == 5 and result.pruned
    assert (result.valid_before, result.valid_after) == (10, 7)
    assert int(valid) == 7
    assert result.order.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # usage already descending
    assert torch.equal(weight[:2], original[:2])
    ref, _ = _reference_merge(original[2:].double().numpy(), novel_usage, 5)
    np.testing.assert_allclose(weight[2:7].numpy(), ref, atol=1e-6)
    assert torch.count_nonzero(weight[7:]) == 0


def test_prune_known_usage_is_ignored():
    """Changing the known prototypes' usage does not change K or the weights."""
    novel_usage = [60, 36, 1, 1, 1, 1, 0, 0, 0, 0]  # K = 3
    w1, w2 = _weights(13, 5, seed=1), _weights(13, 5, seed=1)
    r1 = prune_prototypes(w1, torch.tensor(13), 3, u([0, 0, 0] + novel_usage), COV)
    r2 = prune_prototypes(w2, torch.tensor(13), 3, u([10 ** 6, 5, 7] + novel_usage), COV)
    assert r1.k_kept == r2.k_kept == 3
    assert torch.equal(w1, w2)


def test_nothing_pruned_leaves_matrix_and_adam_state_bit_identical():
    """Second pruning of an already pruned matrix: P = 10, valid = 6 (rows 6..9 zero), known 2.
    Novel usage [1, 5, 5, 5] -> keep all 4 -> valid stays 6: the matrix keeps its values
    AND its row order (no reordering by usage), the Adam state is untouched."""
    param = torch.nn.Parameter(_weights(10, 3, seed=2))
    opt = torch.optim.Adam([param], lr=1e-2)
    param.grad = torch.randn(10, 3)
    opt.step()
    with torch.no_grad():
        param[6:] = 0
    original = param.detach().clone()
    state_before = {k: v.clone() for k, v in opt.state[param].items()}
    valid = torch.tensor(6)
    result = prune_prototypes(param.data, valid, 2, u([9, 9, 1, 5, 5, 5]), COV)
    move_optimizer_rows(opt, param, 2, result)
    assert result.k_kept == 4 and not result.pruned and result.order is None
    assert int(valid) == 6 and result.valid_after == 6
    assert torch.equal(param.detach(), original)
    for key, value in opt.state[param].items():
        assert torch.equal(value, state_before[key]), key


def test_prune_single_novel_prototype_is_left_alone():
    """One novel prototype: K_novel = 1, nothing to prune, row unchanged."""
    weight = _weights(3, 4, seed=3)
    original = weight.clone()
    valid = torch.tensor(3)
    result = prune_prototypes(weight, valid, 2, u([4, 4, 0]), COV)
    assert result.k_kept == 1 and int(valid) == 3 and not result.pruned
    assert torch.equal(weight, original)


def test_prune_all_zero_novel_usage_keeps_count():
    """Novel usage all zero -> keep all -> valid unchanged."""
    weight = _weights(6, 3, seed=4)
    valid = torch.tensor(6)
    result = prune_prototypes(weight, valid, 2, u([10, 3, 0, 0, 0, 0]), COV)
    assert result.k_kept == 4 and int(valid) == 6 and not result.pruned


# ----------------------------------------------------------------- optimiser state

def _adam_with_state(p=6, d=3):
    param = torch.nn.Parameter(torch.randn(p, d, generator=torch.Generator().manual_seed(0)))
    opt = torch.optim.Adam([param], lr=1e-2, weight_decay=1e-3)
    for _ in range(2):
        opt.zero_grad()
        (param ** 3).sum().backward()
        opt.step()
    return param, opt


def test_move_carries_each_rows_moments_to_its_new_index():
    """known 2, novel usage [0, 1, 70, 20, 6, 3, 0, 0] over rows 2..9 -> K_novel = 5 (as in
    test_tail_extension_accepts_two_then_stops, scrambled). Usage order of the novel rows:
    4 (70), 5 (20), 6 (6), 7 (3), 3 (1), then 2, 8, 9 (ties by index). Row 2+i must carry
    the moments of row 2+order[i]; known rows and the step counter stay."""
    param, opt = _adam_with_state(p=10, d=4)
    before = {k: v.clone() for k, v in opt.state[param].items()}
    result = prune_prototypes(param.data, torch.tensor(10), 2, u([5, 5, 0, 1, 70, 20, 6, 3, 0, 0]), COV)
    assert result.order.tolist() == [2, 3, 4, 5, 1, 0, 6, 7]
    move_optimizer_rows(opt, param, 2, result)
    source_rows = [4, 5, 6, 7, 3, 2, 8, 9]
    for key in ("exp_avg", "exp_avg_sq"):
        moved = opt.state[param][key]
        assert torch.equal(moved[:2], before[key][:2]), key
        for new_row, old_row in enumerate(source_rows, start=2):
            assert torch.equal(moved[new_row], before[key][old_row]), (key, new_row)
    assert torch.equal(torch.as_tensor(opt.state[param]["step"]), torch.as_tensor(before["step"]))


def test_keep_rule_leaves_moments_where_they_are():
    """The release's rule (the default): a prune changes the rows, not the Adam state."""
    param, opt = _adam_with_state(p=10, d=4)
    before = {k: v.clone() for k, v in opt.state[param].items()}
    result = prune_prototypes(param.data, torch.tensor(10), 2, u([5, 5, 70, 20, 6, 3, 1, 0, 0, 0]), COV)
    assert result.pruned
    for key, value in opt.state[param].items():
        assert torch.equal(value, before[key]), key


def test_move_without_state_is_a_no_op():
    """A parameter the optimiser has not stepped yet has no state: nothing to move, no error."""
    param = torch.nn.Parameter(torch.randn(6, 2))
    opt = torch.optim.Adam([param])
    result = prune_prototypes(param.data, torch.tensor(6), 1, u([3, 50, 1, 0, 0, 0]), COV)
    move_optimizer_rows(opt, param, 1, result)
    assert len(opt.state[param]) == 0


# ----------------------------------------------------------------- late, bounded DPP

def test_bounded_keep():
    """18 novel prototypes, the rule keeps 2: max_drop 1.0 -> 2 (the paper); 0.5 -> at most
    floor(9) removed -> 9 kept; 0.25 -> floor(4.5) = 4 removed -> 14; a rule keeping more
    than the bound needs stays as it is (0.5 with keep 12 -> 12)."""
    from discovery.pruning import bounded_keep

    assert bounded_keep(2, 18, 1.0) == 2
    assert bounded_keep(2, 18, 0.5) == 9
    assert bounded_keep(2, 18, 0.25) == 14
    assert bounded_keep(12, 18, 0.5) == 12


def test_prune_with_max_drop_keeps_the_bound():
    """Usage keeps 5 of 8 novel (test_prune_write_back); max_drop 0.25 removes floor(2) -> 6 kept."""
    weight = _weights(10, 4)
    valid = torch.tensor(10)
    result = prune_prototypes(weight, valid, 2, u([5, 5, 70, 20, 6, 3, 1, 0, 0, 0]), COV, max_drop=0.25)
    assert result.k_kept == 6 and int(valid) == 8 and torch.count_nonzero(weight[8:]) == 0


def test_seed_novel_prototypes_writes_scaled_centres_and_may_grow():
    """known rows norms 3 and 5 -> scale 4; centres [[2, 0], [1, 1]] -> rows [4, 0], [2.83, 2.83];
    valid grows from 3 to 4 (a collapsed DPP can be undone), rows beyond zero."""
    from discovery.seeding import seed_novel_prototypes

    weight = torch.tensor([[3.0, 0.0], [0.0, 5.0], [9.0, 9.0], [0.0, 0.0], [7.0, 7.0]])
    valid = torch.tensor(3)
    seed_novel_prototypes(weight, valid, 2, torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    assert int(valid) == 4
    np.testing.assert_allclose(weight[:2].numpy(), [[3, 0], [0, 5]])
    np.testing.assert_allclose(weight[2:4].numpy(), [[4, 0], [4 / np.sqrt(2), 4 / np.sqrt(2)]], atol=1e-6)
    assert torch.count_nonzero(weight[4:]) == 0


def test_centroid_logit_norm_matches_the_learned_prototypes_mean_logit():
    """Class 0 rows (1, 0), (0.6, 0.8): unit centroid (0.8, 0.4)/|.| = (0.894, 0.447), mean z.c = 0.894;
    class 1 row (0, 1): centroid (0, 1), z.c = 1. Prototypes w0 = (2, 0), w1 = (0, 1): z.w = 2, 1.2, 1.
    Mean learned logit 4.2 / 3 = 1.4 over mean centroid logit (0.894 * 2 + 1) / 3 = 0.929."""
    from discovery.seeding import centroid_logit_norm

    features = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 1, -1])  # the unlabelled row is ignored
    known = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    centroid_dot = 2 * 0.8 / np.sqrt(0.8)  # (1, 0).c + (0.6, 0.8).c with c = (0.8, 0.4) / sqrt(0.8)
    expected = (4.2 / 3) / ((centroid_dot + 1) / 3)
    np.testing.assert_allclose(centroid_logit_norm(known, features, labels), expected, rtol=1e-5)
    assert centroid_logit_norm(-known, features, labels) is None  # no positive logit: no signal


def test_seed_novel_prototypes_takes_a_given_norm():
    from discovery.seeding import seed_novel_prototypes

    weight = torch.tensor([[3.0, 0.0], [0.0, 5.0], [9.0, 9.0]])
    seed_novel_prototypes(weight, torch.tensor(3), 2, torch.tensor([[0.0, 2.0]]), norm=0.5)
    np.testing.assert_allclose(weight[2].numpy(), [0.0, 0.5])
