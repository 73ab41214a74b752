"""Post-hoc estimate of the number of novel classes from learned features.

Semi-supervised k-means (labelled rows fixed to their class) is run for every
total K in [K_known, k_max]; each K is scored on known classes that the
clustering did not see as labelled (the *probe*), and the best K wins.

Scoring choice (DTC/CiPR style). A random share of the known classes (the
probe, ``probe_fraction``) is treated as unlabelled during clustering, so the
clustering has to *discover* them exactly like novel classes:
    score(K) = w ACC_probe(K) + (1 - w) silhouette(K),   w = probe_weight = 0.5
ACC_probe is the Hungarian clustering accuracy on the probe's labelled rows;
it falls when probe classes split (K too large) or merge with each other (K
too small). Holding out a share of labelled *images* instead (GCD) scores
known classes whose centres stay anchored by the rest of their labels: its
accuracy is flat for every K below the truth, so it cannot see an
under-estimate, the failure this estimator exists to catch. ACC_probe is
blind to a probe class merged with a novel one (only probe rows are scored)
and to splits of novel classes; the silhouette of the unanchored rows sees
both. Measured on Gaussian blobs (5 known + 7 novel, 100 rows each, 32-D,
4 seeds, noise sigma per dimension): at sigma <= 0.2 the score finds 7 every
time; at sigma 0.3-0.35 it finds 7 on 2 of 4 seeds and falls to 2-3 on the
others, where the silhouette alone stays within 1 -- the probe term pulls
towards small K when classes overlap. On weak features (mini dataset, 3
epochs from scratch) both terms are nearly flat and the estimate is rough.
Both terms are kept in the result so a different weight can be read off.
With trained features the probe classes were seen with labels during
training, so they are easier to cluster than real novel classes.

Geometry: rows are L2-normalised; k-means is Euclidean on the unit sphere;
the silhouette uses the cosine distance 1 - x.y (half the squared Euclidean
distance there), whose mean over a cluster is linear in the cluster's sum,
so the exact silhouette costs O(N K D) instead of O(N^2 D).

Cost per K: n_init x iterations x O(N K D) for the batched distances (torch,
on the GPU when given). A full sweep is sum over K, about
n_init * max_iter * N * D * (k_max^2 - K_known^2) / 2 multiply-adds;
``max_rows`` subsamples the rows for the sweep.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from utils.metrics import cluster_accuracy

UNLABELLED = -1


@dataclass
class KEstimate:
    """Result of ``estimate_novel_k``; ``k_total``/``k_novel`` are None when degenerate."""
    num_known: int
    k_total: int | None = None
    k_novel: int | None = None
    ks: list[int] = field(default_factory=list)              # total K evaluated
    scores: list[float] = field(default_factory=list)        # w probe_acc + (1 - w) silhouette per K
    probe_acc: list[float] = field(default_factory=list)
    silhouette: list[float] = field(default_factory=list)
    probe_classes: list[int] = field(default_factory=list)
    rows_used: int = 0
    degenerate: bool = False
    message: str = ""
    centres: torch.Tensor | None = field(default=None, repr=False)  # [k_novel, D] novel centres, all known anchored

    def to_dict(self) -> dict:
        """Plain numbers (for JSON): everything but the centres."""
        return {k: v for k, v in asdict(self).items() if k != "centres"}


def _assign(x: torch.Tensor, centres: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre and squared Euclidean distance per row, in row batches."""
    nearest, dist = [], []
    for start in range(0, x.shape[0], batch_size):
        value, index = _sq_dist(x[start:start + batch_size], centres).min(dim=1)
        nearest.append(index)
        dist.append(value)
    return torch.cat(nearest), torch.cat(dist)


