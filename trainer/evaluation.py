"""Evaluation: predictions over the test set, gathered over processes so that
every test image counts exactly once, then the metrics of utils/metrics.py."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer.device import autocast_for, to_layout
from trainer.distributed import gather_objects
from utils.metrics import attribution_metrics


@torch.no_grad()
def _collect(outputs_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool,
             channels_last: bool) -> dict[str, np.ndarray]:
    """``index``, ``label`` and the arrays ``outputs_fn(images)`` returns, over
    the whole loader (all processes), in eval mode, sorted by index;
    unreadable images dropped and counted (``unreadable``)."""
    was_training = model.training
    model.eval()
    parts = []
    for batch in loader:
        images = to_layout(batch["image"].to(device, non_blocking=True), channels_last)
        with autocast_for(device, amp):
            outputs = outputs_fn(images)
        parts.append({"index": batch["index"], "label": batch["label"], "valid": batch["valid"],
                      **{k: v.cpu() for k, v in outputs.items()}})
    model.train(was_training)
    keys = parts[0].keys() if parts else ("index", "label", "valid")
    local = {k: torch.cat([p[k] for p in parts]).numpy() if parts else np.zeros(0) for k in keys}
    shards = gather_objects(local)
    merged = {k: np.concatenate([s[k] for s in shards]) for k in local}
    order = np.argsort(merged["index"], kind="stable")
    merged = {k: v[order] for k, v in merged.items()}
    valid = merged.pop("valid").astype(bool)
    merged["unreadable"] = int((~valid).sum())
    return {k: (v[valid] if isinstance(v, np.ndarray) else v) for k, v in merged.items()}


def predict(predict_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool = True,
            channels_last: bool = False, features_fn=None) -> dict[str, np.ndarray]:
    """Arrays ``index``, ``label``, ``pred``, ``confidence`` (and ``features``
    [N, D] from ``features_fn`` when given) over the whole test set (all
    processes), sorted by test index; unreadable images dropped."""
    def outputs(images):
        confidence, pred = predict_fn(images).float().softmax(dim=1).max(dim=1)
        if features_fn is None:
            return {"pred": pred, "confidence": confidence}
        return {"pred": pred, "confidence": confidence, "features": features_fn(images).float()}

    return _collect(outputs, model, loader, device, amp, channels_last)


def extract_features(features_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool = True,
                     channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised features [N, D] (``features_fn``, e.g. ``CALNet.features``:
    the BNNeck output, eval mode, no dropout) and the loader's labels [N],
    over the whole loader (all processes), sorted by index; unreadable
    images dropped."""
    out = _collect(lambda images: {"feature": F.normalize(features_fn(images).float(), dim=1)},
                   model, loader, device, amp, channels_last)
    return out["feature"], out["label"]


def evaluate(predict_fn, model, loader, num_known: int, device, amp: bool = True,
             channels_last: bool = False) -> dict:
    """Metrics dict (all/known/novel ACC, NMI, ARI, confidences, counts)."""
    out = predict(predict_fn, model, loader, device, amp, channels_last)
    metrics = attribution_metrics(out["label"], out["pred"], num_known, out["confidence"])
    metrics["unreadable_test_images"] = out["unreadable"]
    return metrics
