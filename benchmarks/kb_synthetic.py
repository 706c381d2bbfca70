"""Deterministic synthetic knowledge bases and queries for the KB benchmarks.

Names are made of pseudo-words drawn with Zipf frequencies (so some 3-grams
are very common, as in real vocabularies), with disease-like qualifiers and
heads, and each entity has exactly `aliases_per_entity` distinct names: its
name, a variant (qualifier, word order, "type N") and an acronym (shared by
many entities, as real acronyms are).

A module for benchmarks/kb_scale.py; run alone, it prints a few records and
queries (no data needed):

    python benchmarks/kb_synthetic.py --n-entities 5
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Tuple

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import typer_app  # noqa: E402

if TYPE_CHECKING:
    from spacy_llm_ner.kb.records import EntityRecord

_ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "ph", "th", "tr", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "y", "ae", "io"]
_CODAS = ["", "", "n", "s", "r", "l", "x", "m", "t"]
_QUALIFIERS = ["acute", "chronic", "familial", "congenital", "juvenile", "adult", "primary", "secondary", "idiopathic", "hereditary"]
_HEADS = ["syndrome", "disease", "deficiency", "disorder", "carcinoma", "neoplasm", "infection", "dystrophy", "anemia", "fever"]
_TYPES = ["Disease", "Chemical", "Gene", "Organism", "Anatomy"]


def _vocabulary(rng: np.random.Generator, size: int) -> List[str]:
    syllables = [o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    words: dict = {}
    while len(words) < size:
        n = int(rng.integers(2, 5))
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), n))
        words.setdefault(word, None)
    return list(words)


def synthetic_records(n_entities: int, *, aliases_per_entity: int = 3, seed: int = 0) -> Iterator[EntityRecord]:
    """Generate `n_entities` records with `aliases_per_entity` names each.

    n_entities (int): Number of entities.
    aliases_per_entity (int): Distinct names per entity (name included).
    seed (int): Random seed; the same seed gives the same records.
    YIELDS (EntityRecord): Records with ids "E0000000", ...
    """
    from spacy_llm_ner.kb.records import EntityRecord

    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 60000)
    zipf = 1.0 / (np.arange(len(vocab)) + 20.0)
    zipf /= zipf.sum()
    n_words = rng.choice([1, 2, 3, 4], size=n_entities, p=[0.15, 0.4, 0.3, 0.15])
    words = rng.choice(len(vocab), size=(n_entities, 4), p=zipf)
    heads = rng.integers(-len(_HEADS), len(_HEADS), size=n_entities)  # < 0: no head word
    quals = rng.integers(0, len(_QUALIFIERS), size=n_entities)
    kinds = rng.integers(0, 3, size=n_entities)
    extra = rng.choice(len(vocab), size=n_entities, p=zipf)
    types = rng.integers(0, len(_TYPES), size=n_entities)
    priors = rng.pareto(2.0, size=n_entities)
    priors = np.minimum(1.0, priors / (priors.max() or 1.0))
    for i in range(n_entities):
        base = [vocab[j] for j in words[i, : n_words[i]]]
        if heads[i] >= 0:
            base.append(_HEADS[heads[i]])
        name = " ".join(w.capitalize() if k == 0 else w for k, w in enumerate(base))
        if kinds[i] == 0:
            variant = f"{_QUALIFIERS[quals[i]]} {' '.join(base)}"
        elif kinds[i] == 1:
            variant = " ".join(reversed(base)) if len(base) > 1 else f"{base[0]} {vocab[extra[i]]}"
        else:
            variant = f"{' '.join(base)}, type {1 + quals[i]}"
        acronym = "".join(w[0] for w in base).upper() + (str(quals[i]) if len(base) < 3 else "")
        names = [name]
        for candidate in (variant, acronym, f"{name} {vocab[extra[i]]}", f"{vocab[extra[i]]} {name}"):
            if len(names) >= aliases_per_entity:
                break
            if candidate not in names:
                names.append(candidate)
        k = 2
        while len(names) < aliases_per_entity:
            names.append(f"{name} {k}")
            k += 1
        yield EntityRecord(
            id=f"E{i:07d}",
            name=name,
            aliases=names[1:],
            description=f"A synthetic {_TYPES[types[i]].lower()} related to {' '.join(base[:2])}.",
            type=_TYPES[types[i]],
            prior=float(priors[i]),
        )


def perturb(text: str, rng: np.random.Generator) -> str:
    """A typo: swap, drop or double one character inside a word.

    text (str): The string.
    rng (np.random.Generator): Random source.
    RETURNS (str): The string with one edit (unchanged when too short).
    """
    if len(text) < 4:
        return text
    i = int(rng.integers(1, len(text) - 2))
    op = int(rng.integers(0, 3))
    if op == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if op == 1:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def synthetic_queries(records: List[EntityRecord], n: int, *, seed: int = 1) -> Dict[str, Tuple[List[str], List[str]]]:
    """Query mentions drawn from the records' names, with the true ids.

    records (List[EntityRecord]): The KB's records.
    n (int): Queries per kind.
    seed (int): Random seed.
    RETURNS (Dict[str, Tuple[List[str], List[str]]]): kind -> (mentions,
        true entity ids). Kinds: "exact" (a name as is), "changed" (the name
        upper-cased with an "s": found by normalisation), "typo" (the name
        lower-cased with one character swapped, dropped or doubled).
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(records), size=(3, n))
    exact = [records[i].all_names()[int(rng.integers(0, 2))] for i in picks[0]]
    changed = [records[i].name.upper() + "s" for i in picks[1]]
    typos = [perturb(records[i].name.lower(), rng) for i in picks[2]]
    return {
        kind: (mentions, [records[i].id for i in row])
        for kind, mentions, row in zip(("exact", "changed", "typo"), (exact, changed, typos), picks)
    }


app = typer_app(data_callback=False)


@app.command()
def preview(
    n_entities: int = typer.Option(5, help="Records to print"),
    n_queries: int = typer.Option(2, help="Queries of each kind to print"),
    seed: int = typer.Option(0, help="Random seed of the records"),
) -> None:
    """Print the first synthetic records and a few queries of each kind."""
    records = list(synthetic_records(n_entities, seed=seed))
    for record in records:
        print(f"{record.id}  {record.type:9} {' | '.join(record.all_names())}")
    for kind, (mentions, ids) in synthetic_queries(records, n_queries).items():
        print(f"{kind}: " + ", ".join(f"{m!r} -> {i}" for m, i in zip(mentions, ids)))


if __name__ == "__main__":
    app()
