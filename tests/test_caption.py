"""Caption stage: blip (tiny random BLIP), oracle and lavis backends."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
import torch
from PIL import Image

from pipeline.config import CaptionConfig, DatasetConfig, RunConfig
from storage.schemas import CAPTION
from stages.caption import run_caption
from stages.captioners import BlipCaptioner, CaptionerLoadError, LavisCaptioner, batch_seed, build_captioner
from stages.captioners import lavis as lavis_backend
from stages.captioners.base import resolve_device
from stages.captioners.blip import load_blip
from stages.captioners.tiny import build_tiny_blip, save_tiny_blip

COLOURS = [(220, 30, 30), (30, 200, 40), (20, 40, 230), (240, 240, 20), (10, 10, 10)]


@pytest.fixture(scope="module")
def tiny_blip() -> tuple:
    return build_tiny_blip(seed=0)


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for i, colour in enumerate(COLOURS):
        img = Image.new("RGB", (48 + 8 * i, 40), colour)
        img.paste((255 - colour[0], 128, colour[2]), (5, 5, 20, 25))
        img.save(root / f"{i + 1:03d}.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return root


def ingest_rows(ids: list[int], names: dict[int, str] | None = None) -> list[dict]:
    names = names or {}
    return [
        {"image_id": i, "file_name": names.get(i, f"{i:03d}.png"), "width": 1, "height": 1,
         "dataset": "test", "data_split": "train", "objects": []}
        for i in ids
    ]


def make_cfg(image_dir: Path, seed: int = 0, **caption: object) -> RunConfig:
    caption = {"device": "cpu", "batch_size": 2, **caption}
    return RunConfig(
        seed=seed,
        dataset=DatasetConfig(kind="coco-format", annotations=image_dir / "unused.json", images=image_dir),
        caption=CaptionConfig(**caption),
    )


def run_blip(tiny_blip: tuple, cfg: RunConfig, rows: list[dict]):
    model, processor = tiny_blip
    return run_caption({"ingest": rows}, cfg, captioner=BlipCaptioner(model, processor, cfg.caption))


def captions_by_image(rows: list[dict]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(row["image_id"], []).append(row["caption"])
    return out


def test_blip_rows_follow_schema_with_n_captions_each(tiny_blip, image_dir):
    cfg = make_cfg(image_dir, seed=7, n_captions=4)
    out = run_blip(tiny_blip, cfg, ingest_rows([3, 1, 2]))

    assert not out.errors
    assert len(out.rows) == 3 * 4
    pa.Table.from_pylist(out.rows, schema=CAPTION)  # raises on a missing or mistyped column
    assert all(set(r) == set(CAPTION.names) for r in out.rows)
    assert [(r["image_id"], r["caption_index"]) for r in out.rows] == [(i, k) for i in (1, 2, 3) for k in range(4)]
    assert {(r["captioner"], r["model_id"], r["seed"]) for r in out.rows} == {
        ("blip", "Salesforce/blip-image-captioning-large", 7)
    }
    decoding = json.loads(out.rows[0]["decoding"])
    assert decoding == {
        "strategy": "nucleus", "do_sample": True, "top_p": 0.9, "top_k": 50, "num_return_sequences": 4,
        "min_new_tokens": 5, "max_new_tokens": 20, "repetition_penalty": 1.1, "prompt": "a picture of ",
        "batch_size": 2, "dtype": "float32",
    }
    assert all(r["caption"] == " ".join(r["caption"].split()) and r["caption"] for r in out.rows)


def test_blip_seeding_is_reproducible_and_order_independent(tiny_blip, image_dir):
    ids = [1, 2, 3, 4, 5]
    cfg = make_cfg(image_dir, seed=11, n_captions=3)
    first = run_blip(tiny_blip, cfg, ingest_rows(ids)).rows

    torch.manual_seed(12345)  # the caller's RNG state must not leak into captions
    shuffled = ingest_rows(ids)
    random.Random(0).shuffle(shuffled)
    again = run_blip(tiny_blip, cfg, shuffled).rows
    assert again == first

    other = run_blip(tiny_blip, make_cfg(image_dir, seed=12, n_captions=3), ingest_rows(ids)).rows
    assert captions_by_image(other) != captions_by_image(first)
    # Several samples of one image differ from each other (sampling, not greedy).
    assert any(len(set(caps)) > 1 for caps in captions_by_image(first).values())


def test_batch_seed_depends_on_seed_and_batch_ids_only():
    assert batch_seed(0, [1, 2]) == batch_seed(0, [1, 2])
    assert len({batch_seed(0, [1, 2]), batch_seed(1, [1, 2]), batch_seed(0, [1, 3]), batch_seed(0, [2, 1])}) == 4
    assert 0 <= batch_seed(2**40, [10**12]) < 2**63


def spy_generate(model, monkeypatch) -> list[dict]:
    calls: list[dict] = []
    real = model.generate

    def spy(**kwargs):
        calls.append({k: v for k, v in kwargs.items() if k not in ("pixel_values", "input_ids")})
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    return calls


def test_single_caption_uses_beam_search(tiny_blip, image_dir, monkeypatch):
    calls = spy_generate(tiny_blip[0], monkeypatch)
    cfg = make_cfg(image_dir, n_captions=1)
    out = run_blip(tiny_blip, cfg, ingest_rows([1, 2, 3]))

    assert [r["caption_index"] for r in out.rows] == [0, 0, 0]
    assert len(calls) == 2  # batches of 2 + 1
    assert all(c["do_sample"] is False and c["num_beams"] == 3 and c["num_return_sequences"] == 1 for c in calls)
    assert "top_p" not in calls[0]
    assert json.loads(out.rows[0]["decoding"])["strategy"] == "beam"


def test_sampling_passes_decoding_parameters(tiny_blip, image_dir, monkeypatch):
    calls = spy_generate(tiny_blip[0], monkeypatch)
    cfg = make_cfg(image_dir, n_captions=5, top_p=0.8, min_new_tokens=3, max_new_tokens=9, repetition_penalty=1.3)
    out = run_blip(tiny_blip, cfg, ingest_rows([1]))

    assert calls == [
        {"do_sample": True, "top_p": 0.8, "top_k": 50, "num_return_sequences": 5,
         "min_new_tokens": 3, "max_new_tokens": 9, "repetition_penalty": 1.3}
    ]
    assert len(out.rows) == 5
    assert all(len(r["caption"].split()) <= 9 for r in out.rows)


def test_prompt_is_stripped_and_empty_caption_kept(tiny_blip, image_dir, monkeypatch):
    model, processor = tiny_blip
    tok = processor.tokenizer
    prompt = tok("a picture of ").input_ids[:-1]  # what BLIP feeds the decoder: [CLS]→BOS below
    prompt[0] = tok.bos_token_id
    words = tok.convert_tokens_to_ids(["dog", "sitting", "on", "bench"])
    seqs = [prompt + words + [tok.sep_token_id], prompt + [tok.sep_token_id]]
    width = max(map(len, seqs))
    fixed = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    monkeypatch.setattr(model, "generate", lambda **kwargs: fixed)

    out = run_blip(tiny_blip, make_cfg(image_dir, n_captions=2), ingest_rows([4]))
    assert [r["caption"] for r in out.rows] == ["dog sitting on bench", ""]


def test_bad_images_become_error_rows(tiny_blip, image_dir):
    rows = ingest_rows([1, 2, 3, 4], names={2: "corrupt.jpg", 3: "missing.png", 4: "../escape.png"})
    out = run_blip(tiny_blip, make_cfg(image_dir, n_captions=2), rows)

    assert sorted({r["image_id"] for r in out.rows}) == [1]
    assert [(e.image_id, e.stage, e.reason) for e in out.errors] == [
        (2, "caption", "corrupt_image"), (3, "caption", "missing_image"), (4, "caption", "unsafe_path"),
    ]
    assert all(e.detail for e in out.errors)


def test_blip_loads_from_a_local_directory_once(tmp_path, image_dir):
    model_dir = save_tiny_blip(tmp_path / "tiny-blip")
    cfg = make_cfg(image_dir, seed=3, n_captions=2, model_id=str(model_dir))
    load_blip.cache_clear()
    first = run_caption({"ingest": ingest_rows([1, 2])}, cfg)
    second = run_caption({"ingest": ingest_rows([1, 2])}, cfg)

    assert load_blip.cache_info().misses == 1 and load_blip.cache_info().hits == 1
    assert len(first.rows) == 4 and first.rows == second.rows
    assert first.rows[0]["model_id"] == str(model_dir)
    load_blip.cache_clear()


def test_unloadable_model_gives_one_clear_error(tmp_path, image_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = make_cfg(image_dir, model_id="relfactory-test/no-such-blip")
    with pytest.raises(CaptionerLoadError) as exc:
        run_caption({"ingest": ingest_rows([1])}, cfg)
    message = str(exc.value)
    assert "relfactory-test/no-such-blip" in message
    assert "hf download relfactory-test/no-such-blip" in message
    assert "HF_HOME" in message and "caption.model_id" in message

    empty_dir = tmp_path / "empty-model"
    empty_dir.mkdir()
    with pytest.raises(CaptionerLoadError, match="does not hold a loadable BLIP"):
        build_captioner(make_cfg(image_dir, model_id=str(empty_dir)))


def write_captions(path: Path, annotations: list[dict]) -> Path:
    path.write_text(json.dumps({"images": [], "annotations": annotations}))
    return path


def test_oracle_takes_first_captions_by_annotation_id(tmp_path):
    captions = write_captions(
        tmp_path / "captions_mini.json",
        [
            {"id": 30, "image_id": 1, "caption": "third  caption\n"},
            {"id": 10, "image_id": 1, "caption": "A man riding a horse."},
            {"id": 20, "image_id": 1, "caption": " second one "},
            {"id": 5, "image_id": 2, "caption": "only one"},
            {"id": 6, "image_id": "bad", "caption": "ignored"},
        ],
    )
    # The oracle needs no pixels, but the stage still checks every image is readable.
    root = tmp_path / "images"
    root.mkdir()
    for i in (1, 2, 3):
        Image.new("RGB", (8, 8)).save(root / f"{i:03d}.png")
    cfg = make_cfg(root, backend="oracle", captions_file=captions, n_captions=2)
    out = run_caption({"ingest": ingest_rows([3, 2, 1])}, cfg)

    assert [(r["image_id"], r["caption_index"], r["caption"]) for r in out.rows] == [
        (1, 0, "A man riding a horse."), (1, 1, "second one"), (2, 0, "only one"),
    ]
    assert {r["model_id"] for r in out.rows} == {"captions_mini.json"}
    assert {r["captioner"] for r in out.rows} == {"oracle"}
    assert json.loads(out.rows[0]["decoding"])["n_captions"] == 2
    assert [(e.image_id, e.reason) for e in out.errors] == [(3, "no_captions")]
    pa.Table.from_pylist(out.rows, schema=CAPTION)


def test_oracle_without_captions_file_is_a_clear_error(tmp_path):
    with pytest.raises(CaptionerLoadError, match="caption.captions_file"):
        build_captioner(make_cfg(tmp_path, backend="oracle"))
    with pytest.raises(CaptionerLoadError, match="not found"):
        build_captioner(make_cfg(tmp_path, backend="oracle", captions_file=tmp_path / "nope.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CaptionerLoadError, match="cannot read"):
        build_captioner(make_cfg(tmp_path, backend="oracle", captions_file=broken))


def test_demo_dataset_with_bundled_captions_and_tiny_blip(tiny_blip):
    from pipeline.datasets import read_dataset

    cfg = RunConfig(caption=CaptionConfig(backend="oracle", n_captions=2, device="cpu"))
    ingest = read_dataset(cfg.dataset).rows
    ids = sorted(r["image_id"] for r in ingest)

    oracle = run_caption({"ingest": ingest}, cfg)  # no captions_file: the demo ships its own
    assert not oracle.errors
    assert sorted(captions_by_image(oracle.rows)) == ids
    assert all(1 <= len(c) <= 2 for c in captions_by_image(oracle.rows).values())

    cfg.caption.backend = "blip"
    blip = run_blip(tiny_blip, cfg, ingest)  # real photos of assorted sizes
    assert not blip.errors
    assert {i: len(c) for i, c in captions_by_image(blip.rows).items()} == {i: 2 for i in ids}


@pytest.mark.shared_data
def test_oracle_on_coco_mini(shared_data):
    coco = shared_data / "coco-mini"
    captions_file = coco / "annotations" / "captions_train2017.json"
    data = json.loads(captions_file.read_text())
    ids = sorted(img["id"] for img in data["images"])
    human: dict[int, list[tuple[int, str]]] = {}
    for ann in data["annotations"]:
        human.setdefault(ann["image_id"], []).append((ann["id"], ann["caption"]))

    cfg = make_cfg(coco / "train2017", backend="oracle", captions_file=captions_file, n_captions=10)
    names = {img["id"]: img["file_name"] for img in data["images"]}
    out = run_caption({"ingest": ingest_rows(ids, names)}, cfg)

    assert not out.errors
    assert len(out.rows) == len(data["annotations"])  # 5 per image: fewer than the 10 asked for
    by_image = captions_by_image(out.rows)
    assert sorted(by_image) == ids
    for image_id in ids:
        expected = [" ".join(c.split()) for _, c in sorted(human[image_id])]
        assert by_image[image_id] == expected


class FakeLavisModel(torch.nn.Module):
    """Stands in for a LAVIS BlipCaption: records generate() arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.prompt = "a picture of "
        self.prompt_length = 4
        self.tokenizer = lambda text: SimpleNamespace(input_ids=[0] * (len(text.split()) + 2))
        self.calls: list[dict] = []

    def generate(self, samples: dict, **kwargs) -> list[str]:
        self.calls.append({"batch": samples["image"].shape[0], **kwargs})
        return [f"  caption   {i} " for i in range(samples["image"].shape[0])]


