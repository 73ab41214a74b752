"""Evaluation: predictions over the test set, gathered over processes so that
every test image counts exactly once, then the metrics of utils/metrics.py."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from utils.device import autocast_for, to_layout
from utils.distributed import gather_objects
from utils.metrics import attribution_metrics, cluster_assignment

TOP_K = 3  # alternatives kept per image (top_index / top_prob)


@torch.no_grad()
def _collect(outputs_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool,
             channels_last: bool, progress: bool = False, desc: str = "predicting") -> dict:
    """``index``, ``label`` and the arrays ``outputs_fn(images)`` returns, over
    the whole loader (all processes), in eval mode, sorted by index;
    unreadable images dropped, counted (``unreadable``) and listed with their
    reasons (``errors``: index -> reason)."""
    from utils.progress import progress_bar

    was_training = model.training
    model.eval()
    parts, errors = [], {}
    for batch in progress_bar(loader, desc=desc, unit="batch", disable=not progress):
        images = to_layout(batch["image"].to(device, non_blocking=True), channels_last)
        with autocast_for(device, amp):
            outputs = outputs_fn(images)
        parts.append({"index": batch["index"], "label": batch["label"], "valid": batch["valid"],
                      **{k: v.cpu() for k, v in outputs.items()}})
        if not batch["valid"].all():
            errors.update({int(i): e for i, e, ok in zip(batch["index"], batch["error"], batch["valid"]) if not ok})
    model.train(was_training)
    keys = parts[0].keys() if parts else ("index", "label", "valid")
    local = {k: torch.cat([p[k] for p in parts]).numpy() if parts else np.zeros(0) for k in keys}
    shards = gather_objects((local, errors))
    filled = [s for s, _ in shards if s["index"].size] or [local]  # a process may have had no rows
    merged = {k: np.concatenate([s[k] for s in filled]) for k in filled[0]}
    order = np.argsort(merged["index"], kind="stable")
    valid = merged.pop("valid")[order].astype(bool)
    out = {k: v[order][valid] for k, v in merged.items()}
    out["errors"] = {i: e for _, shard_errors in shards for i, e in shard_errors.items()}
    out["unreadable"] = int((~valid).sum())
    return out


def batch_outputs(predict_fn, images: torch.Tensor, features_fn=None, probabilities: bool = False) -> dict:
    """One batch's ``top_index`` / ``top_prob`` [B, <=3] (best first), with ``features_fn`` its
    ``features`` [B, D], with ``probabilities`` every prototype's softmax ``prob`` [B, V]."""
    logits = predict_fn(images).float()
    prob = logits.softmax(dim=1)
    top_prob, top_index = prob.topk(min(TOP_K, logits.shape[1]), dim=1)
    out = {"top_index": top_index, "top_prob": top_prob}
    if probabilities:
        out["prob"] = prob
    if features_fn is not None:
        out["features"] = features_fn(images).float()
    return out


def predict(predict_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool = True,
            channels_last: bool = False, features_fn=None, progress: bool = False,
            probabilities: bool = False) -> dict:
    """Over the whole set (all processes), sorted by index: arrays ``index``,
    ``label``, ``pred``, ``confidence`` (max softmax), ``top_index`` /
    ``top_prob`` [N, <=3] (best first; ``pred`` and ``confidence`` are their
    first column), ``num_prototypes`` (the logits' width), with ``features_fn`` ``features``
    [N, D] and with ``probabilities`` ``prob`` [N, V]; unreadable images dropped and listed in ``errors``."""
    width = []

    def logits_of(images):
        logits = predict_fn(images)
        width[:] = [logits.shape[1]]
        return logits

    out = _collect(lambda images: batch_outputs(logits_of, images, features_fn, probabilities),
                   model, loader, device, amp, channels_last, progress)
    if "top_index" not in out:
        raise ValueError("nothing to predict: the image list is empty")
    out["pred"], out["confidence"] = out["top_index"][:, 0], out["top_prob"][:, 0]
    out["num_prototypes"] = max(gather_objects(width[0] if width else 0))  # a process may have had no rows
    return out


def extract_features(features_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool = True,
                     channels_last: bool = False, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised features [N, D] (``features_fn``, e.g. ``CALNet.features``:
    the BNNeck output, eval mode, no dropout) and the loader's labels [N],
    over the whole loader (all processes), sorted by index; unreadable
    images dropped. ``progress``: a bar on stderr."""
    out = _collect(lambda images: {"feature": F.normalize(features_fn(images).float(), dim=1)},
                   model, loader, device, amp, channels_last, progress, desc="features")
    return out["feature"], out["label"]


def prediction_metrics(out: dict, num_known: int) -> dict:
    """Metrics dict (all/known/novel ACC, NMI, ARI, confidences, counts) of
    ``predict``'s output and, under ``cluster_assignment``, all_acc's
    matching of prototypes to classes."""
    metrics = attribution_metrics(out["label"], out["pred"], num_known, out["confidence"], out["num_prototypes"])
    metrics["unreadable_test_images"] = out["unreadable"]
    metrics["cluster_assignment"] = cluster_assignment(out["label"], out["pred"])
    return metrics
