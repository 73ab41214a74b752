"""A fourth method takes one class and one registration: a toy method defined here, and
nowhere else, trains one epoch through train.py's entry point and is evaluated."""
import json

import torch
import torch.nn.functional as F
from conftest import TINY

from models.method import METHODS, Method, register_method
from models.network import PrototypeNet, network_args
from utils.config import POSITIVE, SECTIONS, Section

TOY_KEYS = Section(keys={"toy_temperature": (0.5, "temperature of the toy's cross-entropy")},
                   rules={"toy_temperature": POSITIVE})


class Toy(Method):
    """Cross-entropy on the labelled rows of the weak view, nothing else."""
    NAME, TITLE = "Toy", "a test's method"

    @classmethod
    def network(cls, cfg, num_known, num_classes):
        return PrototypeNet(num_prototypes=num_classes, **network_args(cfg))

    def training_step(self, batch, epoch):
        logits = self.model(batch["weak"]).float() / self.cfg.toy_temperature
        labelled = batch["label"] >= 0
        return {"loss": F.cross_entropy(logits[labelled], batch["label"][labelled])}


def test_a_method_registered_in_a_test_file_trains_and_evaluates(mini_root, tmp_path):
    import train

    register_method("toy", TOY_KEYS)(Toy)
    try:
        run_dir = tmp_path / "toy"
        rc = train.main(["configs/base.py", "method=toy", "toy_temperature=0.25", f"dataset_root={mini_root}",
                         f"run_dir={run_dir}", "epochs=1", *TINY])
        assert rc in (0, None)
        config = json.loads((run_dir / "config.json").read_text())
        assert config["method"] == "toy" and config["toy_temperature"] == 0.25
        assert not any(key.startswith("cal_") for key in config), "a run records only its own method's keys"
        [record] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert record["epoch"] == 0 and 0 <= record["all_acc"] <= 100 and record["loss"] == record["loss"]
        state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        assert state["config"]["method"] == "toy"
    finally:
        METHODS.pop("toy", None)
        SECTIONS.pop("toy", None)
