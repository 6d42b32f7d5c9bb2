"""Text from outside (captions, names) made safe to store and to parse.

Two kinds of character break the factory although JSON allows them:

* a lone UTF-16 surrogate (``"\\ud800"``) cannot be encoded as UTF-8, so the
  Parquet write of a whole part fails; it becomes U+FFFD, the replacement
  character, which keeps the text's length and shows where the damage was;
* zero-width and bidirectional control characters are invisible but split or
  glue tokens: spaCy finds no subject in "a \\u200bman rides a horse" and the
  synonym table has no "m\\u200ban". They carry no meaning in a caption, so they
  are removed.
"""

from __future__ import annotations

import re

# Zero-width characters, the soft hyphen, and every bidirectional control
# (embeddings, overrides, isolates, marks) of Unicode's Bidi_Control property.
INVISIBLE_CONTROLS = (
    "\u00ad"  # soft hyphen
    "\u180e"  # Mongolian vowel separator (formerly a space)
    "\u200b\u200c\u200d"  # zero-width space, non-joiner, joiner
    "\u2060\ufeff"  # word joiner, zero-width no-break space (BOM)
    "\u061c\u200e\u200f"  # Arabic letter mark, left-to-right mark, right-to-left mark
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, pop, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)

_INVISIBLE = re.compile(f"[{INVISIBLE_CONTROLS}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def strip_invisible(text: str) -> str:
    """``text`` without zero-width and bidi control characters."""
    return _INVISIBLE.sub("", text)


def encodable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    return _SURROGATE.sub(REPLACEMENT, text)


def clean_text(text: str) -> str:
    """Both of the above: what the factory stores of a caption or a name."""
    return strip_invisible(encodable(text))
