"""CAL as a method object: the network, the four loss terms and their state.

The trainer sees only the contract of trainer/method.py: ``training_step``
returns a dict of named loss tensors, ``on_epoch_end`` recalibrates the novel
threshold and (with unknown K) prunes prototypes, ``predict`` gives logits.
Every formula lives in losses/ and models/pruning.py.
"""
from __future__ import annotations

import logging
import time

import torch

from losses.acr import NovelThreshold, acr_loss
from losses.ccr import ccr_loss
from losses.prior import prior_regularisation
from losses.supervised import supervised_loss
from models.cal_net import CALNet, full_precision
from models.pruning import centroid_logit_norm, move_optimizer_rows, prune_prototypes, seed_novel_prototypes
from models.wrappers import unwrap

log = logging.getLogger(__name__)


def num_prototypes(cfg, num_known: int, num_classes: int) -> int:
    """P = C with known K; P = prototypes_per_known x K_known with unknown K."""
    return cfg.prototypes_per_known * num_known if cfg.unknown_k else num_classes


class CAL:
    NAME, TITLE = "CAL", "confidence-aware asymmetric learning"
    FREQUENCY_ATTENTION = True  # the network has the frequency attention when cfg.frequency_attention

    def __init__(self, cfg, num_known: int, num_classes: int):
        self.cfg, self.num_known, self.num_classes = cfg, num_known, num_classes
        self.model = self.network(cfg, num_known, num_classes)
        self.threshold = NovelThreshold(cfg.gamma, 0.0, cfg.acr_asymmetric)
        self.usage = torch.zeros(self.net.prototypes.num_valid, dtype=torch.long)

    @staticmethod
    def network(cfg, num_known: int, num_classes: int) -> CALNet:
        """The network alone (what a checkpoint's or an export's weights must fit)."""
        return CALNet(cfg.backbone, num_prototypes(cfg, num_known, num_classes), cfg.pretrained,
                      cfg.pretrained_path, cfg.frequency_attention, cfg.dropout, cfg.prototype_init_std,
                      cfg.fused_gate, cfg.input_mean, cfg.input_std)

    @property
    def net(self) -> CALNet:
        return unwrap(self.model)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the valid prototypes."""
        return self.model(images)

    def training_step(self, batch: dict, epoch: int) -> dict:
        """One step on weak and strong views; returns ``loss`` and its terms.

        Both views go through the network as one batch of 2B rows; the
        logits and every loss term are float32 even under autocast.
        """
        logits = self.model(torch.cat([batch["weak"], batch["strong"]]))
        with full_precision(logits):
            return self._losses(logits.float(), batch["label"], epoch)

    def _losses(self, logits: torch.Tensor, labels: torch.Tensor, epoch: int) -> dict:
        cfg = self.cfg
        weak, strong = logits.chunk(2)
        terms = {
            "sup": supervised_loss(weak, strong, labels, cfg.tau_student),
            "reg": prior_regularisation(weak, strong, cfg.tau_prior),
        }
        if cfg.ccr_weight > 0:
            terms["ccr"] = ccr_loss(weak, strong, (epoch + 1) / cfg.epochs, cfg.tau_teacher, cfg.tau_student)
        if cfg.acr and epoch >= cfg.pseudo_start:
            terms["acr"], kept = acr_loss(weak, labels < 0, self.num_known, cfg.gamma,
                                          self.threshold.gamma_novel, cfg.tau_student)
            terms["acr_kept"] = kept.float()
        loss = (terms["sup"] + cfg.reg_weight * terms["reg"] + cfg.ccr_weight * terms.get("ccr", 0.0)
                + cfg.acr_weight * terms.get("acr", 0.0))
        self._accumulate(weak.detach(), strong.detach())
        return {"loss": loss, **terms}

    def _accumulate(self, weak: torch.Tensor, strong: torch.Tensor) -> None:
        self.threshold.accumulate(weak, strong, self.num_known)
        if self.cfg.unknown_k:
            # index_add_ rather than bincount, which syncs with the host on CUDA to size its output
            self.usage = self.usage.to(weak.device).index_add_(
                0, weak.argmax(dim=1), torch.ones(weak.shape[0], dtype=self.usage.dtype, device=weak.device))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """BNNeck features [B, D] (for clustering and the post-hoc K estimate)."""
        return self.net.features(images)

    def on_epoch_end(self, epoch: int, reduce_sum, optimizer: torch.optim.Optimizer, train_features=None) -> dict:
        """Recalibrate gamma_novel and, with unknown K, prune; ``reduce_sum``
        sums a tensor over processes so every process decides identically;
        ``train_features()`` gives (features, labels with -1 unlabelled) of the
        training images, gathered over processes (for ``novel_k_source=posthoc``).
        ``model_changed`` tells the trainer whether predictions may differ now."""
        logs = self.threshold.update(reduce_sum(self.threshold.stats))
        if self.cfg.unknown_k and self.cfg.novel_k_source == "posthoc":
            logs.update(self._seed_from_estimate(epoch, train_features))
        elif self.cfg.unknown_k:
            logs.update(self._prune(epoch, reduce_sum(self.usage), optimizer))
            self.usage = torch.zeros(self.net.prototypes.num_valid, dtype=torch.long, device=self.usage.device)
            if epoch == self.cfg.epochs - 1 and train_features is not None:
                logs.update(self._check_dpp_count(logs["k_novel_estimate"], train_features))
        logs["valid_prototypes"] = self.net.prototypes.num_valid
        return logs

    def _prune(self, epoch: int, usage: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict:
        """DPP from epoch ``prune_start`` on, removing at most ``prune_max_drop``
        of the novel prototypes per epoch (paper: 0 and 1.0)."""
        cfg, prototypes = self.cfg, self.net.prototypes
        if epoch < cfg.prune_start:
            return {"k_novel_estimate": prototypes.num_valid - self.num_known, "model_changed": False}
        result = prune_prototypes(prototypes.weight.data, prototypes.valid, self.num_known, usage,
                                  cfg.prune_coverage, cfg.prune_anchor_norm, cfg.prune_max_drop)
        if cfg.prune_optimizer_state == "move":
            move_optimizer_rows(optimizer, prototypes.weight, self.num_known, result)
        return {"k_novel_kept": result.k_kept, "k_novel_estimate": result.valid_after - self.num_known,
                "model_changed": result.pruned}

    def _estimate(self, train_features):
        """The post-hoc estimate (utils/k_estimation.py) on the training features, the features, and its seconds."""
        from utils.k_estimation import estimate_novel_k

        prototypes = self.net.prototypes
        start = time.perf_counter()
        features, labels = train_features()
        estimate = estimate_novel_k(features, labels, self.num_known, k_limit=prototypes.weight.shape[0],
                                    seed=self.cfg.seed, device=prototypes.weight.device)
        return estimate, features, labels, round(time.perf_counter() - start, 2)

    def _seed_from_estimate(self, epoch: int, train_features) -> dict:
        """``novel_k_source=posthoc``: at the end of epoch ``posthoc_epoch`` the
        post-hoc estimator sets the number of novel prototypes and their vectors
        (its k-means centres, at the norm whose logits match the known prototypes'); DPP does not run."""
        prototypes = self.net.prototypes
        logs = {"k_novel_estimate": prototypes.num_valid - self.num_known, "model_changed": False}
        if epoch != self.cfg.posthoc_epoch:
            return logs
        estimate, features, labels, seconds = self._estimate(train_features)
        logs["k_posthoc_seconds"] = seconds
        if estimate.degenerate or not estimate.k_novel:
            log.warning("epoch %d: no post-hoc estimate (%s); the prototypes stay as they are", epoch,
                        estimate.message or "no novel class found")
            return logs
        weight = prototypes.weight.data
        norm = centroid_logit_norm(weight[:self.num_known], torch.as_tensor(features).to(weight.device),
                                   torch.as_tensor(labels).to(weight.device))
        seed_novel_prototypes(weight, prototypes.valid, self.num_known, estimate.centres, norm)
        log.info("epoch %d: post-hoc estimate %d novel classes in %.0f s (best mean score at %d; within 0.01 of "
                 "it: %d-%d); novel prototypes set to its cluster centres (norm %s)", epoch, estimate.k_novel,
                 seconds, estimate.k_best_score, *estimate.near_best(),
                 "of the known prototypes" if norm is None else f"{norm:.3f}")
        return {**logs, "k_novel_estimate": estimate.k_novel, "k_posthoc": estimate.k_novel, "model_changed": True}

    def _check_dpp_count(self, k_dpp: int, train_features) -> dict:
        """End of a DPP run: the post-hoc count on the same features beside DPP's, and a
        one-line warning when one is less than half the other (DPP's count has collapsed, or run away)."""
        estimate, _, _, seconds = self._estimate(train_features)
        if estimate.degenerate:
            log.warning("DPP kept %d novel prototypes; no post-hoc estimate to compare (%s)", k_dpp, estimate.message)
            return {"k_posthoc_seconds": seconds}
        k_posthoc = estimate.k_novel
        line = (f"DPP kept {k_dpp} novel prototypes; the post-hoc estimate on the same features counts {k_posthoc} "
                f"({seconds:.0f} s)")
        if 2 * min(k_dpp, k_posthoc) < max(k_dpp, k_posthoc):
            log.warning("%s: they differ by more than half, so DPP's count is likely wrong; the post-hoc count "
                        "(novel_k_source=posthoc, the default) or estimate_k.py is the better guide", line)
        else:
            log.info("%s", line)
        return {"k_posthoc": k_posthoc, "k_posthoc_seconds": seconds}

    def state_dict(self) -> dict:
        """Method state beyond the network weights (which carry the valid count)."""
        return {"threshold": self.threshold.state_dict(), "usage": self.usage.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.threshold.load_state_dict(state["threshold"])
        self.usage = state["usage"].clone()
