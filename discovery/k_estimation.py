"""Post-hoc estimate of the number of novel classes from learned features.

Semi-supervised k-means (labelled rows fixed to their class) runs for every
total K in [K_known, k_max]. Each K is scored on a *probe*: a share of the
known classes treated as unlabelled during clustering, so the clustering must
rediscover them like novel classes:
    score(K) = w F1_probe(K) + (1 - w) silhouette(K),   w = probe_weight = 0.9
averaged over ``probe_draws`` probe sets cut as folds of the known classes.
Walking up from the best mean score, the last K still tied with it (within one
standard error of the paired gap) wins (``choose_k``), since counting too few
novel classes costs more than too many. Rows are L2-normalised; the cosine
silhouette is exact in O(N K D). Why this score and rule, the alternatives
measured, the sweep range and the cost caps: docs/choosing_k.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

UNLABELLED = -1


@dataclass
class KEstimate:
    """Result of ``estimate_novel_k``; ``k_total``/``k_novel`` are None when degenerate."""
    num_known: int
    k_total: int | None = None
    k_novel: int | None = None
    ks: list[int] = field(default_factory=list)              # total K evaluated
    scores: list[float] = field(default_factory=list)        # w probe_f1 + (1 - w) silhouette per K
    probe_f1: list[float] = field(default_factory=list)      # mean over the probe draws
    silhouette: list[float] = field(default_factory=list)    # mean over the probe draws
    draw_scores: list[list[float]] = field(default_factory=list)  # per K, the score of each probe draw
    tie_floor: list[float] = field(default_factory=list)     # per K, the lowest mean score tied with the best
    k_best_score: int | None = None                           # novel K of the best mean score (k_novel: choose_k)
    probe_classes: list[list[int]] = field(default_factory=list)  # one list per draw
    rows_used: int = 0
    degenerate: bool = False
    message: str = ""
    centres: torch.Tensor | None = field(default=None, repr=False)  # [k_novel, D] novel centres, all known anchored

    def to_dict(self) -> dict:
        """Plain numbers (for JSON): everything but the centres."""
        return {k: v for k, v in asdict(self).items() if k != "centres"}

    def near_best(self, tolerance: float = 0.01) -> tuple[int, int] | None:
        """Smallest and largest novel K scoring within ``tolerance`` of the best score:
        how flat the curve is around the choice (None before any K was scored)."""
        if not self.scores:
            return None
        top = max(self.scores)
        near = [k - self.num_known for k, score in zip(self.ks, self.scores) if score >= top - tolerance]
        return min(near), max(near)


def _sq_dist(x: torch.Tensor, centres: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances [N, R, M] of rows x [N, D] to R sets of centres [R, M, D]
    (``x_sq`` [N, 1]: the rows' squared norms, when already known)."""
    r, m, d = centres.shape
    flat = centres.reshape(r * m, d)
    x_sq = (x * x).sum(1, keepdim=True) if x_sq is None else x_sq
    dist = torch.addmm((flat * flat).sum(1)[None, :] + x_sq, x, flat.t(), alpha=-2)
    return dist.clamp_min(0).view(x.shape[0], r, m)


