"""Bad configurations are refused before any work starts, naming the field."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from tests.reliability.helpers import demo_config, write_config

BAD_CONFIGS = [
    pytest.param({"bogus_key": 1}, "bogus_key", id="unknown-top-level-key"),
    pytest.param({"tag": {"etaa": 0.3}}, "tag.etaa", id="unknown-nested-key"),
    pytest.param({"part_size": "two"}, "part_size", id="wrong-type-int"),
    pytest.param({"caption": {"n_captions": [5]}}, "caption.n_captions", id="wrong-type-list"),
    pytest.param({"fsync": "sometimes"}, "fsync", id="wrong-type-bool"),
    pytest.param({"tag": {"eta": 1.5}}, "tag.eta", id="eta-above-1"),
    pytest.param({"tag": {"eta": -0.01}}, "tag.eta", id="eta-below-0"),
    pytest.param({"tag": {"eta": "high"}}, "tag.eta", id="eta-not-a-number"),
    pytest.param({"caption": {"n_captions": 0}}, "caption.n_captions", id="ncap-0"),
    pytest.param({"caption": {"n_captions": -3}}, "caption.n_captions", id="ncap-negative"),
    pytest.param({"dataset": {"kind": "imagenet"}}, "dataset.kind", id="unknown-dataset-kind"),
]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else value
    return out


@pytest.mark.parametrize("override, field", BAD_CONFIGS)
def test_bad_config_file_is_refused_before_any_work(tmp_path, capsys, override, field):
    output = tmp_path / "out"
    config = write_config(tmp_path / "run.json", _merge(demo_config(output), override))
    code = main(["label", "--config", str(config), "--orchestrator", "none"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"  {field}:" in err, err
    assert "Traceback" not in err
    assert not output.exists(), "a refused config must not create the output (no lock, no ingest)"


@pytest.mark.parametrize("flags, field", [
    (["--eta", "1.01"], "tag.eta"),
    (["--eta", "-1"], "tag.eta"),
    (["--n-cap", "0"], "caption.n_captions"),
    (["--part-size", "0"], "part_size"),
])
def test_bad_command_line_values_are_refused_naming_the_field(tmp_path, capsys, flags, field):
    output = tmp_path / "out"
    config = write_config(tmp_path / "run.json", demo_config(output))
    assert main(["label", "--config", str(config), "--orchestrator", "none", *flags]) == 2
    assert f"  {field}:" in capsys.readouterr().err
    assert not output.exists()


def test_yaml_config_with_several_problems_names_every_field(tmp_path, capsys):
    output = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(f"name: rel\noutput: {output}\nexecutor: local\ntag:\n  eta: 7\n"
                      "caption:\n  n_captions: 0\n  colour: blue\n")
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 2
    err = capsys.readouterr().err
    for field in ("tag.eta", "caption.n_captions", "caption.colour"):
        assert f"  {field}:" in err
    assert not output.exists()


@pytest.mark.parametrize("content, message", [
    ("[1, 2, 3]", "mapping at the top level"),
    ("{not json", "cannot read config"),
])
def test_unreadable_config_file_is_a_clear_error(tmp_path, capsys, content, message):
    config = tmp_path / "run.json"
    config.write_text(content)
    assert main(["label", "--config", str(config), "--orchestrator", "none"]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    assert main(["label", "--config", str(tmp_path / "nope.json"), "--orchestrator", "none"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_remote_workers_revalidate_the_config(tmp_path):
    """Ray tasks rebuild the config from JSON: a tampered payload is refused there too, never half-used."""
    from pydantic import ValidationError

    from pipeline.executors import _remote_execute_part

    payload = json.loads(json.dumps(demo_config(tmp_path / "out")))
    payload["tag"]["eta"] = 3.0
    with pytest.raises(ValidationError, match="tag.eta|eta"):
        _remote_execute_part(payload, "tag", 0, {})
    assert not (tmp_path / "out").exists()
