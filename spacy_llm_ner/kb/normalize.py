"""String normalisation shared by the alias index and the mentions.

Both sides of a look-up go through the same function, so the rules only need
to be consistent, not linguistically right: "metastasis" and "metastases"
both become "metastase", "diabetes" becomes "diabete" on both sides. The
function is idempotent (tested with hypothesis), so normalising an already
normalised alias is harmless.

Steps: Unicode NFKD compatibility folding with accents (combining marks)
removed, case folding, possessive "'s" dropped ("Alzheimer's" ->
"alzheimer"), every non-alphanumeric character (punctuation, hyphens,
underscores) to a space, whitespace collapsed, a light per-token plural
fold on ASCII words of four letters or more, and no space left between two
characters of a script written without spaces between words (CJK, Thai...):
there a space or mark between characters is spelling variation, not a word
break ("蒂姆·库克" and "蒂姆库克" are one name, Tim Cook).
"""
import re
import unicodedata
from typing import List

_POSSESSIVE = re.compile(r"['\u2019]s\b")
_NON_WORD = re.compile(r"[\W_]+")
# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer,
# kana, CJK ideographs (with extension A, compatibility ideographs and the
# supplementary planes' extensions).
UNSPACED_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f]"
)
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
        if UNSPACED_SCRIPT.search(text):
            return _join_unspaced([_fold_token(w) for w in words])
    return " ".join(_fold_token(w) for w in words)


def _join_unspaced(words: List[str]) -> str:
    """Join words with single spaces, but with none between two characters
    of an unspaced script.

    words (List[str]): Normalised words.
    RETURNS (str): The joined text.
    """
    out = words[:1]
    for word in words[1:]:
        glued = UNSPACED_SCRIPT.match(out[-1][-1]) and UNSPACED_SCRIPT.match(word[0])
        out.append(word if glued else " " + word)
    return "".join(out)


def tokens(text: str) -> List[str]:
    """The words of the normalised text.

    text (str): The surface string.
    RETURNS (List[str]): Normalised words.
    """
    return normalize(text).split()
