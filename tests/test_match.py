"""Match stage: synonym tables, the token-tuple matcher and candidate pair chunks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.config import ConfigError, RunConfig
from storage.schemas import MATCH
from stages.match import run_match
from stages.vocab import EntityMatcher, build_matcher, load_table, matcher_for, plural_forms, tokenize

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

# The category names of Objects365 v2's official annotation files, typos and
# trailing spaces included (datasets carry them verbatim).
OBJECTS365_V2_CLASSES = (
    "Person", "Sneakers", "Chair", "Other Shoes", "Hat", "Car", "Lamp", "Glasses", "Bottle", "Desk", "Cup",
    "Street Lights", "Cabinet/shelf", "Handbag/Satchel", "Bracelet", "Plate", "Picture/Frame", "Helmet", "Book",
    "Gloves", "Storage box", "Boat", "Leather Shoes", "Flower", "Bench", "Potted Plant", "Bowl/Basin", "Flag",
    "Pillow", "Boots", "Vase", "Microphone", "Necklace", "Ring", "SUV", "Wine Glass", "Belt", "Moniter/TV",
    "Backpack", "Umbrella", "Traffic Light", "Speaker", "Watch", "Tie", "Trash bin Can", "Slippers", "Bicycle",
    "Stool", "Barrel/bucket", "Van", "Couch", "Sandals", "Bakset", "Drum", "Pen/Pencil", "Bus", "Wild Bird",
    "High Heels", "Motorcycle", "Guitar", "Carpet", "Cell Phone", "Bread", "Camera", "Canned", "Truck",
    "Traffic cone", "Cymbal", "Lifesaver", "Towel", "Stuffed Toy", "Candle", "Sailboat", "Laptop", "Awning", "Bed",
    "Faucet", "Tent", "Horse", "Mirror", "Power outlet", "Sink", "Apple", "Air Conditioner", "Knife",
    "Hockey Stick", "Paddle", "Pickup Truck", "Fork", "Traffic Sign", "Ballon", "Tripod", "Dog", "Spoon", "Clock",
    "Pot", "Cow", "Cake", "Dinning Table", "Sheep", "Hanger", "Blackboard/Whiteboard", "Napkin", "Other Fish",
    "Orange/Tangerine", "Toiletry", "Keyboard", "Tomato", "Lantern", "Machinery Vehicle", "Fan", "Green Vegetables",
    "Banana", "Baseball Glove", "Airplane", "Mouse", "Train", "Pumpkin", "Soccer", "Skiboard", "Luggage",
    "Nightstand", "Tea pot", "Telephone", "Trolley", "Head Phone", "Sports Car", "Stop Sign", "Dessert", "Scooter",
    "Stroller", "Crane", "Remote", "Refrigerator", "Oven", "Lemon", "Duck", "Baseball Bat", "Surveillance Camera",
    "Cat", "Jug", "Broccoli", "Piano", "Pizza", "Elephant", "Skateboard", "Surfboard", "Gun",
    "Skating and Skiing shoes", "Gas stove", "Donut", "Bow Tie", "Carrot", "Toilet", "Kite", "Strawberry",
    "Other Balls", "Shovel", "Pepper", "Computer Box", "Toilet Paper", "Cleaning Products", "Chopsticks",
    "Microwave", "Pigeon", "Baseball", "Cutting/chopping Board", "Coffee Table", "Side Table", "Scissors", "Marker",
    "Pie", "Ladder", "Snowboard", "Cookies", "Radiator", "Fire Hydrant", "Basketball", "Zebra", "Grape", "Giraffe",
    "Potato", "Sausage", "Tricycle", "Violin", "Egg", "Fire Extinguisher", "Candy", "Fire Truck", "Billards",
    "Converter", "Bathtub", "Wheelchair", "Golf Club", "Briefcase", "Cucumber", "Cigar/Cigarette ", "Paint Brush",
    "Pear", "Heavy Truck", "Hamburger", "Extractor", "Extention Cord", "Tong", "Tennis Racket", "Folder",
    "American Football", "earphone", "Mask", "Kettle", "Tennis", "Ship", "Swing", "Coffee Machine", "Slide",
    "Carriage", "Onion", "Green beans", "Projector", "Frisbee", "Washing Machine/Drying Machine", "Chicken",
    "Printer", "Watermelon", "Saxophone", "Tissue", "Toothbrush", "Ice cream", "Hotair ballon", "Cello",
    "French Fries", "Scale", "Trophy", "Cabbage", "Hot dog", "Blender", "Peach", "Rice", "Wallet/Purse",
    "Volleyball", "Deer", "Goose", "Tape", "Tablet", "Cosmetics", "Trumpet", "Pineapple", "Golf Ball", "Ambulance",
    "Parking meter", "Mango", "Key", "Hurdle", "Fishing Rod", "Medal", "Flute", "Brush", "Penguin", "Megaphone",
    "Corn", "Lettuce", "Garlic", "Swan", "Helicopter", "Green Onion", "Sandwich", "Nuts", "Speed Limit Sign",
    "Induction Cooker", "Broom", "Trombone", "Plum", "Rickshaw", "Goldfish", "Kiwi fruit", "Router/modem",
    "Poker Card", "Toaster", "Shrimp", "Sushi", "Cheese", "Notepaper", "Cherry", "Pliers", "CD", "Pasta", "Hammer",
    "Cue", "Avocado", "Hamimelon", "Flask", "Mushroon", "Screwdriver", "Soap", "Recorder", "Bear", "Eggplant",
    "Board Eraser", "Coconut", "Tape Measur/ Ruler", "Pig", "Showerhead", "Globe", "Chips", "Steak",
    "Crosswalk Sign", "Stapler", "Campel", "Formula 1 ", "Pomegranate", "Dishwasher", "Crab", "Hoverboard",
    "Meat ball", "Rice Cooker", "Tuba", "Calculator", "Papaya", "Antelope", "Parrot", "Seal", "Buttefly",
    "Dumbbell", "Donkey", "Lion", "Urinal", "Dolphin", "Electric Drill", "Hair Dryer", "Egg tart", "Jellyfish",
    "Treadmill", "Lighter", "Grapefruit", "Game board", "Mop", "Radish", "Baozi", "Target", "French",
    "Spring Rolls", "Monkey", "Rabbit", "Pencil Case", "Yak", "Red Cabbage", "Binoculars", "Asparagus", "Barbell",
    "Scallop", "Noddles", "Comb", "Dumpling", "Oyster", "Table Teniis paddle", "Cosmetics Brush/Eyeliner Pencil",
    "Chainsaw", "Eraser", "Lobster", "Durian", "Okra", "Lipstick", "Cosmetics Mirror", "Curling", "Table Tennis ",
)


@pytest.fixture(scope="module")
def coco() -> EntityMatcher:
    return build_matcher("coco")


def _image(image_id: int, objects: list[tuple[int, str]], box: tuple[float, ...] = (0, 0, 10, 10)) -> dict:
    return {
        "image_id": image_id, "file_name": f"{image_id}.jpg", "width": 100, "height": 100, "dataset": "test",
        "data_split": "train",
        "objects": [
            {"object_id": oid, "category_id": 1, "category": cat, "x": box[0], "y": box[1], "w": box[2], "h": box[3]}
            for oid, cat in objects
        ],
    }


def _triplet(subject: str, subject_head: str, relation: str, obj: str, object_head: str) -> dict:
    return {"subject": subject, "subject_head": subject_head, "relation": relation, "relation_lemma": relation,
            "object": obj, "object_head": object_head}


def _parse(image_id: int, caption_index: int, *triplets: dict) -> dict:
    return {"image_id": image_id, "caption_index": caption_index, "caption": "", "parser": "rules",
            "triplets": list(triplets)}


# -- tables -------------------------------------------------------------------------------


def test_tables_hold_exactly_the_official_class_names() -> None:
    assert tuple(load_table("coco")) == COCO_CLASSES
    assert tuple(load_table("objects365")) == OBJECTS365_V2_CLASSES
    assert len(COCO_CLASSES) == 80 and len(OBJECTS365_V2_CLASSES) == 365


@pytest.mark.parametrize("name", ["coco", "objects365"])
def test_builtin_tables_are_clash_free_and_tokenisable(name: str) -> None:
    matcher = build_matcher(name)
    assert matcher.conflicts == []
    for cls, synonyms in load_table(name).items():
        assert tokenize(cls), cls
        assert all(tokenize(s.lstrip("!")) for s in synonyms), cls
        # Every class is reachable by its own name.
        assert matcher.match(cls, None) is not None


def test_coco_table_matches_real_coco_category_names(shared_data: Path) -> None:
    data = json.loads((shared_data / "coco-mini" / "annotations" / "instances_train2017.json").read_text())
    assert [c["name"] for c in data["categories"]] == list(load_table("coco"))


# -- matcher ------------------------------------------------------------------------------


def test_token_boundaries_not_substrings(coco: EntityMatcher) -> None:
    genders = EntityMatcher([{"man": [], "woman": []}])
    assert genders.match("a woman", "woman") == "woman"
    assert genders.match("a man", "man") == "man"
    assert genders.match("two women", "woman") == "woman"
    assert coco.match("a car", "car") == "car"
    assert coco.match("a cart", "cart") is None
    assert coco.match("a shopping cart", "cart") is None
    assert coco.match("a carton", "carton") is None


def test_lemmas_and_plurals(coco: EntityMatcher) -> None:
    assert coco.match("knives", "knife") == "knife"
    assert coco.match("some knives", "knives") == "knife"  # lemmatiser left the plural
    assert coco.match("people", "people") == "person"
    assert coco.match("two young men", "man") == "person"
    assert coco.match("buses", "bus") == "bus"
    assert coco.match("three sheep", "sheep") == "sheep"
    assert coco.match("firemen", "fireman") == "person"
    assert plural_forms("potato") == ("potatos", "potatoes")


def test_multiword_synonyms_match_whole_sequences_longest_first(coco: EntityMatcher) -> None:
    assert coco.match("a hot dog", "dog") == "hot dog"
    assert coco.match("two hot dogs", "dog") == "hot dog"
    assert coco.match("a dog", "dog") == "dog"
    assert coco.match("tennis rackets", "racket") == "tennis racket"
    assert coco.match("the cell phones", "phone") == "cell phone"
    assert coco.match("a brown teddy bear", "bear") == "teddy bear"
    assert coco.match("a hot-dog", "dog") == "hot dog"  # hyphens split like spaces
    assert coco.match("a glass of wine", "glass") == "wine glass"
    assert coco.match("a glass", "glass") == "cup"


def test_head_lemma_decides_over_modifiers(coco: EntityMatcher) -> None:
    # The head is what the entity is: a pizza box is a box, a dog bed is a bed.
    assert coco.match("a pizza box", "box") is None
    assert coco.match("a dog bed", "bed") == "bed"
    assert coco.match("a man's hand", "hand") is None
    assert coco.match("the man's dog", "dog") == "dog"
    # A head absent from the span (parser's lemma only) is looked up alone.
    assert coco.match("it", "horse") == "horse"
    assert coco.match("a red cup", "") == "cup"


def test_quantities_containers_and_parts(coco: EntityMatcher) -> None:
    assert coco.match("a herd of zebras", "herd") == "zebra"
    assert coco.match("a family of elephants", "family") == "elephant"
    assert coco.match("a family", "family") == "person"
    assert coco.match("a pair of scissors", "pair") == "scissors"
    assert coco.match("a bowl of broccoli", "bowl") == "bowl"
    assert coco.match("a tray of donuts", "tray") == "donut"
    assert coco.match("the back of a truck", "back") == "truck"
    assert coco.match("a picture of a dog", "picture") is None


def test_exclusions_keep_eyeglasses_out_of_cups(coco: EntityMatcher) -> None:
    assert coco.match("glasses", "glass") is None
    o365 = build_matcher("objects365")
    assert o365.names[o365.match("glasses", "glass")] == "Glasses"
    assert o365.names[o365.match("a glass", "glass")] == "Cup"


# -- configuration --------------------------------------------------------------------------


def test_user_synonyms_file_extends_and_overrides(tmp_path: Path) -> None:
    user = tmp_path / "synonyms.json"
    user.write_text(json.dumps({
        "wine glass": ["glass"],  # wins over the built-in cup synonym
        "person": ["!player", "spaceman"],
        "rocket": ["space rocket"],
    }))
    matcher = build_matcher("coco", user)
    assert matcher.match("a glass", "glass") == "wine glass"
    assert matcher.match("two spacemen", "spaceman") == "person"
    assert matcher.match("a player", "player") is None
    assert matcher.match("the tennis player", "player") == "person"  # other built-in synonyms stay
    assert matcher.match("space rockets", "rocket") == "rocket"
    assert matcher.match("a dog", "dog") == "dog"


@pytest.mark.parametrize("content", ["[1, 2]", '{"dog": "puppy"}', "{not json"])
def test_bad_user_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    user = tmp_path / "synonyms.json"
    user.write_text(content)
    with pytest.raises(ConfigError, match="synonyms"):
        build_matcher("coco", user)
    with pytest.raises(ConfigError, match="not found"):
        build_matcher("coco", tmp_path / "missing.json")


def test_vocabulary_follows_dataset_kind(tmp_path: Path) -> None:
    ann = {"annotations": tmp_path / "a.json", "images": tmp_path}
    o365 = RunConfig(dataset={"kind": "objects365", **ann})
    coco = RunConfig(dataset={"kind": "coco-format", **ann})
    assert "sneakers" in matcher_for(o365.match, o365.dataset.kind)
    assert "sneakers" not in matcher_for(coco.match, coco.dataset.kind)
    forced = RunConfig(dataset={"kind": "coco-format", **ann}, match={"vocabulary": "objects365"})
    assert "sneakers" in matcher_for(forced.match, forced.dataset.kind)


def test_edited_user_file_is_reread(tmp_path: Path) -> None:
    user = tmp_path / "synonyms.json"
    user.write_text(json.dumps({"dog": ["wolfhound"]}))
    cfg = RunConfig(match={"synonyms_file": user})
    assert matcher_for(cfg.match, "demo").match("a wolfhound", "wolfhound") == "dog"
    user.write_text(json.dumps({"cat": ["wolfhound", "x"]}))
    assert matcher_for(cfg.match, "demo").match("a wolfhound", "wolfhound") == "cat"


# -- the stage ------------------------------------------------------------------------------


def test_candidate_pairs_proposals_and_schema() -> None:
    ingest = [_image(1, [(10, "person"), (11, "person"), (12, "horse"), (13, "space shuttle")])]
    parse = [
        _parse(1, 0, _triplet("a man", "man", "ride", "a horse", "horse")),
        _parse(1, 1, _triplet("a woman", "woman", "ride", "a pony", "pony"),
               _triplet("a woman", "woman", "stand near", "space shuttles", "shuttle"),
               _triplet("a horse", "horse", "eat", "grass", "grass")),
        _parse(1, 2, _triplet("a man", "man", "next to", "a woman", "woman")),
    ]
    out = run_match({"ingest": ingest, "parse": parse}, RunConfig())
    assert out.errors == []
    assert len(out.rows) == 1
    row = out.rows[0]
    assert row["chunk_index"] == 0
    assert row["relation_texts"] == ["eat", "next to", "ride", "stand near"]
    pairs = {(p["subject_id"], p["object_id"]): p for p in row["pairs"]}
    assert list(pairs) == [(10, 11), (10, 12), (10, 13), (11, 10), (11, 12), (11, 13)]
    assert pairs[(10, 12)]["proposals"] == [{"relation": "ride", "caption_indices": [0, 1]}]
    assert pairs[(10, 13)]["subject_category"] == "person"
    assert pairs[(10, 13)]["object_category"] == "space shuttle"  # dataset category outside the table
    assert pairs[(10, 11)]["proposals"] == [{"relation": "next to", "caption_indices": [2]}]
    pa.Table.from_pylist(out.rows, schema=MATCH)


def test_self_pairs_only_when_allowed() -> None:
    ingest = [_image(1, [(1, "person"), (2, "person")])]
    parse = [_parse(1, 0, _triplet("a man", "man", "next to", "a man", "man"))]
    default = run_match({"ingest": ingest, "parse": parse}, RunConfig()).rows[0]["pairs"]
    assert [(p["subject_id"], p["object_id"]) for p in default] == [(1, 2), (2, 1)]
    allow = RunConfig(match={"allow_self_pairs": True})
    allowed = run_match({"ingest": ingest, "parse": parse}, allow).rows[0]["pairs"]
    assert [(p["subject_id"], p["object_id"]) for p in allowed] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_chunks_of_n_q_pairs() -> None:
    objects = [(i, "person") for i in range(25)] + [(100 + i, "dog") for i in range(10)]
    ingest = [_image(7, objects)]
    parse = [_parse(7, 0, _triplet("people", "people", "walk", "dogs", "dog"),
                    _triplet("the sky", "sky", "above", "the park", "park"))]
    rows = run_match({"ingest": ingest, "parse": parse}, RunConfig()).rows
    assert [r["chunk_index"] for r in rows] == [0, 1, 2]
    assert [len(r["pairs"]) for r in rows] == [100, 100, 50]
    assert all(r["relation_texts"] == ["above", "walk"] for r in rows)
    keys = [(p["subject_id"], p["object_id"]) for r in rows for p in r["pairs"]]
    assert keys == sorted(keys) and len(set(keys)) == 250
    small = run_match({"ingest": ingest, "parse": parse}, RunConfig(match={"max_pairs_per_chunk": 250})).rows
    assert len(small) == 1


def test_no_pairs_no_rows_and_unknown_images_are_errors() -> None:
    ingest = [_image(1, [(1, "cat")]), _image(2, [(2, "dog")])]
    parse = [
        _parse(1, 0, _triplet("a cat", "cat", "on", "a couch", "couch")),  # no couch box
        _parse(2, 0),  # caption without triplets
        _parse(3, 0, _triplet("a dog", "dog", "on", "a bed", "bed")),
        _parse(3, 1, _triplet("a dog", "dog", "on", "a bed", "bed")),
    ]
    out = run_match({"ingest": ingest, "parse": parse}, RunConfig())
    assert out.rows == []
    assert [(e.image_id, e.stage, e.reason) for e in out.errors] == [(3, "match", "unknown_image")]


def test_deterministic_regardless_of_input_order() -> None:
    ingest = [_image(i, [(i * 10 + k, cat) for k, cat in enumerate(["person", "dog", "frisbee", "person"])])
              for i in range(1, 6)]
    parse = [
        _parse(i, c, _triplet("a man", "man", rel, obj, obj.split()[-1]))
        for i in range(1, 6) for c, (rel, obj) in enumerate([("throw", "a frisbee"), ("play with", "a dog"),
                                                             ("throw", "the frisbee"), ("next to", "a woman")])
    ]
    first = run_match({"ingest": ingest, "parse": parse}, RunConfig())
    rng = random.Random(0)
    for _ in range(3):
        shuffled_ingest, shuffled_parse = ingest[:], parse[:]
        rng.shuffle(shuffled_ingest)
        rng.shuffle(shuffled_parse)
        again = run_match({"ingest": shuffled_ingest, "parse": shuffled_parse}, RunConfig())
        assert again.rows == first.rows
    assert [r["image_id"] for r in first.rows] == [1, 2, 3, 4, 5]
