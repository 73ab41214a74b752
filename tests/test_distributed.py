"""Two processes with gloo on CPU: evaluation counts each test image once,
pruning and the novel threshold come out identical on every process and equal
to the single-process result on the union of the data, and a full torchrun
training of the demo config completes and evaluates."""
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY, run_cli

from models.method import EpochEnd

WORLD = 2
NUM_KNOWN = 3


def no_features():
    raise AssertionError("this epoch end must not need the training features")


def _init(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)


class _Images(torch.utils.data.Dataset):
    """11 items (odd on purpose): image = index, label = index % 5."""

    def __len__(self):
        return 11

    def __getitem__(self, i):
        return {"image": torch.full((1,), float(i)), "label": i % 5, "index": i, "valid": True}


def _rank_logits(rank: int, rows: int = 64, width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Different weak/strong logits per process, from a fixed seed."""
    g = torch.Generator().manual_seed(100 + rank)
    weak = torch.randn(rows, width, generator=g) * 3
    strong = weak + 0.5 * torch.randn(rows, width, generator=g)
    return weak, strong


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    _init(rank, init_file)
    from dataset.sampler import ShardSampler
    from losses.acr import NovelThreshold
    from models.cal import CAL
    from utils.distributed import reduce_sum
    from utils.evaluation import predict
    from utils.config import load_config

    # 1. evaluation: each test image exactly once
    loader = torch.utils.data.DataLoader(_Images(), batch_size=4, sampler=ShardSampler(11, rank, WORLD))
    model = torch.nn.Identity()
    out = predict(lambda x: torch.nn.functional.one_hot(x[:, 0].long() % 3, 3).float(), model, loader,
                  torch.device("cpu"), amp=False)

    # 2. novel threshold from all-reduced statistics
    threshold = NovelThreshold(gamma=0.9)
    weak, strong = _rank_logits(rank)
    threshold.accumulate(weak, strong, NUM_KNOWN)
    threshold.update(reduce_sum(threshold.stats))

    # 3. pruning after an epoch of (different) usage on each process
    cfg = load_config("configs/demo.py", [*TINY, "unknown_k=true", "cal_novel_prototypes=paper", "cal_prototypes_per_known=4"])
    torch.manual_seed(0)
    method = CAL(cfg, NUM_KNOWN, 6)  # 12 prototypes, 9 of them novel
    method._accumulate(weak, strong)
    optimizer = torch.optim.Adam(method.parameters())
    logs = method.on_epoch_end(0, EpochEnd(reduce_sum, optimizer, no_features))

    result = {"index": out["index"].tolist(), "gamma_novel": threshold.gamma_novel,
              "valid": method.net.prototypes.num_valid, "k_novel": logs["k_novel_estimate"],
              "prototypes": method.net.prototypes.weight.detach().tolist()}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_each_test_image_counted_once(ranks):
    for result in ranks:
        assert result["index"] == list(range(11))


def test_threshold_equal_on_ranks_and_to_single_process(ranks):
    from losses.acr import NovelThreshold

    single = NovelThreshold(gamma=0.9)
    for rank in range(WORLD):
        single.accumulate(*_rank_logits(rank), NUM_KNOWN)
    single.update()
    assert ranks[0]["gamma_novel"] == ranks[1]["gamma_novel"]
    assert ranks[0]["gamma_novel"] == pytest.approx(single.gamma_novel, rel=1e-12)
    assert single.gamma_novel != 0.0, "the statistics were non-trivial"


def test_pruning_identical_on_ranks_and_to_single_process(ranks):
    from models.cal import CAL
    from utils.config import load_config

    assert ranks[0]["valid"] == ranks[1]["valid"] and ranks[0]["k_novel"] == ranks[1]["k_novel"]
    assert ranks[0]["prototypes"] == ranks[1]["prototypes"]
    cfg = load_config("configs/demo.py", [*TINY, "unknown_k=true", "cal_novel_prototypes=paper", "cal_prototypes_per_known=4"])
    torch.manual_seed(0)
    method = CAL(cfg, NUM_KNOWN, 6)
    for rank in range(WORLD):
        method._accumulate(*_rank_logits(rank))
    logs = method.on_epoch_end(0, EpochEnd(lambda t: t.clone(), torch.optim.Adam(method.parameters()), no_features))
    assert logs["k_novel_estimate"] == ranks[0]["k_novel"]
    assert torch.allclose(method.net.prototypes.weight, torch.tensor(ranks[0]["prototypes"]), atol=1e-7)


def test_torchrun_training_and_evaluation(mini_root, tmp_path):
    run_dir = tmp_path / "ddp"
    result = run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                     "train.py", "configs/demo.py", f"dataset_root={mini_root}", f"run_dir={run_dir}",
                     "epochs=2", "unknown_k=true", "cal_novel_prototypes=paper", *TINY, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 processes" in result.stdout
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    out = tmp_path / "eval.json"
    evaluated = run_cli("test.py", "--ckpt", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(out.read_text())
    assert metrics["num_test"] == records[-1]["num_test"]
    assert metrics["valid_prototypes"] == records[-1]["valid_prototypes"]
