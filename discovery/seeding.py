"""Novel prototypes set from clusters of the training features (the seeding rule of
docs/choosing_k.md): the novel centres of a semi-supervised k-means become the novel rows
of the prototype matrix, at a norm whose logits match the learned known prototypes'."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from discovery.k_estimation import semi_supervised_kmeans


@torch.no_grad()
def centroid_logit_norm(known_weight: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Norm that gives a class-centroid direction the same mean logit on its
    class's labelled rows as the learned known prototypes give theirs:
    mean z.w_y / mean z.c_y over labelled rows (labels >= 0), c_y the unit
    mean direction of class y. A learned prototype is less aligned with its
    class than the class centroid is (CE trains margins, not alignment), so
    a centroid at the prototypes' mean norm outbids them and steals known
    images; None when either mean is not positive (no usable signal)."""
    labelled = labels >= 0
    z, y = features[labelled].float(), labels[labelled]
    num_known = known_weight.shape[0]
    centroids = F.normalize(torch.zeros(num_known, z.shape[1], device=z.device).index_add_(0, y, z), dim=1)
    learned = (z * known_weight.float()[y]).sum(1).mean()
    centroid = (z * centroids[y]).sum(1).mean()
    return float(learned / centroid) if learned > 0 and centroid > 0 else None


@torch.no_grad()
def seed_novel_prototypes(weight: torch.Tensor, valid: torch.Tensor, num_known: int, centres: torch.Tensor,
                          norm: float | None = None) -> None:
    """Set the novel prototypes to ``centres`` [K_novel, D] (directions of the
    post-hoc estimator's novel clusters), each scaled to ``norm`` (default:
    the mean norm of the known prototypes; see ``centroid_logit_norm``) so
    novel logits start on the known ones' scale; rows beyond are zeroed and
    ``valid`` becomes num_known + K_novel (it may grow: the matrix has
    10 x K_known rows)."""
    k_novel = centres.shape[0]
    if num_known + k_novel > weight.shape[0]:
        raise ValueError(f"{k_novel} novel centres do not fit {weight.shape[0] - num_known} novel rows")
    scale = weight[:num_known].norm(dim=1).mean() if norm is None else norm
    weight[num_known:] = 0
    weight[num_known:num_known + k_novel] = (F.normalize(centres.float(), dim=1) * scale).to(weight)
    valid.fill_(num_known + k_novel)


@torch.no_grad()
def seed_from_features(weight: torch.Tensor, valid: torch.Tensor, num_known: int, centres: torch.Tensor,
                       features, labels) -> float | None:
    """Novel rows of ``weight`` := ``centres`` [K_novel, D] at ``centroid_logit_norm`` of the
    training ``features`` [N, D] and ``labels`` [N] (-1 unlabelled); returns that norm (None:
    the known prototypes' mean norm was used)."""
    x = torch.as_tensor(features).to(weight.device)
    y = torch.as_tensor(labels).to(weight.device)
    norm = centroid_logit_norm(weight[:num_known], x, y)
    seed_novel_prototypes(weight, valid, num_known, centres.to(weight.device), norm)
    return norm


def novel_centres(features, labels, num_known: int, k_total: int, seed: int = 0) -> torch.Tensor:
    """The ``k_total - num_known`` novel centres [K_novel, D] of a semi-supervised k-means of the
    unit ``features`` with every known class anchored to its labelled rows."""
    x = F.normalize(torch.as_tensor(features).float(), dim=1)
    _, centres, _ = semi_supervised_kmeans(x, torch.as_tensor(labels), num_known, k_total, seed=seed)
    return centres[num_known:]
