from __future__ import annotations

import pytest

from pipeline.config import ConfigError, RunConfig, load_config


@pytest.mark.parametrize("data, field", [
    ({"bogus": 1}, "bogus"),
    ({"tag": {"eta": 1.5}}, "tag.eta"),
    ({"tag": {"eta": -0.1}}, "tag.eta"),
    ({"caption": {"n_captions": 0}}, "caption.n_captions"),
    ({"caption": {"n_captions": "ten"}}, "caption.n_captions"),
    ({"caption": {"nucleus": 0.9}}, "caption.nucleus"),
    ({"dataset": {"kind": "coco"}}, "dataset"),
    ({"tag": {"tagger": "rtagger"}}, "tag"),
    ({"name": "../escape"}, "name"),
    ({"part_size": 0}, "part_size"),
])
def test_bad_configs_name_the_field(data, field):
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert field in str(info.value)


def test_defaults_follow_the_paper():
    cfg = RunConfig()
    assert cfg.caption.model_id == "Salesforce/blip-image-captioning-large"
    assert (cfg.caption.n_captions, cfg.caption.top_p, cfg.caption.num_beams) == (10, 0.9, 3)
    assert (cfg.caption.min_new_tokens, cfg.caption.max_new_tokens, cfg.caption.repetition_penalty) == (5, 20, 1.1)
    assert cfg.tag.eta == 0.2 and cfg.match.max_pairs_per_chunk == 100


def test_runtime_fields_do_not_enter_keys():
    a, b = RunConfig(), RunConfig(workers=8, tag={"batch_size": 32})
    assert a.tag.key_fields() == b.tag.key_fields()
