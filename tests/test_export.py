"""export.py's folder and card on the shared tiny run: the card describes the run's own
class table, task and data (and says what report.md says when no novel prototype holds a
test image); files are readable by everyone; a failed push says what to do about an upload
and leaves the card naming no hub repo."""
import json
import os
import socket
import stat

import pytest

import export as export_cli
from inference.export import model_card
from inference.hub import HubError, upload_advice


@pytest.fixture(scope="module")
def exported(known_k_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export_card") / "cal"
    previous = os.umask(0o022)
    try:
        assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(folder)]) == 0
    finally:
        os.umask(previous)
    return folder


def test_export_files_are_world_readable(exported):
    assert stat.S_IMODE(exported.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in exported.iterdir()}
    assert modes == {"model.safetensors": 0o644, "config.json": 0o644, "README.md": 0o644}


def test_the_card_describes_the_runs_own_class_table(exported):
    info = json.loads((exported / "config.json").read_text())
    card = (exported / "README.md").read_text()
    assert "# CAL deepfake attribution: OWDFA-40 protocol 1" in card and "41 classes" in card
    assert f"epoch {info['epoch']}" in card and "hf://" not in card, "no hub id before a push"
    rows = [{"label": i, "index": i * 2, "name": f"C{i}", "family": "Swap", "known": i < 2, "real": i == 0}
            for i in range(5)]
    custom = {**info, "classes": rows, "num_classes": 5, "num_known": 2, "cluster_assignment": [],
              "config": {**info["config"], "classes_file": "/lab/my5.csv", "known_classes": [0, 2]}}
    card = model_card(custom)
    assert "OWDFA-40" not in card and "# CAL deepfake attribution: my5.csv known 0,2" in card
    assert "Class table my5.csv (5 classes), known 0,2: 2 known (labelled) and 3 novel classes" in card
    assert "Novel classes: C2, C3, C4." in card


def test_card_and_report_say_the_same_when_no_novel_prototype_holds_a_test_image(exported):
    from inference.evaluation_report import report_markdown
    from inference.names import no_novel_cluster

    info = json.loads((exported / "config.json").read_text())
    known_only = {**info, "cluster_assignment": [a for a in info["cluster_assignment"]
                                                 if a["prototype"] < info["num_known"]],
                  "metrics": {**info["metrics"], "novel_prototypes_used": 0}}
    novel = info["valid_prototypes"] - info["num_known"]
    clusters = [["prototype", "name", "set", "images"]] + [[j, f"novel-{j}", "novel", 0] for j in range(novel)]
    report = report_markdown({"num_test": 4, "all_acc": 0.5}, [["label"]], clusters, None, [], "preds.csv")
    card = model_card(known_only)
    for text in (card, report):
        section = text.split("## Novel clusters")[1].split("## ")[0].strip()
        assert section == no_novel_cluster(novel)
    matched = {"prototype": info["num_known"], "label": info["num_known"], "images": 2, "predicted": 3, "name": "n"}
    card = model_card({**known_only, "cluster_assignment": [matched], "metrics": {**info["metrics"],
                                                                                   "novel_prototypes_used": 1}})
    assert f"| {info['num_known']} | n | 2 of 3 |" in card and no_novel_cluster(novel) not in card


class Refused(Exception):
    def __init__(self, status):
        super().__init__(f"{status} Client Error")
        self.response = type("Response", (), {"status_code": status})()


@pytest.mark.parametrize("error, advice", [
    (Refused(401), "hf auth login"), (Refused(403), "write access to lab"), (Refused(404), "check the repo id"),
    (ConnectionError("connection reset"), "check the network"),
])
def test_a_failed_push_advises_on_the_upload_and_keeps_the_card(known_k_run, exported, monkeypatch, capsys, error,
                                                                 advice):
    import huggingface_hub
    from huggingface_hub import constants

    class Api:
        def create_repo(self, *args, **kwargs):
            raise error

    before = (exported / "README.md").read_text()
    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # answers the reachability probe
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(exported),
                                "--push_to_hub", "lab/cal-p1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot push") and "\n" not in err and advice in err
    assert "--ckpt DIR" not in err and "download" not in err
    assert (exported / "README.md").read_text() == before and "hf://lab/cal-p1" not in before


def test_an_unreachable_hub_on_upload_gives_upload_advice(exported, monkeypatch, capsys):
    from huggingface_hub import constants

    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as caught:
        from inference.hub import push
        push(exported, "lab/cal-p1")
    assert "--push_to_hub again" in str(caught.value) and "--ckpt DIR" not in str(caught.value)
    assert "log in" in upload_advice(type("LocalTokenNotFoundError", (Exception,), {})(), "lab/x")


@pytest.mark.parametrize("out, message", [("cal.json", "names a .json file, but it takes a folder"),
                                          ("a_file", "is a file, but it takes a folder")])
def test_out_must_be_a_folder(known_k_run, tmp_path, capsys, out, message):
    (tmp_path / "a_file").write_text("")
    assert export_cli.main(["--ckpt", str(known_k_run[0]), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "e.g. --out" in err
