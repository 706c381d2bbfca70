"""`normalize` for a batch of strings, with the same result string for string.

Per mention, `normalize` spends most of its time in per-call work: a regex
call, three string methods and the plural fold of every word. For a batch,
the ASCII strings are joined once (with a separator that no ASCII rule
touches), so the regex, lower-casing and punctuation mapping run once over
the batch; each distinct word is plural-folded once. Non-ASCII strings go
through `normalize` itself.
"""
from typing import List, Sequence

from .normalize import _ASCII_TABLE, _POSSESSIVE, _fold_token, normalize

# LINE SEPARATOR: not ASCII (so the ASCII table keeps it), not a word
# character (so the possessive rule's \b sees it as a string end), and not
# in any ASCII string being joined.
_SEP = "\u2028"


def normalize_batch(texts: Sequence[str]) -> List[str]:
    """Normalise many strings (`normalize` of each).

    texts (Sequence[str]): Surface strings.
    RETURNS (List[str]): The normalised strings, in order.
    """
    if "".join(texts).isascii():  # (the separator itself is not ASCII)
        return _ascii_batch(_SEP.join(texts))
    return [_ascii_batch(t)[0] if t.isascii() else normalize(t) for t in texts]


def _ascii_batch(joined: str) -> List[str]:
    """Normalise ASCII strings joined by `_SEP`.

    joined (str): The strings, joined.
    RETURNS (List[str]): The normalised strings.
    """
    joined = _POSSESSIVE.sub("", joined).lower().translate(_ASCII_TABLE)
    out = []
    for part in joined.split(_SEP):
        words = part.split()
        # Every plural rule needs a final "s": most strings have no such word.
        if "s " in part or part.endswith("s"):
            words = [_fold_token(w) for w in words]
        out.append(" ".join(words))
    return out
