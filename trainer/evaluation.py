"""Evaluation: predictions over the test set, gathered over processes so that
every test image counts exactly once, then the metrics of utils/metrics.py."""
from __future__ import annotations

import numpy as np
import torch

from trainer.device import autocast_for, to_layout
from trainer.distributed import gather_objects
from utils.metrics import attribution_metrics


@torch.no_grad()
def predict(predict_fn, model: torch.nn.Module, loader, device: torch.device, amp: bool = True,
            channels_last: bool = False) -> dict[str, np.ndarray]:
    """Arrays ``index``, ``label``, ``pred``, ``confidence`` over the whole
    test set (all processes), sorted by test index; unreadable images dropped."""
    was_training = model.training
    model.eval()
    parts = []
    for batch in loader:
        images = to_layout(batch["image"].to(device, non_blocking=True), channels_last)
        with autocast_for(device, amp):
            logits = predict_fn(images).float()
        confidence, pred = logits.softmax(dim=1).max(dim=1)
        parts.append({"index": batch["index"], "label": batch["label"], "valid": batch["valid"],
                      "pred": pred.cpu(), "confidence": confidence.cpu()})
    model.train(was_training)
    local = {k: torch.cat([p[k] for p in parts]).numpy() if parts else np.zeros(0)
             for k in ("index", "label", "valid", "pred", "confidence")}
    shards = gather_objects(local)
    merged = {k: np.concatenate([s[k] for s in shards]) for k in local}
    order = np.argsort(merged["index"], kind="stable")
    merged = {k: v[order] for k, v in merged.items()}
    valid = merged.pop("valid").astype(bool)
    merged["unreadable"] = int((~valid).sum())
    return {k: (v[valid] if isinstance(v, np.ndarray) else v) for k, v in merged.items()}


def evaluate(predict_fn, model, loader, num_known: int, device, amp: bool = True,
             channels_last: bool = False) -> dict:
    """Metrics dict (all/known/novel ACC, NMI, ARI, confidences, counts)."""
    out = predict(predict_fn, model, loader, device, amp, channels_last)
    metrics = attribution_metrics(out["label"], out["pred"], num_known, out["confidence"])
    metrics["unreadable_test_images"] = out["unreadable"]
    return metrics
