"""Write a saved LinkerKB folder straight from records, without spaCy.

`build-kb` needs no `Vocab` and no `KnowledgeBase`: the folder is the
entity store (segments, idf, vectors) and the settings `LinkerKB` would
save. Importing spaCy costs about two seconds (thinc imports torch), more
than building a small KB, so the command builds the store and writes it
here; the folder is byte for byte the one
`LinkerKB.from_records(Vocab(), records).to_disk(path)` writes (both take
their settings from `persistence.kb_settings`).
"""
from pathlib import Path
from typing import Iterable, Sequence, Union

from .candidates import STAGES, CascadeConfig
from .persistence import kb_settings, save_folder
from .records import EntityRecord
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
    RETURNS (EntityStore): The entities written (its len: how many).
    RAISES (KBFormatError): On an invalid record or a repeated id.
    """
    # The same validation and order of building as LinkerKB.__init__ and
    # add_entities, so that the files are the same.
    config = CascadeConfig(
        top_k=top_k, stages=tuple(stages), min_ngram_score=min_ngram_score, ngram_retrieval=ngram_retrieval
    )
    store = EntityStore.empty(entity_vector_length)
    store.add(records, vectors=None, vector_length=entity_vector_length)
    cfg = kb_settings(
        config=config, entity_vector_length=int(entity_vector_length),
        use_doc_abbreviations=use_doc_abbreviations, n_segments=len(store.segments),
    )
    save_folder(Path(path), cfg, store)
    return store
