"""`normalize` for a batch of strings, with the same result string for string.

Per mention, `normalize` spends most of its time in per-call work: a regex
call, three string methods and the plural fold of every word. For a batch of
ASCII strings, the strings are joined once (with a separator that no ASCII
rule touches), so each step runs once over the batch: the possessive regex,
lower-casing and the punctuation mapping as a bytes translation (a 256-byte
table, where `str.translate` looks each character up in a dict), and the
plural fold only on the words it can change (ASCII letters ending in "s").
A batch with non-ASCII strings goes string by string.
"""
import re
from typing import List, Sequence

from .normalize import _POSSESSIVE, _fold_token, normalize

# LINE SEPARATOR: not ASCII, and not a word character (so the possessive
# rule's \b sees it as a string end). Between bytes: a byte no ASCII string has.
_SEP = "\u2028"
_SEP_BYTE = b"\x80"
# normalize's ASCII table as bytes: letters and digits kept (lower-cased
# before), everything else to a space; the separator byte kept.
_BYTE_TABLE = bytes(
    c if (chr(c).isascii() and chr(c).isalnum()) or c == _SEP_BYTE[0] else 32 for c in range(256)
)
# Every plural rule of `_fold_token` needs an ASCII-letter word of four
# letters or more that ends in "s"; after the mapping, words are [a-z0-9]+.
_FOLDABLE = re.compile(r"\b[a-z]{3,}s\b")


def normalize_batch(texts: Sequence[str]) -> List[str]:
    """Normalise many strings (`normalize` of each).

    texts (Sequence[str]): Surface strings.
    RETURNS (List[str]): The normalised strings, in order.
    """
    if not "".join(texts).isascii():
        return [normalize(t) for t in texts]
    joined = _POSSESSIVE.sub("", _SEP.join(texts))
    mapped = joined.encode("utf8").replace(_SEP.encode("utf8"), _SEP_BYTE).lower().translate(_BYTE_TABLE)
    text = mapped.decode("latin-1")  # ASCII plus the separator byte
    text = _FOLDABLE.sub(lambda m: _fold_token(m.group()), text)
    return [" ".join(part.split()) for part in text.split(_SEP_BYTE.decode("latin-1"))]
