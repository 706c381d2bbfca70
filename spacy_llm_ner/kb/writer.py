"""Write a saved LinkerKB folder straight from records, without spaCy.

`build-kb` needs no `Vocab` and no `KnowledgeBase`: the folder is the
entity store (segments, idf, vectors) and the settings `LinkerKB` would
save. Importing spaCy costs about two seconds (thinc imports torch), more
than building a small KB, so the command builds the store and writes it
here; the folder is byte for byte the one
`LinkerKB.from_records(Vocab(), records).to_disk(path)` writes (both take
their settings from `persistence.kb_settings`).
"""
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, List, Sequence, Union

import numpy as np

from .candidates import STAGES, CascadeConfig
from .persistence import kb_settings, load_segment, save_folder, save_head, save_segment
from .records import EntityRecord
from .segment import Segment
from .store import EntityStore

__all__ = ["write_kb"]


def write_kb(
    records: Iterable[EntityRecord],
    path: Union[str, Path],
    *,
    entity_vector_length: int = 0,
    top_k: int = 10,
    stages: Sequence[str] = STAGES,
    min_ngram_score: float = 0.0,
    use_doc_abbreviations: bool = True,
    ngram_retrieval: str = "words+grams",
    segment_size: int = 0,
) -> EntityStore:
    """Build a KB from records and save it as a LinkerKB folder, loadable
    with `LinkerKB.load` or `spacy_llm_ner.load_kb.v1`.

    records (Iterable[EntityRecord]): The entities (streamed once).
    path (Union[str, Path]): The folder (created).
    entity_vector_length (int): Length of the entity vectors (zeros).
    top_k, stages, min_ngram_score, use_doc_abbreviations: The cascade
        settings saved with the KB, as for `LinkerKB`.
    ngram_retrieval (str): The n-gram stage's retrieval (`CascadeConfig`):
        "words+grams", "words" (fastest on KBs of millions of names) or "grams".
    segment_size (int): Stream the records into segments of this many
        entities, each written and then memory-mapped before the next is
        built, so that peak memory is one segment's build, not the KB's
        (0: one segment). The n-gram idf is fitted on the first segment.
    RETURNS (EntityStore): The entities written (its len: how many).
    RAISES (KBFormatError): On an invalid record or a repeated id.
    """
    # The same validation and order of building as LinkerKB.__init__ and
    # add_entities, so that the files are the same.
    config = CascadeConfig(
        top_k=top_k, stages=tuple(stages), min_ngram_score=min_ngram_score, ngram_retrieval=ngram_retrieval
    )
    if segment_size > 0:
        store = _write_segments(records, Path(path), segment_size=segment_size, vector_length=entity_vector_length)
    else:
        store = EntityStore.empty(entity_vector_length)
        store.add(records, vectors=None, vector_length=entity_vector_length)
    cfg = kb_settings(
        config=config, entity_vector_length=int(entity_vector_length),
        use_doc_abbreviations=use_doc_abbreviations, n_segments=len(store.segments),
    )
    if segment_size > 0:
        save_head(Path(path), cfg, store)  # the segments are written already
    else:
        save_folder(Path(path), cfg, store)
    return store


def _write_segments(
    records: Iterable[EntityRecord], path: Path, *, segment_size: int, vector_length: int
) -> EntityStore:
    """Build and save one segment at a time; the store returned holds them
    memory-mapped (vectors are zeros, `np.zeros` pages are not touched)."""
    segments: List[Segment] = []
    idf = None

    def taken(entity_id: str) -> bool:
        return any(seg.row(entity_id) is not None for seg in segments)

    for i, chunk in enumerate(_chunks(records, segment_size)):
        built = Segment.build(chunk, idf=idf, taken=taken)
        if idf is None:
            idf = built.ngrams.idf
        save_segment(path, i, built)
        del built
        segments.append(load_segment(path, i, idf, mmap=True))
    n = sum(len(seg) for seg in segments)
    return EntityStore(segments=segments, idf=idf, vectors=np.zeros((n, vector_length), dtype=np.float32))


def _chunks(records: Iterable[EntityRecord], size: int) -> Iterator[List[EntityRecord]]:
    it = iter(records)
    while True:
        chunk = list(islice(it, size))
        if not chunk:
            return
        yield chunk
