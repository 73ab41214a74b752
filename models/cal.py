"""CAL as a method: the shared network with frequency attention, the four loss
terms of losses/ (METHOD.md section 4), ACR's novel threshold, and at an epoch's
end the discovery of novel classes (discovery/): the novel prototypes seeded
from clusters of the training features, with the given number of classes or the
post-hoc estimate's, or the paper's rules (random novel prototypes with known K,
Dynamic Prototype Pruning with unknown K). Keys: ``CAL_KEYS``.
"""
from __future__ import annotations

import logging
import time

import torch

from discovery.pruning import move_optimizer_rows, prune_prototypes
from discovery.seeding import novel_centres, seed_from_features
from losses.acr import NovelThreshold, acr_loss
from losses.ccr import ccr_loss
from losses.prior import prior_regularisation
from losses.supervised import supervised_loss
from models.heads import CosinePrototypes, PrototypeClassifier
from models.method import EpochEnd, Method, register_method
from models.network import PrototypeNet, full_precision, network_args
from utils.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT, Section, between

log = logging.getLogger(__name__)

# Keys whose default departs from the paper and that came after it: (their name before the cal_ prefix,
# the paper's value), which a run recorded before the key existed used.
PAPER_VALUES = {"cal_tau_prior": ("tau_prior", 1.0), "cal_acr_ratio_max": ("acr_ratio_max", 10.0),
                "cal_classifier": ("classifier", "plain")}


def recorded_cal(values: dict) -> dict:
    """A CAL config recorded before some keys existed: the paper's value for the departures of
    PAPER_VALUES, its one prior temperature before the count too, and ``recorded_discovery``'s
    rule for how the novel prototypes were set."""
    values = dict(values)
    for key, (old, paper) in PAPER_VALUES.items():
        if key not in values and old not in values:
            values[key] = paper
    if "cal_tau_prior_count" not in values:  # the count's features trained at the one prior temperature then
        values["cal_tau_prior_count"] = values.get("cal_tau_prior", values.get("tau_prior"))
    return recorded_discovery(values)


def recorded_discovery(values: dict) -> dict:
    """A config recorded before ``cal_novel_prototypes``: a known-K run had random novel prototypes,
    an unknown-K run counted them with ``novel_k_source`` (DPP when absent: before the post-hoc
    estimate existed), whose post-hoc estimate ran at ``posthoc_epoch`` (before it existed: at the
    end of ``prune_start``)."""
    if "cal_novel_prototypes" in values:
        return values
    seeded = bool(values.get("unknown_k")) and values.get("novel_k_source", "dpp") == "posthoc"
    values = {k: v for k, v in values.items() if k != "novel_k_source"}
    if seeded and "posthoc_epoch" not in values:
        values["cal_seed_epoch"] = values.get("prune_start", 0)
    return {**values, "cal_novel_prototypes": "seeded" if seeded else "paper"}


