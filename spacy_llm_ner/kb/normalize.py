"""String normalisation shared by the alias index and the mentions.

Both sides of a look-up go through the same function, so the rules only need
to be consistent, not linguistically right: "metastasis" and "metastases"
both become "metastase", "diabetes" becomes "diabete" on both sides. The
function is idempotent (tested with hypothesis), so normalising an already
normalised alias is harmless.

Steps: Unicode NFKD compatibility folding with accents (combining marks)
removed, case folding, possessive "'s" dropped ("Alzheimer's" ->
"alzheimer"), every non-alphanumeric character (punctuation, hyphens,
underscores) to a space, whitespace collapsed, and a light per-token plural
fold on ASCII words of four letters or more.
"""
import re
import unicodedata
from typing import List

_POSSESSIVE = re.compile(r"['\u2019]s\b")
_NON_WORD = re.compile(r"[\W_]+")
# ASCII fast path: everything but letters and digits becomes a space.
_ASCII_TABLE = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def _fold_token(token: str) -> str:
    """Map plural and singular forms of an English word to one key.

    token (str): One lower-case word.
    RETURNS (str): The folded word.
    """
    if len(token) < 4 or not token.isascii() or not token.isalpha():
        return token
    if token.endswith("sses"):  # abscesses -> abscess
        return token[:-2]
    if token.endswith("ies") and len(token) > 4:  # allergies -> allergy
        return token[:-3] + "y"
    if token.endswith("sis") and len(token) >= 5:  # metastasis -> metastase (= metastases)
        return token[:-2] + "e"
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):  # tumors -> tumor
        return token[:-1]
    return token


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))


def normalize(text: str) -> str:
    """Normalise a name or mention for look-up.

    text (str): The surface string.
    RETURNS (str): Lower-case, accent-free words separated by single spaces
        (the empty string when nothing alphanumeric is left).
    """
    text = _POSSESSIVE.sub("", text)
    if text.isascii():
        words = text.lower().translate(_ASCII_TABLE).split()
    else:
        # Case folding can produce new combining marks (e.g. U+0130), so marks
        # are stripped after it as well as before.
        text = _strip_marks(_strip_marks(text).casefold())
        words = _NON_WORD.sub(" ", text).split()
    return " ".join(_fold_token(w) for w in words)


def tokens(text: str) -> List[str]:
    """The words of the normalised text.

    text (str): The surface string.
    RETURNS (List[str]): Normalised words.
    """
    return normalize(text).split()