def _sq_dist(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [N, M] of rows to centres."""
    d = (centres * centres).sum(1)[None, :] - 2 * x @ centres.t() + (x * x).sum(1, keepdim=True)
    return d.clamp_min(0)


def _kmeans_pp(x: torch.Tensor, fixed: torch.Tensor, k_new: int, generator: torch.Generator,
               batch_size: int) -> torch.Tensor:
    """Greedy k-means++ seeding (as in scikit-learn) of ``k_new`` centres from
    the rows ``x``, with the ``fixed`` centres [M, D] (M may be 0) counting
    as already chosen: each step draws 2 + log(k) candidates with probability
    proportional to the squared distance to the nearest chosen centre and
    keeps the one that lowers the total most."""
    if fixed.shape[0]:
        _, d2 = _assign(x, fixed, batch_size)
    else:
        d2 = torch.full((x.shape[0],), float("inf"), device=x.device)
    trials = 2 + int(np.log(max(k_new + fixed.shape[0], 1)))
    chosen = []
    for _ in range(k_new):
        if torch.isinf(d2).all() or d2.sum() <= 0:  # first centre, or every row already on a centre
            index = torch.randint(x.shape[0], (1,), generator=generator)
        else:
            index = torch.multinomial((d2 / d2.sum()).cpu(), trials, replacement=True, generator=generator)
        candidates = x[index.to(x.device)]
        new_d2 = torch.cat([torch.minimum(d2[start:start + batch_size, None],
                                          _sq_dist(x[start:start + batch_size], candidates))
                            for start in range(0, x.shape[0], batch_size)])
        best = int(new_d2.sum(0).argmin())
        chosen.append(candidates[best:best + 1])
        d2 = new_d2[:, best]
    return torch.cat(chosen) if chosen else x.new_zeros(0, x.shape[1])


def semi_supervised_kmeans(x: torch.Tensor, labels: torch.Tensor, num_anchored: int, k: int, n_init: int = 10,
                           max_iter: int = 30, seed: int = 0, batch_size: int = 16384,
                           tol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, float]:
    """k-means with rows of class c < ``num_anchored`` fixed to cluster c.

    x [N, D] (unit rows), labels [N] (``UNLABELLED`` or 0..num_anchored-1).
    Cluster c < num_anchored starts at the mean of its labelled rows; the
    other k - num_anchored centres are seeded by k-means++ on the free rows.
    Free rows go to the nearest of all k centres; every centre is the mean of
    its members (labelled and free, as in GCD's SS-k-means); an empty
    cluster keeps its centre. Lloyd stops after ``max_iter`` steps or when at
    most a ``tol`` share of free rows changed cluster. Best of ``n_init``
    seeded restarts by inertia.
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
    best = None
    for _ in range(n_init):
        centres = torch.cat([anchor_centres, _kmeans_pp(x_free, anchor_centres, k - num_anchored, generator,
                                                        batch_size)])
        previous = None
        for _ in range(max_iter):
            nearest, d2 = _assign(x_free, centres, batch_size)
            if previous is not None and (nearest != previous).float().mean() <= tol:
                break
            previous = nearest
            sums = torch.zeros_like(centres).index_add_(0, nearest, x_free)
            sums[:num_anchored] += anchor_sums
            counts = torch.bincount(nearest, minlength=k).to(x.dtype)
            counts[:num_anchored] += anchor_counts
            filled = counts > 0
            centres[filled] = sums[filled] / counts[filled, None]
        nearest, d2 = _assign(x_free, centres, batch_size)
        assignment = labels.clone()
        assignment[free] = nearest
        anchored_d2 = ((x[anchored] - centres[labels[anchored]]) ** 2).sum(1)
        inertia = float((d2.sum() + anchored_d2.sum()) / x.shape[0])
        if best is None or inertia < best[2]:
            best = (assignment, centres, inertia)
    return best


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


def estimate_novel_k(features, labels, num_known: int, k_max: int | None = None, probe_fraction: float = 0.3,
                     probe_weight: float = 0.5, n_init: int = 10, max_iter: int = 30, seed: int = 0,
                     device: str | torch.device = "cpu", batch_size: int = 16384,
                     max_rows: int | None = None) -> KEstimate:
    """Sweep total K over [num_known, k_max] (default 3 x num_known) and pick the best.

    features [N, D] (normalised here), labels [N]: the known class 0..num_known-1
    of a labelled row, -1 for an unlabelled one. Known classes are drawn as
    the probe (at least one, ``probe_fraction`` of them) and clustered as
    unlabelled; see the module docstring for the score. ``max_rows``
    subsamples the rows (seeded) before the sweep. Degenerate input returns
    ``degenerate=True`` with a message, never raises.
    """
    k_max = 3 * num_known if k_max is None else int(k_max)
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
    x = F.normalize(x, dim=1).to(device)
    num_probe = min(num_known, max(1, round(probe_fraction * num_known)))
    probe = np.sort(rng.choice(num_known, num_probe, replace=False))
    result.probe_classes = probe.tolist()
    message = _structure_message(x, torch.from_numpy(labels).to(device))
    if message:
        result.degenerate, result.message = True, message
        return result

    visible = np.setdiff1d(np.arange(num_known), probe)
    remap = np.full(num_known + 1, UNLABELLED)            # index -1 -> unlabelled
    remap[visible] = np.arange(visible.size)
    cluster_labels = torch.from_numpy(remap[labels]).to(device)
    probe_rows = np.isin(labels, probe)
    free_rows = torch.from_numpy(labels == UNLABELLED).to(device) | torch.from_numpy(probe_rows).to(device)
    num_unlabelled = int((labels == UNLABELLED).sum())
    k_top = min(k_max, num_known + num_unlabelled)  # at most one novel class per unlabelled row
    for k_total in range(num_known, k_top + 1):
        k_clusters = k_total  # visible known + (probe + novel) free clusters = num_known + novel
        assignment, _, _ = semi_supervised_kmeans(x, cluster_labels, visible.size, k_clusters, n_init, max_iter,
                                                  seed, batch_size)
        acc = cluster_accuracy(labels[probe_rows], assignment.cpu().numpy()[probe_rows])
        sil = cosine_silhouette(x, assignment, free_rows)
        sil = 0.0 if np.isnan(sil) else sil
        result.ks.append(k_total)
        result.probe_acc.append(acc)
        result.silhouette.append(sil)
        result.scores.append(probe_weight * acc + (1 - probe_weight) * sil)
    best = int(np.argmax(result.scores))
    result.k_total = result.ks[best]
    result.k_novel = result.k_total - num_known
    if result.k_novel > 0:  # the chosen K's novel clusters, now with every known class anchored
        all_known = torch.from_numpy(labels).to(device)
        _, centres, _ = semi_supervised_kmeans(x, all_known, num_known, result.k_total, n_init, max_iter, seed,
                                               batch_size)
        result.centres = centres[num_known:].cpu()
    if k_top < k_max:
        result.message = (f"k_max lowered from {k_max} to {k_top}: only {num_unlabelled} unlabelled rows, "
                          f"at most one novel class each")
    return result
