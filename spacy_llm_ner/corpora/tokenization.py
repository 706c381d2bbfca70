"""What the corpus readers need of a pipeline: its vocab and its tokenizer.

`spacy.blank(lang)` costs seconds that `convert` does not need: building a
`Language` imports every installed `spacy_factories` entry point (torch,
transformers, spacy-transformers, this package's pipeline). For a language
whose default tokenizer is spaCy's rule-based `spacy.Tokenizer.v1`,
`tokenization(lang)` builds the same vocab (`create_vocab` with the
language's defaults, as `Language.__init__` does) and the same tokenizer
(the registered factory itself, given the language's `Defaults`) without a
`Language`. Other tokenizers (Chinese, Japanese, ... and anything a plugin
registers) may need the pipeline or its settings, so those languages get
`spacy.blank(lang)`'s.
"""
from dataclasses import dataclass
from typing import Any, Callable, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import get_lang_class, registry
from spacy.vocab import Vocab, create_vocab

__all__ = ["RULE_BASED_TOKENIZER", "Tokenization", "Tokenizing", "tokenization"]

# The only tokenizer built here without a Language.
RULE_BASED_TOKENIZER = "spacy.Tokenizer.v1"


@dataclass(frozen=True)
class Tokenization:
    """A vocab and a tokenizer: what the readers take where they took `nlp`.

    vocab (Vocab): The vocab of the Docs.
    tokenizer (Callable[[str], Doc]): Text to Doc, on `vocab`.
    """

    vocab: Vocab
    tokenizer: Callable[[str], Doc]


# What the readers accept: a pipeline, or its vocab and tokenizer alone.
Tokenizing = Union[Language, Tokenization]


@dataclass(frozen=True)
class _FactoryInput:
    # What spaCy's tokenizer factory reads of the nlp object it is given
    # (`nlp.Defaults` and `nlp.vocab`, spacy.language.create_tokenizer).
    Defaults: Any
    vocab: Vocab


def tokenization(lang: str) -> Tokenization:
    """The vocab and tokenizer `spacy.blank(lang)` would have: the same
    tokens, built without a `Language` where the language's default
    tokenizer is the rule-based one.

    lang (str): A language code, e.g. "en".
    RETURNS (Tokenization): The vocab and tokenizer.
    """
    lang_cls = get_lang_class(lang)
    tokenizer_cfg = lang_cls.default_config["nlp"]["tokenizer"]
    if tokenizer_cfg.get("@tokenizers") != RULE_BASED_TOKENIZER:
        nlp = spacy.blank(lang)
        return Tokenization(vocab=nlp.vocab, tokenizer=nlp.tokenizer)
    vocab = create_vocab(lang_cls.lang, lang_cls.Defaults)
    # spaCy's own registered factory, so the regexes and exceptions are
    # assembled as spacy.blank assembles them.
    factory = registry.resolve({"tokenizer": tokenizer_cfg})["tokenizer"]
    return Tokenization(vocab=vocab, tokenizer=factory(_FactoryInput(Defaults=lang_cls.Defaults, vocab=vocab)))

