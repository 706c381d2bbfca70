"""Rehearsal for continual learning: a trained pipeline, updated on new data
only, keeps what it knew by learning the old pipeline's own tag
distributions on the new texts (and on any raw text) as soft targets.

The new data is often annotated for some labels only (the new label, e.g.
Disease added to a Chemical model): its "O" says "not a Disease", not "not
a Chemical". So each new gold doc becomes a reference doc on which

- tokens inside a gold entity keep their gold tags and have no soft target;
- every other token is missing, marked as none of the gold's labels (the
  partial labels of training/weak.py, which the component's loss already
  reads), with the teacher's distribution over the old tags as its soft
  target (training/distill.py's soft tags, weighted by the component's
  `distill_weight`). The teacher gives the new labels' tags no mass, which
  on these tokens agrees with the gold.

Raw texts have no gold: every token is open, with the teacher's target. The
teacher knows no new label, so there its targets also say "not the new
label": give raw text where the new type is rare, or none.

The teacher is a frozen pipeline loaded from disk (the old pipeline before
this training run), never the model being trained: it runs once, when the
corpus is first read, and is dropped once its targets are made.

    [corpora.train]
    @readers = "spacy_llm_ner.rehearsal_corpus.v1"
    path = ${paths.train}
    teacher = ${paths.teacher}
"""
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Union

import numpy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_model, registry

from .distill import SOFT_TAGS_KEY, distill_corpus, get_soft_tags
from .weak import LABELS_KEY
from .weak_io import read_raw_docs


def corpus_labels(docs: Iterable[Doc]) -> List[str]:
    """The entity labels of annotated docs, sorted.

    docs (Iterable[Doc]): Gold docs.
    RETURNS (List[str]): Their labels.
    """
    return sorted({ent.label_ for doc in docs for ent in doc.ents})


def as_rehearsal_doc(doc: Doc, *, gold_labels: Sequence[str]) -> Doc:
    """Turn a gold doc that carries teacher soft tags (from
    `distill_corpus`) into a rehearsal reference doc, in place: entities of
    `gold_labels` stay gold and lose their soft targets, every other token
    becomes missing and none of `gold_labels`. A doc without entity
    annotation (raw text) is left fully open with its soft targets.

    doc (Doc): The doc, with soft tags.
    gold_labels (Sequence[str]): The labels the gold is complete for.
    RETURNS (Doc): The same doc.
    """
    if not doc.has_annotation("ENT_IOB"):
        return doc
    kept = [ent for ent in doc.ents if ent.label_ in set(gold_labels)]
    stored = get_soft_tags(doc)
    if stored is not None and kept:
        starts, ends = stored["starts"], stored["ends"]
        inside = numpy.zeros(len(starts), dtype=bool)
        for ent in kept:
            inside |= (starts < ent.end_char) & (ends > ent.start_char)
        probs = stored["probs"].copy()
        # A NaN row is "no target" to the soft loss (Decoder.get_soft_loss).
        probs[inside] = numpy.nan
        doc.user_data[SOFT_TAGS_KEY]["probs"] = numpy.asarray(probs, dtype="<f2").tobytes()
    doc.set_ents(kept, default="missing")
    if gold_labels:
        doc.user_data[LABELS_KEY] = sorted(gold_labels)
    return doc


def rehearsal_corpus(
    teacher: Language,
    *,
    docs: Iterable[Doc] = (),
    raw: Iterable[Doc] = (),
    gold_labels: Optional[Sequence[str]] = None,
    component: str = "transformer_ner",
    batch_size: int = 32,
) -> List[Doc]:
    """Rehearsal reference docs: the new gold docs and raw docs with the
    teacher's tag distributions as soft targets (see the module's notes).

    teacher (Language): The old, trained pipeline (frozen: only predicts).
    docs (Iterable[Doc]): New gold docs (changed in place).
    raw (Iterable[Doc]): Unannotated docs (e.g. nlp.make_doc of raw text).
    gold_labels (Optional[Sequence[str]]): The labels the new gold is
        complete for; None: those it has entities of.
    component (str): The teacher's transformer_ner.
    batch_size (int): Docs per teacher batch.
    RETURNS (List[Doc]): The reference docs, gold ones first.
    """
    docs, raw = list(docs), list(raw)
    if any(doc.has_annotation("ENT_IOB") for doc in raw):
        raise ValueError("[rehearsal] Raw docs must have no entity annotation.")
    labels = corpus_labels(docs) if gold_labels is None else list(gold_labels)
    out = list(distill_corpus(teacher, docs=[*docs, *raw], component=component, batch_size=batch_size))
    return [as_rehearsal_doc(doc, gold_labels=labels) for doc in out]


