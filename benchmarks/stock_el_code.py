"""spaCy's stock `entity_linker` in its best setup on BC5CDR/CTD, for
benchmarks/bc5cdr_el.py (passed to `spacy train --code`): an
`InMemoryLookupKB` with case-folded aliases and their priors, and a
candidate generator that case-folds the mention (spaCy's own looks the
mention text up exactly, which finds 3% of the gold concepts).

A module, not a script: it has no command line.
"""
from typing import Callable, Iterable, List

from spacy.kb import Candidate, InMemoryLookupKB, KnowledgeBase
from spacy.tokens import Span
from spacy.util import registry
from spacy.vocab import Vocab


@registry.misc("bench.lowercase_candidates.v1")
def make_lowercase_candidates() -> Callable[[KnowledgeBase, Span], Iterable[Candidate]]:
    def get_candidates(kb: KnowledgeBase, mention: Span) -> Iterable[Candidate]:
        return kb.get_alias_candidates(" ".join(mention.text.lower().split()))

    return get_candidates


@registry.misc("bench.lowercase_candidates_batch.v1")
def make_lowercase_candidates_batch() -> Callable[[KnowledgeBase, Iterable[Span]], Iterable[Iterable[Candidate]]]:
    def get_candidates_batch(kb: KnowledgeBase, mentions: Iterable[Span]) -> List[Iterable[Candidate]]:
        return [kb.get_alias_candidates(" ".join(m.text.lower().split())) for m in mentions]

    return get_candidates_batch


@registry.misc("bench.load_inmemory_kb.v1")
def make_inmemory_kb_loader(path: str) -> Callable[[Vocab], KnowledgeBase]:
    def load(vocab: Vocab) -> KnowledgeBase:
        kb = InMemoryLookupKB(vocab=vocab, entity_vector_length=1)
        kb.from_disk(path)
        return kb

    return load
