"""Checks `transformer_ner` runs at initialize time on a sample of the
training data, so that a pipeline set up for the wrong language says so
instead of training to F 0.00 in silence:

- the pipeline's tokenizer must give the gold entities' boundaries: gold
  docs made with one token per Chinese character, trained under the English
  tokenizer (which reads "苹果公司的CEO是蒂姆·库克" as one token), can never
  predict an entity;
- the backbone's word-piece vocabulary must cover the text: an English
  vocabulary reads most Chinese characters as its unknown token, so the
  model cannot tell them apart.

Both warn (a deliberate setup may still want to train) and name what to
change.
"""
import warnings
from collections import Counter
from itertools import islice
from typing import Any, Callable, Iterable, List, Optional, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy_transformers.layers import TransformerModel
from thinc.api import Model

from .linker_backbone import backbone_parts

# Docs read by the checks: enough to see a systematic problem, cheap at any
# corpus size.
SAMPLE_DOCS = 200
# Gold entities the pipeline's tokens may cut before it warns: a stray
# hyphenated compound is not worth a warning, a language mismatch cuts most.
MAX_CUT_ENTITY_SHARE = 0.01
# Word pieces the backbone may read as its unknown token before it warns.
MAX_UNKNOWN_SHARE = 0.05
# Backbones to suggest, by hub name, for text the default one cannot read.
MULTILINGUAL_BACKBONES = ("bert-base-multilingual-cased", "xlm-roberta-base")
CHINESE_BACKBONES = ("bert-base-chinese", "hfl/chinese-roberta-wwm-ext")
_SHOWN = 8  # tokens or characters shown in a message


def check_training_language(
    get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language], model: Model, name: str
) -> None:
    """Warn if the pipeline's tokenizer cuts the gold entities of a sample
    of the training data, or if the backbone reads too many of its word
    pieces as unknown.

    get_examples (Callable[[], Iterable[Example]]): The training data.
    nlp (Optional[Language]): The pipeline; without it only the backbone of
        an inline transformer is checked.
    model (Model): The component's model (its tok2vec finds the backbone).
    name (str): The component's name, for the messages.
    """
    references = [eg.reference for eg in islice(get_examples(), SAMPLE_DOCS)]
    if nlp is not None:
        message = tokenization_mismatch(references, make_doc=nlp.make_doc, lang=nlp.lang, name=name)
        if message:
            warnings.warn(message)
    tokenizer = backbone_tokenizer(nlp, model, name=name)
    if tokenizer is not None:
        message = unknown_word_pieces([doc.text for doc in references], tokenizer=tokenizer, name=name)
        if message:
            warnings.warn(message)


def _bounds(doc: Doc) -> Tuple[Set[int], Set[int]]:
    return {t.idx for t in doc}, {t.idx + len(t) for t in doc}


def _cut_entities(reference: Doc, predicted: Doc) -> List[Span]:
    starts, ends = _bounds(predicted)
    return [ent for ent in reference.ents if ent.start_char not in starts or ent.end_char not in ends]


def _shown(tokens: Sequence[str]) -> str:
    more = " ..." if len(tokens) > _SHOWN else ""
    return " | ".join(tokens[:_SHOWN]) + more