NOVEL_PROTOTYPES = ("seeded", "paper")
CAL_KEYS = Section(
    keys={
        "cal_frequency_attention": (True, "DCT frequency attention on the feature map (the authors' FFE)"),
        "cal_fused_gate": (False, "the attention's gate as one Triton kernel on CUDA (models/gate_kernel.py; "
                                  "ignored on CPU)"),
        "cal_classifier": ("cosine", "cosine: logits cos(z, w), so known and novel prototypes share one logit "
                                     "scale (docs/choosing_k.md#known-k-novel-prototypes-that-win); plain: z.w "
                                     "(the paper)"),
        "cal_tau_student": (0.1, "student temperature (supervised, CCR's student side, ACR; paper 1.0 with "
                                 "plain logits: cosine logits lie in [-1, 1])"),
        "cal_tau_teacher": (0.05, "teacher temperature of the CCR soft targets (paper 0.1 beside a student at "
                                  "1.0; the teacher stays sharper than the student)"),
        "cal_tau_prior": (0.05, "temperature of the softmax the prior regulariser averages (paper: 1.0; "
                                "docs/choosing_k.md#known-k-novel-prototypes-that-win)"),
        "cal_tau_prior_count": (1.0, "unknown K, seeded: cal_tau_prior until the post-hoc count (the paper's "
                                     "1.0: with the sharp prior the count over-shoots on ImageNet features; "
                                     "docs/choosing_k.md#the-count-with-the-defaults)"),
        "cal_reg_weight": (1.25, "weight of the prior (uniform-usage) regulariser (paper 1.0; "
                                 "docs/choosing_k.md#known-k-novel-prototypes-that-win)"),
        "cal_ccr_weight": (0.2, "weight of CCR; 0 disables it"),
        "cal_acr": (True, "asymmetric confidence reinforcement (pseudo-labels on unlabelled rows)"),
        "cal_acr_weight": (1.0, "weight of the ACR term"),
        "cal_pseudo_start": (5, "first epoch (0-based) with ACR pseudo-labels"),
        "cal_gamma": (0.95, "confidence threshold for known-class pseudo-labels (paper 0.9 with plain logits "
                            "at tau 1: cosine logits at cal_tau_student=0.1 are more confident)"),
        "cal_acr_asymmetric": (True, "false: novel pseudo-labels use cal_gamma too (the paper's ablation)"),
        "cal_acr_ratio_max": (0.5, "upper clamp of the novel/known confidence ratio behind gamma_novel "
                                   "(paper: 10, so gamma_novel may pass 1)"),
        "cal_novel_prototypes": ("seeded", "seeded: the novel prototypes become cluster centres of the training "
                                           "features at the end of cal_seed_epoch (known K: the given count; "
                                           "unknown K: the post-hoc estimate); paper: random ones with known K, "
                                           "Dynamic Prototype Pruning with unknown K"),
        "cal_seed_epoch": (4, "seeded: the epoch (0-based) at whose end the novel prototypes are set (at the "
                              "latest the last one)"),
        "cal_prototypes_per_known": (10, "prototypes per known class before the novel ones are set or pruned"),
        "cal_prune_coverage": (0.9544, "DPP: cumulative usage the kept novel prototypes must cover"),
        "cal_prune_start": (0, "DPP: first epoch (0-based) at whose end it may prune; paper 0"),
        "cal_prune_max_drop": (1.0, "DPP: largest share of the novel prototypes one epoch may remove; paper 1.0"),
        "cal_prune_anchor_norm": ("unit", "DPP: joined anchors get norm 1 (paper) or members: their mean norm"),
        "cal_prune_optimizer_state": ("keep", "DPP: Adam moments stay at their row (the release) or move with it"),
    },
    rules={
        "cal_tau_student": POSITIVE, "cal_tau_teacher": POSITIVE, "cal_tau_prior": POSITIVE,
        "cal_tau_prior_count": POSITIVE,
        "cal_reg_weight": NON_NEGATIVE, "cal_ccr_weight": NON_NEGATIVE, "cal_acr_weight": NON_NEGATIVE,
        "cal_pseudo_start": NON_NEGATIVE, "cal_gamma": UNIT,
        "cal_acr_ratio_max": (lambda v: v >= NovelThreshold.RATIO_MIN, "must be >= 0.1 (the ratio's lower clamp)"),
        "cal_novel_prototypes": (lambda v: v in NOVEL_PROTOTYPES, "must be 'seeded' or 'paper'"),
        "cal_classifier": (lambda v: v in ("plain", "cosine"), "must be 'plain' (the paper) or 'cosine'"),
        "cal_seed_epoch": NON_NEGATIVE, "cal_prototypes_per_known": AT_LEAST_ONE,
        "cal_prune_coverage": between(0.0, 1.0, lo_open=True), "cal_prune_start": NON_NEGATIVE,
        "cal_prune_max_drop": between(0.0, 1.0, lo_open=True),
        "cal_prune_anchor_norm": (lambda v: v in ("unit", "members"), "must be 'unit' (the paper) or 'members'"),
        "cal_prune_optimizer_state": (lambda v: v in ("keep", "move"), "must be 'keep' (the release) or 'move'"),
    },
    resume_fixed=("cal_frequency_attention", "cal_prototypes_per_known", "cal_novel_prototypes", "cal_classifier"),
    resume_inert=("cal_gamma", "cal_acr_asymmetric"),
    renamed={**{key: f"cal_{key}" for key in (
        "frequency_attention", "fused_gate", "tau_student", "tau_teacher", "tau_prior", "reg_weight", "ccr_weight",
        "acr", "acr_weight", "pseudo_start", "gamma", "acr_asymmetric", "acr_ratio_max", "prototypes_per_known",
        "prune_coverage", "prune_start", "prune_max_drop", "prune_anchor_norm", "prune_optimizer_state")},
        "posthoc_epoch": "cal_seed_epoch", "novel_k_source": "cal_novel_prototypes"},
    aliases={"cal_novel_prototypes": {"posthoc": "seeded", "dpp": "paper"}},
    recorded=recorded_cal,
    unknown_k=True,
)


