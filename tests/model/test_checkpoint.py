"""Our checkpoints and the loading of pretrained parts (backbone, text encoder) by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import RLIPv2Config, build_model
from model.backbone import Backbone, hf_resnet_to_torchvision
from model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint

from .conftest import ENTITIES, RELATIONS, make_images, make_targets


def test_save_and_load_round_trip(tmp_path: Path, tiny_models: dict) -> None:
    model = tiny_models["rtagger"]
    path = save_checkpoint(tmp_path / "tagger.pt", model, {"entity_labels": ["person", "horse"]})
    payload = torch.load(path, weights_only=True)  # plain containers only
    assert payload["versions"]["torch"] == torch.__version__
    loaded, metadata = load_checkpoint(path)
    assert metadata == {"entity_labels": ["person", "horse"]}
    assert loaded.config == model.config and not loaded.training
    with torch.no_grad():
        a = model(make_images(), (ENTITIES, RELATIONS), make_targets())
        b = loaded(make_images(), (ENTITIES, RELATIONS), make_targets())
    torch.testing.assert_close(a["pred_verb_logits"], b["pred_verb_logits"])


def test_checkpoint_embeds_a_hub_tokenizer(tmp_path: Path) -> None:
    """A checkpoint of a model whose tokenizer came from files loads without those files."""
    from model.text_encoder import build_char_tokenizer

    tok_dir = tmp_path / "tok"
    build_char_tokenizer().save_pretrained(tok_dir)
    config = RLIPv2Config.tiny("parsed", tokenizer=str(tok_dir))
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "m.pt", model)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    loaded, _ = load_checkpoint(path)
    assert loaded.text_encoder.tokenizer("sit on")["input_ids"] == model.text_encoder.tokenizer("sit on")["input_ids"]


def test_foreign_or_missing_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")
    torch.save({"model": {}}, tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="not a relfactory-rlipv2"):
        read_checkpoint(tmp_path / "official.pt")


def _tiny_hf_resnet():  # type: ignore[no-untyped-def]
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(1)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1],
                          layer_type="bottleneck", downsample_in_first_stage=False)
    return ResNetModel(config).eval()


def test_backbone_loads_hugging_face_resnet_folder_and_torchvision_file(tmp_path: Path) -> None:
    hf = _tiny_hf_resnet()
    # Give the frozen norms non-trivial statistics so a wrong mapping would show.
    for module in hf.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    hf.save_pretrained(tmp_path / "hf-resnet")
    backbone = Backbone("resnet_tiny", (1, 1, 1, 1), 8).eval()
    backbone.load_pretrained(str(tmp_path / "hf-resnet"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = hf(x, output_hidden_states=True).hidden_states
        ours = backbone.body(x)
    for got, want in zip(ours, expected[2:]):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    torch.save(hf_resnet_to_torchvision(hf.state_dict()), tmp_path / "resnet.pth")
    other = Backbone("resnet_tiny", (1, 1, 1, 1), 8).eval()
    other.load_pretrained(str(tmp_path / "resnet.pth"))
    torch.testing.assert_close(other.body.layer3[0].conv2.weight, backbone.body.layer3[0].conv2.weight)


def test_backbone_rejects_weights_of_another_shape(tmp_path: Path) -> None:
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="do not fit"):
        Backbone("resnet_tiny", (1, 1, 1, 1), 8).load_pretrained(str(tmp_path / "bad.pth"))


def test_model_takes_pretrained_text_encoder_and_backbone_by_path(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    from model.text_encoder import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    text = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=1,
                                num_attention_heads=4, intermediate_size=96, max_position_embeddings=64))
    text.save_pretrained(tmp_path / "text")
    tokenizer.save_pretrained(tmp_path / "text")
    _tiny_hf_resnet().save_pretrained(tmp_path / "resnet")

    config = RLIPv2Config.tiny("parsed", text_encoder=str(tmp_path / "text"), text_encoder_config=None,
                               tokenizer=None, backbone_weights=str(tmp_path / "resnet"))
    model = build_model(config)
    torch.testing.assert_close(model.text_encoder.model.embeddings.word_embeddings.weight,
                               text.embeddings.word_embeddings.weight)
    hf_stem = _tiny_hf_resnet().embedder.embedder.convolution.weight
    torch.testing.assert_close(model.backbone.body.conv1.weight, hf_stem)
    # The fusion's language layers are fresh layers of the same kind, not copies.
    fusion_layer = model.encoder.language_layers[0].layer
    assert type(fusion_layer) is type(text.encoder.layer[0])
    assert not torch.equal(fusion_layer.attention.self.query.weight, text.encoder.layer[0].attention.self.query.weight)