def _assign(x: torch.Tensor, centres: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each set and its squared distance, both [R, N], in row batches."""
    nearest, dist = [], []
    for start in range(0, x.shape[0], batch_size):
        value, index = _sq_dist(x[start:start + batch_size], centres).min(dim=2)
        nearest.append(index.t())
        dist.append(value.t())
    return torch.cat(nearest, dim=1), torch.cat(dist, dim=1)


def _nearest(x: torch.Tensor, centres: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Nearest centre of each set [R, N], as ``_assign`` but without the distances:
    argmin |x - c|^2 = argmin (|c|^2 / 2 - x.c), one fused product per row batch."""
    r, m, d = centres.shape
    flat = centres.reshape(r * m, d)
    half_norms = 0.5 * (flat * flat).sum(1)[None, :]
    return torch.cat([torch.addmm(half_norms, x[start:start + batch_size], flat.t(), alpha=-1)
                      .view(-1, r, m).argmin(dim=2).t() for start in range(0, x.shape[0], batch_size)], dim=1)


def _kmeans_pp(x: torch.Tensor, fixed: torch.Tensor, k_new: int, restarts: int, generator: torch.Generator,
               batch_size: int) -> torch.Tensor:
    """Greedy k-means++ seeding (as in scikit-learn) of ``k_new`` centres from
    the rows ``x``, for ``restarts`` independent draws at once, with the
    ``fixed`` centres [M, D] (M may be 0) counting as already chosen: each
    step draws 2 + log(k) candidates per restart with probability
    proportional to the squared distance to the nearest chosen centre and
    keeps the one that lowers that restart's total most. Returns [R, k_new, D]."""
    n, dim = x.shape
    if fixed.shape[0]:
        d2 = _assign(x, fixed[None], batch_size)[1].expand(restarts, n).clone()
    else:
        d2 = torch.full((restarts, n), float("inf"), device=x.device)
    trials = 2 + int(np.log(max(k_new + fixed.shape[0], 1)))
    x_sq = (x * x).sum(1, keepdim=True)
    chosen = []
    for _ in range(k_new):
        weights = d2.cpu()
        uniform = torch.isinf(weights).any(dim=1, keepdim=True) | (weights.sum(1, keepdim=True) <= 0)
        weights = torch.where(uniform, torch.ones_like(weights), weights)  # first centre, or all rows on a centre
        index = torch.multinomial(weights / weights.sum(1, keepdim=True), trials, replacement=True,
                                  generator=generator).to(x.device)                 # [R, trials]
        candidates = x[index]                                                       # [R, trials, D]
        new_d2 = torch.cat([torch.minimum(d2[:, start:start + batch_size, None],
                                          _sq_dist(x[start:start + batch_size], candidates,
                                                   x_sq[start:start + batch_size]).transpose(0, 1))
                            for start in range(0, n, batch_size)], dim=1)           # [R, N, trials]
        best = new_d2.sum(1).argmin(dim=1)                                          # [R]
        rows = torch.arange(restarts, device=x.device)
        chosen.append(candidates[rows, best])
        d2 = new_d2[rows, :, best]
    return torch.stack(chosen, dim=1) if chosen else x.new_zeros(restarts, 0, dim)


def semi_supervised_kmeans(x: torch.Tensor, labels: torch.Tensor, num_anchored: int, k: int, n_init: int = 10,
                           max_iter: int = 30, seed: int = 0, batch_size: int = 16384,
                           tol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, float]:
    """k-means with rows of class c < ``num_anchored`` fixed to cluster c.

    x [N, D] (unit rows), labels [N] (``UNLABELLED`` or 0..num_anchored-1).
    Cluster c < num_anchored starts at the mean of its labelled rows; the
    other k - num_anchored centres are seeded by k-means++ on the free rows.
    Free rows go to the nearest of all k centres; every centre is the mean of
    its members (labelled and free, as in GCD's SS-k-means); an empty
    cluster keeps its centre. The ``n_init`` seeded restarts run together
    (one matrix product per step for all of them); Lloyd stops after
    ``max_iter`` steps or when in every restart at most a ``tol`` share of
    free rows changed cluster. The restart of lowest inertia wins.
    Returns (assignment [N], centres [k, D], inertia = mean squared distance).
    """
    if not 0 <= num_anchored <= k:
        raise ValueError(f"need 0 <= num_anchored ({num_anchored}) <= k ({k})")
    anchored = labels >= 0
    free = ~anchored
    x_free = x[free]
    anchor_sums = torch.zeros(num_anchored, x.shape[1], device=x.device).index_add_(0, labels[anchored], x[anchored])
    anchor_counts = torch.bincount(labels[anchored], minlength=num_anchored).to(x.dtype)
    if (anchor_counts == 0).any():
        raise ValueError("every anchored class needs at least one labelled row")
    anchor_centres = anchor_sums / anchor_counts[:, None]
    generator = torch.Generator().manual_seed(seed)
    seeded = _kmeans_pp(x_free, anchor_centres, k - num_anchored, n_init, generator, batch_size)
    centres = torch.cat([anchor_centres.expand(n_init, -1, -1), seeded], dim=1)   # [R, k, D]
    previous = None
    for _ in range(max_iter):
        nearest = _nearest(x_free, centres, batch_size)                           # [R, n_free]
        if previous is not None and ((nearest != previous).float().mean(1) <= tol).all():
            break
        previous = nearest
        for r in range(n_init):
            sums = torch.zeros_like(centres[r]).index_add_(0, nearest[r], x_free)
            sums[:num_anchored] += anchor_sums
            counts = torch.bincount(nearest[r], minlength=k).to(x.dtype)
            counts[:num_anchored] += anchor_counts
            filled = counts > 0
            centres[r, filled] = sums[filled] / counts[filled, None]
    nearest, d2 = _assign(x_free, centres, batch_size)
    final_anchors = centres[:, :num_anchored]  # sum of |x - c|^2 over labelled rows, from the class sums
    anchored_d2 = (float((x[anchored] ** 2).sum()) - 2 * (anchor_sums[None] * final_anchors).sum((1, 2))
                   + (anchor_counts[None] * (final_anchors ** 2).sum(2)).sum(1))
    inertia = (d2.sum(1) + anchored_d2) / x.shape[0]
    best = int(inertia.argmin())
    assignment = labels.clone()
    assignment[free] = nearest[best]
    return assignment, centres[best], float(inertia[best])


def principal_directions(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Unit rows x [N, D] -> their projection on the ``dims`` leading principal axes of the
    centred rows, normalised again [N, dims]: the class structure of trained features lies in
    few directions, and every distance afterwards costs dims / D as much."""
    _, _, v = torch.linalg.svd(x - x.mean(0, keepdim=True), full_matrices=False)
    return F.normalize(x @ v[:dims].t(), dim=1)


def cosine_silhouette(x: torch.Tensor, assignment: torch.Tensor, rows: torch.Tensor | None = None) -> float:
    """Mean silhouette (cosine distance 1 - x.y, unit rows) of ``rows`` (bool
    mask, default all), clusters taken over every row; exact in O(N K D):
    the mean distance from x to cluster C is 1 - x.sum(C)/|C|. A row alone in
    its cluster scores 0 (sklearn's convention). NaN with fewer than 2 clusters."""
    k = int(assignment.max()) + 1
    sums = torch.zeros(k, x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, assignment, x)
    counts = torch.bincount(assignment, minlength=k).to(x.dtype)
    if int((counts > 0).sum()) < 2:
        return float("nan")
    if rows is not None:
        x, assignment = x[rows], assignment[rows]
    if x.shape[0] == 0:
        return float("nan")
    own = assignment
    dots = x @ sums.t()                                       # [n, k]
    own_count = counts[own]
    a = 1 - (dots.gather(1, own[:, None]).squeeze(1) - 1) / (own_count - 1).clamp_min(1)
    mean_other = 1 - dots / counts.clamp_min(1)[None, :]
    mean_other[:, counts == 0] = float("inf")
    mean_other.scatter_(1, own[:, None], float("inf"))
    b = mean_other.min(dim=1).values
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    s[own_count <= 1] = 0
    return float(s.mean())


def _check_input(x: torch.Tensor, labels: np.ndarray, num_known: int, k_max: int) -> str:
    """Why the input cannot give an estimate ('' when it can)."""
    unlabelled = int((labels == UNLABELLED).sum())
    present = np.unique(labels[labels >= 0])
    if x.ndim != 2 or x.shape[0] != labels.shape[0]:
        return f"features {tuple(x.shape)} and labels {labels.shape} do not match: need [N, D] and [N]"
    if not torch.isfinite(x).all():
        return "features contain NaN or inf: the model or its checkpoint is broken"
    if ((labels < UNLABELLED) | (labels >= num_known)).any():
        return f"labels must be -1 (unlabelled) or 0..{num_known - 1} (known classes)"
    if present.size < num_known:
        return (f"only {present.size} of the {num_known} known classes have labelled rows; every known class "
                f"needs some")
    if unlabelled == 0:
        return "there are no unlabelled rows, so there is nothing to cluster"
    if k_max <= num_known:
        return f"k_max={k_max} leaves no room for novel classes: it must exceed num_known={num_known}"
    if float((x - x[:1]).abs().max()) < 1e-6:
        return "all feature rows are identical: the features carry no class information"
    return ""


def _structure_message(x: torch.Tensor, labels: torch.Tensor) -> str:
    """'' when the labelled known classes form clusters: their silhouette by
    true labels beats the same labels shuffled by 0.01 (in high dimension
    weak but real structure can score below 0); otherwise why not."""
    labelled = labels >= 0
    xl, yl = x[labelled], labels[labelled]
    real = cosine_silhouette(xl, yl)
    shuffled = cosine_silhouette(xl, yl[torch.randperm(yl.shape[0], generator=torch.Generator().manual_seed(0))
                                       .to(yl.device)])
    if not real > shuffled + 0.01:
        return (f"the labelled known classes form no clusters in feature space (silhouette {real:.3f}, "
                f"{shuffled:.3f} with shuffled labels): all features lie in one cluster, so the number of "
                f"novel classes cannot be read from them; train the model longer or check the checkpoint")
    return ""


def probe_f1(labels: np.ndarray, assignment: np.ndarray, probe: np.ndarray) -> float:
    """Mean F1 of the probe classes against the clusters, matched one to one
    (Hungarian, largest total F1). F1(c, j) = 2 |c & j| / (|c| + |j|) where
    |j| counts every row of cluster j, so novel (or other) rows that a too
    small K pours into a probe class's cluster cost precision, and a probe
    class that a too large K splits costs recall."""
    k = int(assignment.max()) + 1
    sizes = np.bincount(assignment, minlength=k)
    overlap = np.stack([np.bincount(assignment[labels == c], minlength=k) for c in probe]).astype(np.float64)
    f1 = 2 * overlap / (overlap.sum(1, keepdims=True) + sizes[None, :])
    rows, cols = linear_sum_assignment(-f1)
    return float(f1[rows, cols].sum() / len(probe))


def probe_sets(rng: np.random.Generator, num_known: int, num_probe: int, count: int) -> list[np.ndarray]:
    """``count`` sorted probe sets of ``num_probe`` known classes, cut as
    disjoint folds from successive random permutations (leftover classes
    wait for the next permutation): every class is probed about equally
    often, so the average over draws does not hang on which classes a few
    random draws happened to pick."""
    sets: list[np.ndarray] = []
    while len(sets) < count:
        order = rng.permutation(num_known)
        sets += [np.sort(order[start:start + num_probe])
                 for start in range(0, num_known - num_probe + 1, num_probe)]
    return sets[:count]


def tie_floor(draw_scores: np.ndarray, within_se: float = 1.0) -> np.ndarray:
    """Per K, the lowest mean score that still counts as tied with the best:
    best mean - ``within_se`` x the standard error of the gap to the best.
    draw_scores [K values, draws]: the same probe draws score every K, so the
    gap is taken draw by draw (paired) and its standard error is
    std(gap) / sqrt(draws). One draw: no standard error, the floor is the best."""
    draw_scores = np.asarray(draw_scores, dtype=np.float64)
    means = draw_scores.mean(axis=1)
    best = int(np.argmax(means))
    draws = draw_scores.shape[1]
    if draws < 2:
        return np.full(len(means), means[best])
    gaps = draw_scores[best][None, :] - draw_scores
    return means[best] - within_se * gaps.std(axis=1, ddof=1) / np.sqrt(draws)


def choose_k(ks: list[int], draw_scores: np.ndarray, within_se: float = 1.0) -> int:
    """From the best mean score, walk up ``ks`` (ascending) while each next K
    is tied with the best (``tie_floor``) and return the last one: a
    one-standard-error rule turned towards the larger K, because counting too
    few novel classes costs more than too many (too few forces several
    methods into one cluster; too many leaves some prototypes half-used). The
    walk stops at the first K clearly below the best: a second hump further
    up that ties by chance is not the same plateau. ``within_se=0`` or one
    draw: the argmax (of an exact tie next to it, the larger K)."""
    means = np.asarray(draw_scores, dtype=np.float64).mean(axis=1)
    tied = means >= tie_floor(draw_scores, within_se)
    chosen = int(np.argmax(means))
    while chosen + 1 < len(ks) and tied[chosen + 1]:
        chosen += 1
    return ks[chosen]


def estimate_novel_k(features, labels, num_known: int, k_max: int | None = None, probe_fraction: float = 0.3,
                     probe_draws: int = 12, probe_weight: float = 0.9, n_init: int = 10, max_iter: int = 30,
                     seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 16384,
                     max_rows: int | None = 30000, max_points: int = 13, k_limit: int | None = None,
                     within_se: float = 1.0, dims: int | None = 64, progress: bool = False) -> KEstimate:
    """Sweep total K over [num_known, k_max] and choose one (``choose_k``).

    Without ``k_max`` the range starts at [num_known, 3 x num_known] and
    grows by num_known while the chosen K is the largest tried, up to
    ``k_limit`` (default 10 x num_known, the unknown-K prototype count): a
    fixed 3 x K_known cannot reach OWDFA-40's P2 (13 known, 41 in all).
    A given ``k_max`` is swept as it is.

    features [N, D] (normalised here), labels [N]: the known class 0..num_known-1
    of a labelled row, -1 for an unlabelled one. ``probe_draws`` times, a
    ``probe_fraction`` of the known classes (at least one) is drawn as the
    probe and clustered as unlabelled; see the module docstring for the
    score and ``choose_k`` for the choice (``within_se``; 0 is the argmax of
    the mean score). ``max_rows`` subsamples the rows (seeded) before the sweep (None:
    all). With more than ``max_points`` K values in the range, K is swept in
    steps first and then at every K within a step of the coarse choice. The
    sweep clusters the rows' projection on their ``dims`` leading principal
    axes (None: all D); the returned centres are in the full feature space.
    ``n_init`` k-means++ restarts per clustering. Their cost: docs/choosing_k.md.
    ``progress``: a bar on stderr counting the K values scored. Degenerate
    input returns ``degenerate=True`` with a message, never raises.
    """
    grow = k_max is None
    k_limit = 10 * num_known if k_limit is None else int(k_limit)
    k_max = min(3 * num_known, k_limit) if grow else int(k_max)
    result = KEstimate(num_known=num_known)
    labels = np.asarray(labels, dtype=np.int64)
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    if max_rows is not None and x.shape[0] > max_rows and x.ndim == 2 and x.shape[0] == labels.shape[0]:
        keep = np.sort(rng.choice(x.shape[0], max_rows, replace=False))
        x, labels = x[torch.from_numpy(keep)], labels[keep]
    result.rows_used = int(x.shape[0])
    message = _check_input(x, labels, num_known, k_max)
    if message:
        result.degenerate, result.message = True, message
        return result
    x = x_full = F.normalize(x, dim=1).to(device)
    if dims is not None and x.shape[1] > dims:
        x = principal_directions(x_full, dims)
    message = _structure_message(x, torch.from_numpy(labels).to(device))
    if message:
        result.degenerate, result.message = True, message
        return result

    num_probe = min(num_known, max(1, round(probe_fraction * num_known)))
    draws = [_ProbeDraw(probe, labels, num_known, device)
             for probe in probe_sets(rng, num_known, num_probe, probe_draws)]
    result.probe_classes = [draw.probe.tolist() for draw in draws]
    num_unlabelled = int((labels == UNLABELLED).sum())
    k_top = min(k_max, num_known + num_unlabelled)  # at most one novel class per unlabelled row
    scored: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # total K -> (probe F1, silhouette) of each draw

    from utils.progress import progress_bar

    bar = progress_bar(desc="K sweep", unit="K", disable=not progress)

    def score(k_total: int) -> None:
        bar.set_postfix(K=k_total)
        f1, sil = [], []
        for draw in draws:  # visible known clusters + (probe + novel) free ones = k_total
            assignment, _, _ = semi_supervised_kmeans(x, draw.cluster_labels, draw.num_visible, k_total, n_init,
                                                      max_iter, seed, batch_size)
            f1.append(probe_f1(labels, assignment.cpu().numpy(), draw.probe))
            value = cosine_silhouette(x, assignment, draw.free_rows)
            sil.append(0.0 if np.isnan(value) else value)
        scored[k_total] = (np.array(f1), np.array(sil))
        bar.update(1)

    def per_draw(k_total: int) -> np.ndarray:
        return probe_weight * scored[k_total][0] + (1 - probe_weight) * scored[k_total][1]

    def total(k_total: int) -> float:
        return float(per_draw(k_total).mean())

    def chosen() -> int:
        ks = sorted(scored)
        return choose_k(ks, np.stack([per_draw(k) for k in ks]), within_se)

    step = max(1, -(-(k_top - num_known) // max_points))  # coarse sweep of at most max_points + 1 K ...
    for k_total in range(num_known, k_top + 1, step):
        score(k_total)
    k_room = min(k_limit, num_known + num_unlabelled) if grow else k_top
    while chosen() == max(scored) and max(scored) + step <= k_room:  # the choice is the largest tried: widen
        k_start, k_top = max(scored) + step, min(k_room, k_top + num_known)
        for k_total in range(k_start, k_top + 1, step):
            score(k_total)
    coarse = chosen()
    for k_total in range(max(num_known, coarse - step + 1), min(k_top, coarse + step - 1) + 1):
        if k_total not in scored:  # ... then every K around its choice
            score(k_total)
    bar.close()
    result.ks = sorted(scored)
    result.probe_f1 = [float(scored[k][0].mean()) for k in result.ks]
    result.silhouette = [float(scored[k][1].mean()) for k in result.ks]
    result.scores = [total(k) for k in result.ks]
    result.draw_scores = [per_draw(k).tolist() for k in result.ks]
    result.tie_floor = tie_floor(result.draw_scores, within_se).tolist()
    result.k_best_score = result.ks[int(np.argmax(result.scores))] - num_known
    result.k_total = chosen()
    result.k_novel = result.k_total - num_known
    if result.k_novel > 0:  # the chosen K's novel clusters, now with every known class anchored
        all_known = torch.from_numpy(labels).to(device)
        _, centres, _ = semi_supervised_kmeans(x_full, all_known, num_known, result.k_total, n_init, max_iter, seed,
                                               batch_size)
        result.centres = centres[num_known:].cpu()
    if k_top < k_max:
        result.message = (f"k_max lowered from {k_max} to {k_top}: only {num_unlabelled} unlabelled rows, "
                          f"at most one novel class each")
    return result


def hold_out_known(labels, num_known: int, held: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels with the known classes ``held`` turned unlabelled (-1) and the others renumbered
    0..num_known-len(held)-1, and that count: the estimator then meets ``held`` as novel classes
    whose number is known, so its miss on them measures its bias on these features
    (``estimate_k.py --hold_out``)."""
    labels = np.asarray(labels, dtype=np.int64)
    held = np.unique(np.asarray(held, dtype=np.int64))
    if held.size == 0 or held.size >= num_known or held.min() < 0 or held.max() >= num_known:
        raise ValueError(f"hold out 1 to {num_known - 1} of the {num_known} known classes, not {held.tolist()}")
    kept = np.setdiff1d(np.arange(num_known), held)
    remap = np.full(num_known + 1, UNLABELLED)  # index -1 -> unlabelled
    remap[kept] = np.arange(kept.size)
    return remap[labels], int(kept.size)


class _ProbeDraw:
    """One draw of probe classes: the labels the clustering sees (visible known
    classes renumbered 0..V-1, probe and unlabelled rows -1) and the rows the
    silhouette scores (the free ones)."""

    def __init__(self, probe: np.ndarray, labels: np.ndarray, num_known: int, device):
        self.probe = probe
        visible = np.setdiff1d(np.arange(num_known), probe)
        self.num_visible = visible.size
        remap = np.full(num_known + 1, UNLABELLED)  # index -1 -> unlabelled
        remap[visible] = np.arange(visible.size)
        self.cluster_labels = torch.from_numpy(remap[labels]).to(device)
        self.free_rows = torch.from_numpy((labels == UNLABELLED) | np.isin(labels, probe)).to(device)
