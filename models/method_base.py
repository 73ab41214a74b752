"""What every baseline method object shares (CAL is models/cal.py): its network
behind ``model`` (which the trainer may wrap), the parameters to optimise,
logits for prediction, BNNeck features, and no state beyond the weights."""
from __future__ import annotations

import torch

from models.wrappers import unwrap


class NetworkMethod:
    NAME, TITLE = "", ""       # short name and what it stands for (model cards)
    FREQUENCY_ATTENTION = False  # baselines run on the plain backbone

    def __init__(self, cfg, num_known: int, num_classes: int):
        self.cfg, self.num_known, self.num_classes = cfg, num_known, num_classes
        self.model = self.network(cfg, num_known, num_classes)

    @staticmethod
    def network(cfg, num_known: int, num_classes: int) -> torch.nn.Module:
        """The network alone (what a checkpoint's or an export's weights must fit)."""
        raise NotImplementedError

    @property
    def net(self) -> torch.nn.Module:
        return unwrap(self.model)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits over the classes (eval mode)."""
        return self.model(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """BNNeck features [B, D] (for clustering and the post-hoc K estimate)."""
        return self.net.features(images)

    def on_epoch_end(self, epoch: int, reduce_sum, optimizer, train_features=None) -> dict:
        """Nothing changes at an epoch's end."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