class RehearsalCorpus:
    """A training corpus of new gold docs (and raw texts) with a frozen
    teacher's soft targets, made on first read and kept in memory.

    path (Union[str, Path]): A .spacy file of new gold docs.
    teacher (Union[str, Path]): The old pipeline's folder or package.
    component (str): The teacher's transformer_ner.
    gold_labels (Optional[List[str]]): Labels the new gold is complete for
        (None: those it has entities of).
    texts (Optional[Union[str, Path]]): Raw text for extra rehearsal (.txt:
        a doc per line, .jsonl: "text" fields, or .spacy).
    limit (int): Use at most this many gold docs (0: all).
    batch_size (int): Docs per teacher batch.
    """

    def __init__(
        self,
        path: Union[str, Path],
        teacher: Union[str, Path],
        *,
        component: str = "transformer_ner",
        gold_labels: Optional[List[str]] = None,
        texts: Optional[Union[str, Path]] = None,
        limit: int = 0,
        batch_size: int = 32,
    ) -> None:
        self.path = Path(path)
        self.teacher = teacher
        self.component = component
        self.gold_labels = gold_labels
        self.texts = Path(texts) if texts else None
        self.limit = limit
        self.batch_size = batch_size
        self._docs: Optional[List[Doc]] = None

    def reference_docs(self, nlp: Language) -> List[Doc]:
        """The rehearsal reference docs (made once, by the teacher).

        nlp (Language): The pipeline being trained (its vocab holds the docs).
        RETURNS (List[Doc]): The docs.
        """
        if self._docs is None:
            gold = list(DocBin().from_disk(self.path).get_docs(nlp.vocab))
            gold = gold[: self.limit] if self.limit else gold
            raw = [nlp.make_doc(doc.text) for doc in read_raw_docs(self.texts, nlp)] if self.texts else []
            # Loaded here and dropped on return: one frozen copy of the old
            # pipeline, alive only while it makes the targets.
            teacher = load_model(self.teacher)
            self._docs = rehearsal_corpus(
                teacher, docs=gold, raw=raw, gold_labels=self.gold_labels, component=self.component,
                batch_size=self.batch_size,
            )
        return self._docs

    def __call__(self, nlp: Language) -> Iterator[Example]:
        for doc in self.reference_docs(nlp):
            yield Example(nlp.make_doc(doc.text), doc)


@registry.readers("spacy_llm_ner.rehearsal_corpus.v1")
def create_rehearsal_corpus(
    path: Path,
    teacher: str,
    component: str = "transformer_ner",
    gold_labels: Optional[List[str]] = None,
    texts: Optional[Path] = None,
    limit: int = 0,
    batch_size: int = 32,
) -> Callable[[Language], Iterable[Example]]:
    """The `[corpora.train]` reader for continual learning: new gold docs
    with a frozen teacher's soft targets (see RehearsalCorpus).

    path (Path): A .spacy file of new gold docs.
    teacher (str): The old pipeline's folder or package name.
    component (str): The teacher's transformer_ner.
    gold_labels (Optional[List[str]]): Labels the new gold is complete for.
    texts (Optional[Path]): Raw text for extra rehearsal.
    limit (int): At most this many gold docs (0: all).
    batch_size (int): Docs per teacher batch.
    RETURNS (Callable[[Language], Iterable[Example]]): The corpus.
    """
    return RehearsalCorpus(
        path, teacher, component=component, gold_labels=gold_labels, texts=texts, limit=limit, batch_size=batch_size
    )
