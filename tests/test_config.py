"""Config loading: defaults, experiment files, key=value overrides, validation."""
import json

import pytest

from utils.config import ConfigError, load_config


def test_base_defaults_follow_method_md_but_the_documented_departures():
    """METHOD.md's values, except the CAL temperatures that go with cosine logits (docs/configuration.md)."""
    cfg = load_config()
    assert (cfg.lr, cfg.weight_decay, cfg.lr_step, cfg.lr_gamma) == (2e-4, 1e-3, 10, 0.05)
    assert (cfg.epochs, cfg.batch_size, cfg.seed, cfg.split_seed) == (50, 128, 2025, 2025)
    assert (cfg.cal_tau_student, cfg.cal_tau_teacher, cfg.cal_ccr_weight, cfg.cal_gamma, cfg.cal_pseudo_start) == (0.1, 0.05, 0.2, 0.95, 5)
    assert cfg.cal_reg_weight == 1.25
    assert (cfg.budget_real, cfg.budget_known, cfg.budget_novel, cfg.real_source_cap) == (20000, 2000, 1500, 10000)
    assert (cfg.prop_train_labels, cfg.train_fraction, cfg.image_size) == (0.75, 0.8, 256)
    assert cfg.cal_prune_coverage == 0.9544 and cfg.backbone == "resnet50"


def test_experiment_file_and_overrides():
    cfg = load_config("configs/owdfa40_p2.py", ["epochs=3", "lr=1e-3", "backbone=resnet18", "acr=false",
                                                "dataset_root=/some/where", "pretrained=0"])
    assert cfg.protocol == 2 and cfg.experiment == "owdfa40_p2"
    assert cfg.epochs == 3 and cfg.lr == 1e-3 and cfg.backbone == "resnet18"
    assert cfg.cal_acr is False and cfg.pretrained is False and cfg.dataset_root == "/some/where"
    assert isinstance(load_config(None, ["lr=1"]).lr, float)  # an int literal for a float key


def test_wok_configs_enable_unknown_k():
    for p in (1, 2, 3):
        cfg = load_config(f"configs/owdfa40_p{p}_wok.py")
        assert cfg.unknown_k is True and cfg.protocol == p


def test_owdfa_configs_name_their_class_table_by_absolute_path(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)  # the table is found from any working directory
    for p in (1, 2):
        cfg = load_config(Path(__file__).parents[1] / "configs" / f"owdfa_p{p}.py")
        assert cfg.protocol == p and Path(cfg.classes_file).is_file() and Path(cfg.classes_file).is_absolute()
        assert Path(cfg.classes_file).name == f"owdfa_p{p}_classes.csv" and cfg.budget_scale == 1.0


@pytest.mark.parametrize("override, words", [
    ("epoch=3", ["unknown config key 'epoch'", "did you mean 'epochs'"]),
    ("epochs=three", ["epochs='three'", "int"]),
    ("acr=maybe", ["acr='maybe'", "bool"]),
    ("protocol=0", ["protocol=0", ">= 1"]),
    ("known_classes=0,3,3", ["known_classes=(0, 3, 3)", "distinct"]),
    ("known_classes=a,b", ["known_classes='a,b'", "integers like 0,1,3"]),
    ("epochs=0", ["epochs=0", ">= 1"]),
    ("image_size=-32", ["image_size=-32", "[1, 4096]"]),
    ("gamma=1.5", ["gamma=1.5", "[0.0, 1.0]"]),
    ("ccr_weight=-0.2", ["ccr_weight=-0.2", ">= 0"]),
    ("budget_scale=0", ["budget_scale=0", "positive"]),
    ("device=tpu", ["device='tpu'"]),
    ("nonfinite_loss=ignore", ["nonfinite_loss"]),
    ("input_std=0.2,0,0.2", ["input_std=(0.2, 0.0, 0.2)", "3 numbers in [0.001, 1]"]),
    ("input_mean=0.5,0.5,255", ["input_mean=(0.5, 0.5, 255.0)", "3 numbers in [0, 1]"]),
    ("resume=/does/not/exist", ["resume=", "checkpoints/last.pt"]),
    ("noequals", ["key=value"]),
])
def test_bad_values_are_one_line_errors_naming_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        load_config("configs/owdfa40_p1.py", [override])
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_key_in_experiment_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from configs.base import *\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        load_config(bad)


def test_environment_supplies_dataset_root(monkeypatch):
    monkeypatch.setenv("DATASET_ROOT", "/from/env")
    assert load_config("configs/owdfa40_p1.py").dataset_root == "/from/env"
    assert load_config("configs/owdfa40_p1.py", ["dataset_root=/cli"]).dataset_root == "/cli"


def test_resolved_json_reloads_as_a_new_run(tmp_path):
    cfg = load_config("configs/owdfa40_p3.py", ["epochs=7", "run_dir=/old/run"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(cfg)))
    again = load_config(path)
    assert again.epochs == 7 and again.protocol == 3 and again.run_dir == ""


def test_only_python_experiment_files_and_json_configs_are_read(tmp_path):
    marker = tmp_path / "marker"
    yaml = tmp_path / "config.yaml"
    yaml.write_text(f"open({str(marker)!r}, 'w')\nepochs = 3\n")  # Python disguised as YAML
    with pytest.raises(ConfigError, match="neither an experiment .py file nor a run's config.json"):
        load_config(yaml)
    assert not marker.exists(), "the file was executed"
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        load_config(tmp_path / "config.json")
