"""Token features beside the transformer, concatenated with its vectors
before the tag head.

Chemical and disease names break into many rare word pieces ("hydro",
"##chlor", "##othiazide"); their shape and affixes, which spaCy's hash
embeddings see whole, carry much of the type. A gazetteer adds what the user
already knows: "this token starts / continues / ends a name of a known
Disease" from a knowledge base read by the same loaders as the linker.

- `spacy_llm_ner.FeatureTok2Vec.v1`: concatenate(tok2vec, hash embeddings of
  lexical attributes [+ a small CNN], [gazetteer]).
- The gazetteer layer (`gazetteer_features`) holds its alias table in its
  attrs, so it is saved with the pipeline; the table is filled from a KB at
  initialize time (`[initialize.components.transformer_ner.gazetteer]`).
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.ml.models.tok2vec import MaxoutWindowEncoder, MultiHashEmbed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain, concatenate
from thinc.types import Floats2d

GAZETTEER = "gazetteer_features"
# B(egin), I(nside), L(ast), U(nit) of a matched alias, per KB type.
_POSITIONS = 4
_SEP = "\x1f"


@registry.architectures("spacy_llm_ner.FeatureTok2Vec.v1")
def build_feature_tok2vec(
    tok2vec: Model[List[Doc], List[Floats2d]],
    *,
    attrs: Sequence[str] = ("NORM", "PREFIX", "SUFFIX", "SHAPE"),
    rows: Sequence[int] = (5000, 1000, 2500, 2500),
    width: int = 64,
    depth: int = 1,
    window_size: int = 1,
    gazetteer: bool = False,
    gazetteer_types: Sequence[str] = (),
    max_alias_tokens: int = 8,
) -> Model[List[Doc], List[Floats2d]]:
    """A tok2vec (e.g. the transformer listener) with lexical and
    gazetteer features concatenated to its output.

    tok2vec (Model[List[Doc], List[Floats2d]]): The main token vectors.
    attrs (Sequence[str]): Token attributes to hash-embed (spaCy's
        MultiHashEmbed); empty: none.
    rows (Sequence[int]): Hash-table rows per attribute.
    width (int): Width of the lexical features.
    depth (int): CNN layers (spaCy's MaxoutWindowEncoder) over the hash
        embeddings; 0: the embeddings alone.
    window_size (int): Tokens either side seen by each CNN layer.
    gazetteer (bool): Add gazetteer features (filled at initialize from a KB;
        all zero without one).
    gazetteer_types (Sequence[str]): KB entity types to mark; empty: every
        type of the KB given at initialize.
    max_alias_tokens (int): Longest alias (in tokens) the gazetteer matches.
    RETURNS (Model[List[Doc], List[Floats2d]]): The combined tok2vec.
    """
    if len(attrs) != len(rows):
        raise ValueError(f"attrs and rows must have the same length, got {list(attrs)} and {list(rows)}.")
    if width < 1 or depth < 0:
        raise ValueError(f"width must be >= 1 and depth >= 0, got {width} and {depth}.")
    layers = [tok2vec]
    if attrs:
        embed = MultiHashEmbed(width=width, attrs=list(attrs), rows=list(rows), include_static_vectors=False)
        if depth:
            embed = chain(embed, MaxoutWindowEncoder(width=width, window_size=window_size, maxout_pieces=3, depth=depth))
        layers.append(embed)
    if gazetteer:
        layers.append(gazetteer_features(types=gazetteer_types, max_alias_tokens=max_alias_tokens))
    model = _concatenate_doc_features(layers)
    model.set_ref("tok2vec", tok2vec)
    return model


def _concatenate_doc_features(layers: List[Model]) -> Model[List[Doc], List[Floats2d]]:
    """thinc's `concatenate` with a backward pass that ignores the layers'
    input gradients. A transformer listener that is not its upstream's last
    listener returns None from backprop (spacy-transformers collects the
    gradient and backpropagates through the last one), which thinc's list
    concatenation cannot add. Same node tree as `concatenate`, so pipelines
    saved before load as they were."""
    model = concatenate(*layers)
    return Model(model.name, _concatenate_forward, init=model.init, dims=dict(model._dims), layers=model.layers)


def _concatenate_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    outputs, callbacks = zip(*(layer(docs, is_train=is_train) for layer in model.layers))
    widths = [out[0].shape[1] if len(out) else 0 for out in outputs]
    Y = [model.ops.xp.hstack([out[i] for out in outputs]) for i in range(len(docs))]

    def backprop(dY: List[Floats2d]) -> List[Doc]:
        start = 0
        for callback, width in zip(callbacks, widths):
            callback([model.ops.as_contig(d[:, start : start + width]) for d in dY])
            start += width
        return []

    return Y, backprop


def gazetteer_features(*, types: Sequence[str] = (), max_alias_tokens: int = 8) -> Model[List[Doc], List[Floats2d]]:
    """0/1 features per token: for each KB type, whether the token begins,
    is inside, ends, or is the whole of a longest match of a known alias
    (lower-cased tokens). No parameters.

    types (Sequence[str]): Types to mark; empty: the KB's, at initialize.
    max_alias_tokens (int): Longest alias matched.
    RETURNS (Model[List[Doc], List[Floats2d]]): The layer.
    """
    return Model(
        GAZETTEER,
        _gazetteer_forward,
        init=_gazetteer_init,
        dims={"nO": _POSITIONS * len(types) if types else None},
        attrs={"types": list(types), "fixed_types": bool(types), "aliases": {}, "max_alias_tokens": int(max_alias_tokens)},
    )


def alias_key(words: Iterable[str]) -> str:
    """The table key of a token sequence (lower-cased, joined)."""
    return _SEP.join(w.lower() for w in words)


def fill_gazetteer(
    model: Model, names: Iterable[Tuple[str, str]], *, make_doc: Callable[[str], Doc]
) -> Dict[str, int]:
    """Fill a gazetteer layer's table from (alias, type) pairs.

    model (Model): A gazetteer_features layer (not yet initialized).
    names (Iterable[Tuple[str, str]]): Aliases with their entity type.
    make_doc (Callable[[str], Doc]): The pipeline's tokenizer (aliases are
        matched token by token, as the pipeline splits them).
    RETURNS (Dict[str, int]): Aliases per type that were added.
    """
    pairs = [(alias, etype) for alias, etype in names if alias and etype]
    if not model.attrs["fixed_types"]:
        model.attrs["types"] = sorted({etype for _, etype in pairs})
        model.set_dim("nO", _POSITIONS * len(model.attrs["types"]), force=True)
    index = {t: i for i, t in enumerate(model.attrs["types"])}
    limit = model.attrs["max_alias_tokens"]
    table: Dict[str, int] = {}
    counts: Dict[str, int] = {}
    for alias, etype in pairs:
        if etype not in index:
            continue
        words = [t.text for t in make_doc(alias)]
        if not words or len(words) > limit:
            continue
        for n in range(1, len(words)):  # prefixes map to 0: "keep reading"
            table.setdefault(alias_key(words[:n]), 0)
        key = alias_key(words)
        table[key] = table.get(key, 0) | (1 << index[etype])
        counts[etype] = counts.get(etype, 0) + 1
    model.attrs["aliases"] = table
    return counts


def _gazetteer_init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    if not model.has_dim("nO") or model.get_dim("nO") is None:
        model.set_dim("nO", _POSITIONS * len(model.attrs["types"]))


def match(doc: Doc, aliases: Dict[str, int], n_types: int, max_tokens: int) -> numpy.ndarray:
    """(len(doc), 4 * n_types) features of one doc: at each position the
    longest alias starting there wins, and matching resumes after it.

    doc (Doc): The doc.
    aliases (Dict[str, int]): Alias key -> bitmask of its types; 0 for a
        key that is only the beginning of longer aliases.
    n_types (int): Number of types.
    max_tokens (int): Longest alias.
    RETURNS (numpy.ndarray): float32 features.
    """
    out = numpy.zeros((len(doc), _POSITIONS * n_types), dtype="f")
    if not aliases or not n_types:
        return out
    words = [t.lower_ for t in doc]
    i = 0
    while i < len(words):
        found, mask = 0, 0
        key = ""
        for n in range(1, min(max_tokens, len(words) - i) + 1):
            key = words[i] if n == 1 else key + _SEP + words[i + n - 1]
            value = aliases.get(key)
            if value is None:
                break
            if value:
                found, mask = n, value
        if not found:
            i += 1
            continue
        for t in range(n_types):
            if mask >> t & 1:
                col = _POSITIONS * t
                if found == 1:
                    out[i, col + 3] = 1.0
                else:
                    out[i, col] = 1.0
                    out[i + 1 : i + found - 1, col + 1] = 1.0
                    out[i + found - 1, col + 2] = 1.0
        i += found
    return out


def _gazetteer_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    n_types = len(model.attrs["types"])
    aliases, limit = model.attrs["aliases"], model.attrs["max_alias_tokens"]
    out = [model.ops.asarray2f(match(doc, aliases, n_types, limit)) for doc in docs]

    def backprop(d_out: List[Floats2d]) -> List[Doc]:
        return []

    return out, backprop
