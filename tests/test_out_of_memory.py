"""Memory that runs out, in training, evaluation or prediction: one `error:` line naming
which memory and the size to lower, in log.txt too, exit 2; a fresh run that never
finished an epoch leaves no folder. One real case (an address-space limit in a child
process), the others by raising the error where it would arise."""
import errno
import json
import resource
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY

import predict as predict_cli
import test as test_py
import train
from utils.checkpoint import load_checkpoint
from utils.memory import OutOfMemory, is_out_of_memory, memory_hint, out_of_memory_message

CPU_ALLOC = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 805306368 bytes. Error code 12 (Cannot allocate memory)")
CUDA_OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                  "79.19 GiB of which 1.03 GiB is free.")
WORKER = RuntimeError("Caught MemoryError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                      "last):\nnumpy._core._exceptions._ArrayMemoryError: Unable to allocate 3.00 GiB for an array")
SIZES = (("batch_size=", 2), ("image_size=", 4096))
SMALL = ["budget_real=4", "budget_known=2", "budget_novel=2"]  # a run of a few dozen images starts fast


def one_error(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in text, lines[-3:]
    return errors[0]


@pytest.mark.parametrize("err, memory, asked", [
    (CPU_ALLOC, "CPU memory (RAM)", " (one allocation asked for 805 MB)"),
    (CUDA_OOM, "GPU memory", " (one allocation asked for 2.00 GiB)"),
    (MemoryError(), "CPU memory (RAM)", ""),
    (WORKER, "CPU memory (RAM)", " (one allocation asked for 3.00 GiB)"),
    (OSError(errno.ENOMEM, "Cannot allocate memory"), "CPU memory (RAM)", ""),
])
def test_each_kind_of_failed_allocation_is_named(err, memory, asked):
    assert is_out_of_memory(err)
    assert out_of_memory_message(err, "training", SIZES) == (
        f"out of {memory} while training with batch_size=2, image_size=4096{asked}: lower batch_size or "
        f"image_size, e.g. batch_size=1 or image_size=2048")


def test_other_errors_pass_through_and_a_cause_counts():
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(OutOfMemory("x"))
    assert not is_out_of_memory(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise MemoryError()
        except MemoryError as inner:
            raise ValueError("while collating") from inner
    except ValueError as outer:
        assert is_out_of_memory(outer)
    with pytest.raises(KeyError):
        with memory_hint("training", *SIZES):
            raise KeyError("not memory")
    with pytest.raises(OutOfMemory, match=r"^out of GPU memory while predicting with --batch_size 1 \(one "
                                          r"allocation asked for 2.00 GiB\): even the smallest sizes do not fit"):
        with memory_hint("predicting", ("--batch_size ", 1)):
            raise CUDA_OOM


def test_a_real_out_of_memory_start_is_one_line_and_leaves_no_folder(mini_root, tmp_path):
    """The address space of the child is limited to 5 GiB; one 4096 px batch of two views needs more."""
    run = tmp_path / "run"
    limit = 5 * 2**30

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([sys.executable, "train.py", "configs/demo.py", *TINY, f"dataset_root={mini_root}",
                             f"run_dir={run}", "epochs=1", *SMALL, "image_size=4096", "batch_size=2",
                             "test_batch_size=2"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, preexec_fn=limited)
    assert result.returncode == 2, result.stderr[-3000:]
    error = one_error(result.stderr)
    assert error.startswith("error: out of CPU memory (RAM) while training with batch_size=2, image_size=4096")
    assert error.endswith("lower batch_size or image_size, e.g. batch_size=1 or image_size=2048")
    assert not run.exists()


def test_a_fresh_run_that_runs_out_in_its_first_evaluation_leaves_no_folder(mini_root, tmp_path, capsys,
                                                                            monkeypatch):
    from trainer.trainer import Trainer

    def evaluate(self, features=False):
        raise CUDA_OOM

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    run = tmp_path / "run"
    assert train.main(["configs/demo.py", *TINY, *SMALL, "batch_size=16", f"dataset_root={mini_root}",
                       f"run_dir={run}", "epochs=1"]) == 2
    error = one_error(capsys.readouterr().err)
    assert error == ("error: out of GPU memory while evaluating with test_batch_size=128 (one allocation asked for "
                     "2.00 GiB): lower test_batch_size, e.g. test_batch_size=64")
    assert not run.exists()


@pytest.mark.parametrize("where, error", [
    ("train_step", "out of CPU memory (RAM) while training with batch_size=64, image_size=32 (one allocation asked "
                   "for 805 MB): lower batch_size or image_size, e.g. batch_size=32 or image_size=16"),
    ("calibrate_abstain", "out of CPU memory (RAM) while evaluating with test_batch_size=128: lower "
                          "test_batch_size, e.g. test_batch_size=64"),
])
def test_a_run_with_a_checkpoint_keeps_it_and_logs_the_line(known_k_run, tmp_path, capsys, monkeypatch, where,
                                                            error):
    from trainer.trainer import Trainer

    failure = CPU_ALLOC if where == "train_step" else MemoryError()

    def fail(*args, **kwargs):
        raise failure

    run = shutil.copytree(known_k_run[0], tmp_path / "run")
    monkeypatch.setattr(Trainer, where, fail)
    # one more epoch fails at its first step; a resume of the finished run goes straight to the calibration
    assert train.main(["--resume", str(run), *(["epochs=3"] if where == "train_step" else [])]) == 2
    assert one_error(capsys.readouterr().err) == f"error: {error}"
    assert (run / "log.txt").read_text().strip().splitlines()[-1].endswith(error)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == epochs[-1] == 1


def test_test_py_and_predict_name_their_batch_size(known_k_run, mini_root, tmp_path, capsys, monkeypatch):
    import utils.evaluation

    def predict(*args, **kwargs):
        raise CUDA_OOM

    monkeypatch.setattr(utils.evaluation, "predict", predict)
    assert test_py.main(["--ckpt", str(known_k_run[0]), "--batch_size", "50"]) == 2
    assert one_error(capsys.readouterr().err) == (
        "error: out of GPU memory while evaluating with --batch_size 50 (one allocation asked for 2.00 GiB): lower "
        "--batch_size, e.g. --batch_size 25")
    out = tmp_path / "preds.csv"
    assert predict_cli.main(["--ckpt", str(known_k_run[0]), str(mini_root / "35_Generate_PixArt"), "--device", "cpu",
                             "--out", str(out)]) == 2
    assert one_error(capsys.readouterr().err) == (
        "error: out of GPU memory while predicting with --batch_size 128 (one allocation asked for 2.00 GiB): lower "
        "--batch_size, e.g. --batch_size 64")
    assert not out.exists()