def tokenization_mismatch(
    references: Sequence[Doc], *, make_doc: Callable[[str], Doc], lang: str, name: str
) -> Optional[str]:
    """The warning for gold docs that the pipeline's tokenizer splits so
    that their entities start or end inside a token (such entities can
    never be predicted), or None.

    references (Sequence[Doc]): Gold docs.
    make_doc (Callable[[str], Doc]): The pipeline's tokenizer.
    lang (str): The pipeline's language, for the message.
    name (str): The component's name, for the message.
    RETURNS (Optional[str]): The message, or None if at most
        MAX_CUT_ENTITY_SHARE of the gold entities are cut.
    """
    n_ents = n_cut = n_differ = 0
    first: Optional[Tuple[Span, Span]] = None
    for reference in references:
        predicted = make_doc(reference.text)
        if [t.text for t in predicted] != [t.text for t in reference]:
            n_differ += 1
        cut = _cut_entities(reference, predicted)
        n_ents += len(reference.ents)
        n_cut += len(cut)
        if cut and first is None:
            # The pipeline's tokens that hold the entity's characters.
            first = (cut[0], predicted.char_span(cut[0].start_char, cut[0].end_char, alignment_mode="expand"))
    if first is None or n_cut <= MAX_CUT_ENTITY_SHARE * n_ents:
        return None
    entity, tokens = first
    return (
        f"[transformer_ner] The pipeline's tokenizer (lang {lang!r}) splits {n_differ} of "
        f"{len(references)} sampled training docs ({n_differ / len(references):.0%}) differently from "
        f"the gold docs, and {n_cut} of {n_ents} gold entities ({n_cut / n_ents:.0%}) start or end "
        f"inside one of its tokens, so '{name}' can never predict them. First: entity {entity.text!r}, "
        f"gold tokens {_shown([t.text for t in entity])}, pipeline tokens "
        f"{_shown([t.text for t in tokens])}. Train with the language the gold docs were made "
        "with (e.g. `--nlp.lang zh`; in the project `--vars.lang zh`), or set [nlp.tokenizer] to "
        'their tokenizer (e.g. {"@tokenizers":"spacy.zh.ChineseTokenizer","segmenter":"char"}), or '
        "convert the corpus with the pipeline's language (`spacy_llm_ner convert --lang`)."
    )


def backbone_tokenizer(nlp: Optional[Language], model: Model, *, name: str) -> Optional[Any]:
    """The Hugging Face tokenizer of the transformer the model listens to
    (or holds), once that transformer is initialized; no forward pass.

    nlp (Optional[Language]): The pipeline, to find a listener's upstream.
    model (Model): The component's model.
    name (str): The component's name.
    RETURNS (Optional[Any]): The tokenizer, or None (a CNN tok2vec, or a
        transformer not loaded yet).
    """
    source = model
    if nlp is not None:
        try:
            upstream = backbone_parts(nlp, model, name=name)[1]
        except ValueError:
            upstream = None
        source = upstream.model if upstream is not None else model
    for node in source.walk():
        if isinstance(node, TransformerModel):
            return node.tokenizer if node.layers and node.layers[0].shims else None
    return None


def unknown_word_pieces(texts: Sequence[str], *, tokenizer: Any, name: str) -> Optional[str]:
    """The warning for a backbone that reads more than MAX_UNKNOWN_SHARE of
    the word pieces of the texts as its unknown token, or None.

    texts (Sequence[str]): Sampled training texts.
    tokenizer (Any): The backbone's Hugging Face tokenizer.
    name (str): The component's name, for the message.
    RETURNS (Optional[str]): The message, or None.
    """
    unk_id = getattr(tokenizer, "unk_token_id", None)
    if unk_id is None or not texts:
        return None  # byte-level vocabularies have no unknown token
    fast = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(
        list(texts), add_special_tokens=False, return_offsets_mapping=fast, verbose=False
    )
    n_pieces = n_unknown = 0
    unknown: Counter = Counter()
    for i, ids in enumerate(encoded["input_ids"]):
        n_pieces += len(ids)
        for j, piece in enumerate(ids):
            if piece == unk_id:
                n_unknown += 1
                if fast:
                    start, end = encoded["offset_mapping"][i][j]
                    unknown[texts[i][start:end]] += 1
    if not n_pieces or n_unknown <= MAX_UNKNOWN_SHARE * n_pieces:
        return None
    examples = ", ".join(repr(text) for text, _ in unknown.most_common(_SHOWN))
    return (
        f"[transformer_ner] The backbone {getattr(tokenizer, 'name_or_path', '')!r} reads {n_unknown} of "
        f"{n_pieces} word pieces ({n_unknown / n_pieces:.0%}) of {len(texts)} sampled training texts as its "
        f"unknown token {tokenizer.unk_token!r} (more than {MAX_UNKNOWN_SHARE:.0%})"
        + (f", e.g. {examples}" if examples else "")
        + f": '{name}' cannot tell those apart. Use a backbone whose vocabulary covers the language: "
        f"`--vars.transformer_name NAME`, e.g. {' or '.join(CHINESE_BACKBONES)} (Chinese) or "
        f"{' or '.join(MULTILINGUAL_BACKBONES)} (multilingual) from the Hugging Face hub, or any local "
        "Hugging Face model folder."
    )