def test_lavis_adapter_maps_decoding_parameters():
    transform = lambda img: torch.zeros(3, 4, 4)  # noqa: E731
    images = [Image.new("RGB", (8, 8))] * 2

    model = FakeLavisModel()
    sampled = LavisCaptioner(model, transform, CaptionConfig(n_captions=3), "blip_caption:large_coco")
    captions = sampled.caption([1, 2], images, seed=0)
    assert captions == [["caption 0", "caption 1", "caption 2"], ["caption 3", "caption 4", "caption 5"]]
    assert model.calls == [
        {"batch": 6, "use_nucleus_sampling": True, "num_beams": 1, "max_length": 24, "min_length": 9,
         "top_p": 0.9, "repetition_penalty": 1.1}
    ]

    model = FakeLavisModel()
    beam = LavisCaptioner(model, transform, CaptionConfig(n_captions=1, prompt="a photo of "), "blip_caption:large_coco")
    assert beam.caption([1, 2], images, seed=0) == [["caption 0"], ["caption 1"]]
    assert model.prompt == "a photo of " and model.prompt_length == 4
    assert model.calls[0]["use_nucleus_sampling"] is False and model.calls[0]["num_beams"] == 3
    assert beam.decoding["strategy"] == "beam"


def test_lavis_missing_package_explains_separate_env(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lavis(name, *args, **kwargs):
        if name == "lavis" or name.startswith("lavis."):
            raise ImportError("No module named 'lavis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lavis)
    lavis_backend.load_lavis.cache_clear()
    with pytest.raises(CaptionerLoadError, match="separate environment") as exc:
        build_captioner(make_cfg(tmp_path, backend="lavis"))
    assert "salesforce-lavis" in str(exc.value)
    assert lavis_backend.lavis_model_name("Salesforce/blip-image-captioning-large") == ("blip_caption", "large_coco")
    with pytest.raises(CaptionerLoadError, match="<name>:<model_type>"):
        lavis_backend.lavis_model_name("not-a-lavis-id")


def test_auto_device_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_oracle_still_reports_unreadable_images(tmp_path, image_dir):
    captions = write_captions(tmp_path / "c.json", [{"id": 1, "image_id": 1, "caption": "a red square"},
                                                   {"id": 2, "image_id": 9, "caption": "a broken file"}])
    cfg = make_cfg(image_dir, backend="oracle", captions_file=captions)
    out = run_caption({"ingest": ingest_rows([1, 9], {9: "corrupt.jpg"})}, cfg)
    assert [r["image_id"] for r in out.rows] == [1]
    assert [(e.image_id, e.reason) for e in out.errors] == [(9, "corrupt_image")]
