"""The character-noise augmenter: random case changes, typos and dropped
characters, token by token, annotation kept on its token (see `augment`)."""
import random
from typing import Iterator

from spacy.language import Language
from spacy.training import Example

from .augment_common import _PARSE_ATTRS, _TOKEN_ATTRS, _build_example, _with_original

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class NoiseAugmenter:
    """Random case changes, typos and dropped characters, token by token.

    Tokens keep their number and order, so every annotation stays on its
    token; a token never loses its last character. Only tokens with a letter
    are changed (punctuation and numbers are left alone), and inserted or
    substituted characters are ASCII letters, so no token gains whitespace.

    level (float): Probability that an example gets a noisy copy.
    case (float): Per-token probability of a case change (lower, upper,
        title or one flipped letter).
    typo (float): Per-token probability of a typo (swap of two adjacent
        characters, a substituted or an inserted letter).
    drop (float): Per-token probability of dropping one character.
    inside_entities (bool): Also change tokens of gold entities.
    seed (int): Seed of the augmenter's random generator.
    keep_original (bool): Yield the original before the copy.
    """

    def __init__(
        self,
        *,
        level: float,
        case: float = 0.1,
        typo: float = 0.02,
        drop: float = 0.01,
        inside_entities: bool = True,
        seed: int = 0,
        keep_original: bool = True,
    ) -> None:
        for name, value in (("level", level), ("case", case), ("typo", typo), ("drop", drop)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"[noise_augmenter] {name} must be within [0, 1] (got {value})")
        self.level = level
        self.case = case
        self.typo = typo
        self.drop = drop
        self.inside_entities = inside_entities
        self.keep_original = keep_original
        self.rng = random.Random(seed)

    def __call__(self, nlp: Language, example: Example) -> Iterator[Example]:
        """Yield the example and, with probability `level`, a noisy copy.

        nlp (Language): The pipeline being trained.
        example (Example): A training example.
        YIELDS (Example): The original and/or the augmented example.
        """
        augmented = None
        if self.level > 0 and len(example.reference) and self.rng.random() < self.level:
            augmented = self.add_noise(nlp, example)
        yield from _with_original(example, augmented, self.keep_original)

    def noisy(self, text: str) -> str:
        """Apply the per-token changes to one token's text.

        text (str): The token text.
        RETURNS (str): The changed text (never empty, never with whitespace
            it did not have).
        """
        rng = self.rng
        if self.case and rng.random() < self.case:
            kind = rng.randrange(4)
            if kind == 0:
                text = text.lower()
            elif kind == 1:
                text = text.upper()
            elif kind == 2:
                text = text[:1].upper() + text[1:].lower()
            else:
                letters = [i for i, c in enumerate(text) if c.isalpha()]
                if letters:
                    i = rng.choice(letters)
                    text = text[:i] + text[i].swapcase() + text[i + 1 :]
        if self.typo and rng.random() < self.typo:
            kind = rng.randrange(3)
            if kind == 0 and len(text) >= 2:
                i = rng.randrange(len(text) - 1)
                text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
            elif kind == 1:
                letters = [i for i, c in enumerate(text) if c.isalpha()]
                if letters:
                    i = rng.choice(letters)
                    new = rng.choice(_LETTERS)
                    text = text[:i] + (new.upper() if text[i].isupper() else new) + text[i + 1 :]
            else:
                i = rng.randrange(len(text) + 1)
                text = text[:i] + rng.choice(_LETTERS) + text[i:]
        if self.drop and len(text) > 1 and rng.random() < self.drop:
            i = rng.randrange(len(text))
            text = text[:i] + text[i + 1 :]
        return text

    def add_noise(self, nlp: Language, example: Example) -> Example:
        """A noisy copy of the example (same tokens, changed texts).

        nlp (Language): Its tokenizer makes the predicted doc.
        example (Example): The example.
        RETURNS (Example): The copy.
        """
        ref = example.reference
        words = []
        for token in ref:
            text = token.text
            eligible = (
                not token.is_space
                and any(c.isalpha() for c in text)
                and (self.inside_entities or token.ent_iob_ not in ("B", "I"))
            )
            words.append(self.noisy(text) if eligible else text)
        attrs = list(_TOKEN_ATTRS)
        if ref.has_annotation("DEP"):
            attrs += _PARSE_ATTRS
        boundaries = {i: i for i in range(len(ref) + 1)}
        return _build_example(
            nlp, example, words=words, spaces=[bool(t.whitespace_) for t in ref], attrs=attrs,
            rows=ref.to_array(attrs), boundaries=boundaries, relink={},
        )
