"""Stage 2: parse every caption into ⟨subject, relation, object⟩ triplets.

One PARSE row per caption (``storage.schemas.PARSE``), even when the caption
yields no triplet. Captions that cannot be parsed become error rows instead:
``empty_caption``, ``caption_too_long`` (over ``parse.max_caption_chars``) and
``parser_exception`` (the parser raised on this caption; the rest of its batch
still parses). All captions of the part go through ``nlp.pipe`` together, in
batches of ``parse.batch_size``.
"""

from __future__ import annotations

from pipeline.config import RunConfig
from pipeline.contracts import ErrorRow, Row, StageOutput
from pipeline.text_safety import clean_text
from stages.parsers import ParseFailure, get_parser

STAGE = "parse"


def run_parse(inputs: dict[str, list[Row]], cfg: RunConfig) -> StageOutput:
    captions = sorted(inputs.get("caption", []), key=lambda r: (r["image_id"], r["caption_index"]))
    out = StageOutput()
    parseable: list[Row] = []
    for row in captions:
        problem = _unparseable(row.get("caption"), cfg.parse.max_caption_chars)
        if problem is None:
            parseable.append(row)
        else:
            reason, detail = problem
            out.errors.append(_error(row, reason, detail))
    if not parseable:
        return out

    parser = get_parser(cfg.parse.parser, cfg.parse.spacy_model)
    # Captions cached by an older caption stage may still hold invisible controls that hide entities from spaCy.
    texts = [clean_text(r["caption"]) for r in parseable]
    results = parser.parse_many(texts, batch_size=cfg.parse.batch_size)
    for row, text, result in zip(parseable, texts, results, strict=True):
        if isinstance(result, ParseFailure):
            out.errors.append(_error(row, result.reason, result.detail))
            continue
        out.rows.append(
            {
                "image_id": row["image_id"],
                "caption_index": row["caption_index"],
                "caption": text,
                "parser": parser.name,
                "triplets": [t.as_row() for t in result],
            }
        )
    return out


def _unparseable(caption: object, max_chars: int) -> tuple[str, str] | None:
    if caption is None or (isinstance(caption, str) and not caption.strip()):
        return "empty_caption", "caption is empty or whitespace"
    if not isinstance(caption, str):
        return "empty_caption", f"caption is a {type(caption).__name__}, not text"
    if len(caption) > max_chars:
        return "caption_too_long", f"{len(caption)} characters > parse.max_caption_chars={max_chars}"
    return None


def _error(row: Row, reason: str, detail: str) -> ErrorRow:
    return ErrorRow(row.get("image_id"), STAGE, reason, f"caption {row.get('caption_index')}: {detail}")