def num_prototypes(cfg, num_known: int, num_classes: int) -> int:
    """Rows of the prototype matrix: C with the paper's known K; with seeding or unknown K,
    cal_prototypes_per_known x K_known (at least C with known K) until the novel ones are set."""
    if cfg.unknown_k:
        return cfg.cal_prototypes_per_known * num_known
    if cfg.cal_novel_prototypes == "seeded":
        return max(cfg.cal_prototypes_per_known * num_known, num_classes)
    return num_classes


@register_method("cal", CAL_KEYS)
class CAL(Method):
    NAME, TITLE = "CAL", "confidence-aware asymmetric learning"

    def __init__(self, cfg, num_known: int, num_classes: int):
        super().__init__(cfg, num_known, num_classes)
        self.threshold = NovelThreshold(cfg.cal_gamma, 0.0, cfg.cal_acr_asymmetric, cfg.cal_acr_ratio_max)
        self.usage = torch.zeros(self.net.prototypes.num_valid, dtype=torch.long)

    @classmethod
    def network(cls, cfg, num_known: int, num_classes: int) -> PrototypeNet:
        return PrototypeNet(num_prototypes=num_prototypes(cfg, num_known, num_classes),
                            frequency_attention=cfg.cal_frequency_attention, fused_gate=cfg.cal_fused_gate,
                            classifier=CosinePrototypes if cfg.cal_classifier == "cosine" else PrototypeClassifier,
                            **network_args(cfg))

    @classmethod
    def describe(cls, cfg) -> str:
        attention = " with frequency attention" if cfg.get("cal_frequency_attention") else ""
        return f"a {cfg['backbone']} backbone{attention}, a BNNeck and a prototype classifier"

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the student temperature, so their softmax is the one the losses train
        (the paper's plain classifier: tau 1, the raw logits)."""
        return self.model(images) / self.cfg.cal_tau_student

    # ------------------------------------------------------------ step
    def training_step(self, batch: dict, epoch: int) -> dict:
        """One step on weak and strong views; returns ``loss`` and its terms. Both views go
        through the network as one batch of 2B rows; the logits and every loss term are float32
        even under autocast."""
        logits = self.model(torch.cat([batch["weak"], batch["strong"]]))
        with full_precision(logits):
            return self._losses(logits.float(), batch["label"], epoch)

    def _losses(self, logits: torch.Tensor, labels: torch.Tensor, epoch: int) -> dict:
        cfg = self.cfg
        weak, strong = logits.chunk(2)
        terms = {
            "sup": supervised_loss(weak, strong, labels, cfg.cal_tau_student),
            "reg": prior_regularisation(weak, strong, cfg.cal_tau_prior_count if self._counting(epoch)
                                        else cfg.cal_tau_prior),
        }
        if cfg.cal_ccr_weight > 0:
            terms["ccr"] = ccr_loss(weak, strong, (epoch + 1) / cfg.epochs, cfg.cal_tau_teacher, cfg.cal_tau_student)
        if cfg.cal_acr and epoch >= cfg.cal_pseudo_start:
            terms["acr"], kept = acr_loss(weak, labels < 0, self.num_known, cfg.cal_gamma,
                                          self.threshold.gamma_novel, cfg.cal_tau_student)
            terms["acr_kept"] = kept.float()
        loss = (terms["sup"] + cfg.cal_reg_weight * terms["reg"] + cfg.cal_ccr_weight * terms.get("ccr", 0.0)
                + cfg.cal_acr_weight * terms.get("acr", 0.0))
        self._accumulate(weak.detach(), strong.detach())
        return {"loss": loss, **terms}

    def _seed_epoch(self) -> int:
        """The epoch at whose end the novel prototypes are seeded: ``cal_seed_epoch``, or the last
        epoch of a shorter run."""
        return min(self.cfg.cal_seed_epoch, self.cfg.epochs - 1)

    def _counting(self, epoch: int) -> bool:
        """Unknown K with seeded novel prototypes, before the post-hoc count: up to the end of
        the seed epoch."""
        cfg = self.cfg
        return cfg.unknown_k and cfg.cal_novel_prototypes == "seeded" and epoch <= self._seed_epoch()

    def _accumulate(self, weak: torch.Tensor, strong: torch.Tensor) -> None:
        self.threshold.accumulate(weak, strong, self.num_known, self.cfg.cal_tau_student)
        if self._prunes():
            # index_add_ rather than bincount, which syncs with the host on CUDA to size its output
            self.usage = self.usage.to(weak.device).index_add_(
                0, weak.argmax(dim=1), torch.ones(weak.shape[0], dtype=self.usage.dtype, device=weak.device))

    def _prunes(self) -> bool:
        return self.cfg.unknown_k and self.cfg.cal_novel_prototypes == "paper"

    # ------------------------------------------------------------ epoch end
    def on_epoch_end(self, epoch: int, context: EpochEnd) -> dict:
        """Recalibrate gamma_novel; then seed the novel prototypes (at cal_seed_epoch) or prune
        them (DPP, the paper's unknown K). Every process decides on the same reduced sums."""
        logs = self.threshold.update(context.reduce_sum(self.threshold.stats))
        if logs.pop("gamma_novel_above_one"):
            log.warning("epoch %d: gamma_novel=%.3f > 1, so no novel pseudo-label can pass next epoch "
                        "(the published rule, cal_acr_ratio_max=10)", epoch, logs["gamma_novel"])
        if self._prunes():
            logs.update(self._prune(epoch, context.reduce_sum(self.usage), context.optimizer))
            self.usage = torch.zeros(self.net.prototypes.num_valid, dtype=torch.long, device=self.usage.device)
            if epoch == self.cfg.epochs - 1:
                logs.update(self._check_dpp_count(logs["k_novel_estimate"], context.train_features))
        elif self.cfg.cal_novel_prototypes == "seeded":
            logs.update(self._seed(epoch, context.train_features))
        logs["valid_prototypes"] = self.net.prototypes.num_valid
        return logs

    def epoch_summary(self, record: dict) -> list[str]:
        parts = [f"gamma_novel {record.get('gamma_novel', 0):.3f}"]
        if record.get("k_novel_estimate") is not None:
            parts.insert(0, f"K_novel {record['k_novel_estimate']} (true {record.get('k_novel_true')})")
        return parts

    def _prune(self, epoch: int, usage: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict:
        """DPP from epoch ``cal_prune_start`` on, removing at most ``cal_prune_max_drop``
        of the novel prototypes per epoch (paper: 0 and 1.0)."""
        cfg, prototypes = self.cfg, self.net.prototypes
        if epoch < cfg.cal_prune_start:
            return {"k_novel_estimate": prototypes.num_valid - self.num_known, "model_changed": False}
        result = prune_prototypes(prototypes.weight.data, prototypes.valid, self.num_known, usage,
                                  cfg.cal_prune_coverage, cfg.cal_prune_anchor_norm, cfg.cal_prune_max_drop)
        if cfg.cal_prune_optimizer_state == "move":
            move_optimizer_rows(optimizer, prototypes.weight, self.num_known, result)
        return {"k_novel_kept": result.k_kept, "k_novel_estimate": result.valid_after - self.num_known,
                "model_changed": result.pruned}

    def _estimate(self, train_features):
        """The post-hoc estimate (discovery/k_estimation.py) on the training features, the features, and its seconds."""
        from discovery.k_estimation import estimate_novel_k

        prototypes = self.net.prototypes
        start = time.perf_counter()
        features, labels = train_features()
        estimate = estimate_novel_k(features, labels, self.num_known, k_limit=prototypes.weight.shape[0],
                                    seed=self.cfg.seed, device=prototypes.weight.device)
        return estimate, features, labels, round(time.perf_counter() - start, 2)

    def _seed(self, epoch: int, train_features) -> dict:
        """At the end of epoch ``cal_seed_epoch`` (or of the last epoch, when the run is shorter)
        the novel prototypes become the novel centres of a
        semi-supervised k-means of the training features (discovery/seeding.py): with the given
        number of classes (known K) or the post-hoc estimate's (unknown K)."""
        prototypes = self.net.prototypes
        logs = {"model_changed": False}
        if self.cfg.unknown_k:
            logs["k_novel_estimate"] = prototypes.num_valid - self.num_known
        if epoch != self._seed_epoch():
            return logs
        if not self.cfg.unknown_k:
            start = time.perf_counter()
            features, labels = train_features()
            centres = novel_centres(features, labels, self.num_known, self.num_classes, self.cfg.seed)
            norm = seed_from_features(prototypes.weight.data, prototypes.valid, self.num_known, centres, features,
                                      labels)
            seconds = round(time.perf_counter() - start, 2)
            log.info("epoch %d: the %d novel prototypes set to the novel k-means centres of the training features "
                     "in %.0f s (norm %s)", epoch, centres.shape[0], seconds, _norm_text(norm))
            return {"seed_seconds": seconds, "model_changed": True}
        estimate, features, labels, seconds = self._estimate(train_features)
        logs["k_posthoc_seconds"] = seconds
        if estimate.degenerate or not estimate.k_novel:
            log.warning("epoch %d: no post-hoc estimate (%s); the prototypes stay as they are", epoch,
                        estimate.message or "no novel class found")
            return logs
        norm = seed_from_features(prototypes.weight.data, prototypes.valid, self.num_known, estimate.centres,
                                  features, labels)
        log.info("epoch %d: post-hoc estimate %d novel classes in %.0f s (best mean score at %d; within 0.01 of "
                 "it: %d-%d); novel prototypes set to its cluster centres (norm %s)", epoch, estimate.k_novel,
                 seconds, estimate.k_best_score, *estimate.near_best(), _norm_text(norm))
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
                        "(cal_novel_prototypes=seeded, the default) or estimate_k.py is the better guide", line)
        else:
            log.info("%s", line)
        return {"k_posthoc": k_posthoc, "k_posthoc_seconds": seconds}

    def state_dict(self) -> dict:
        """Method state beyond the network weights (which carry the valid count)."""
        return {"threshold": self.threshold.state_dict(), "usage": self.usage.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.threshold.load_state_dict(state["threshold"])
        self.usage = state["usage"].clone()


def _norm_text(norm: float | None) -> str:
    return "of the known prototypes" if norm is None else f"{norm:.3f}"
