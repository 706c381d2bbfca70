"""Knowledge distillation for `transformer_ner`: a trained teacher pipeline's
per-token tag distributions, stored on the docs of a training corpus, become
soft targets for a student trained with plain `spacy train`.

The teacher labels docs once (`python -m spacy_llm_ner distill-corpus`); each
doc keeps, in `doc.user_data`, the teacher's tag names and, for every token of
the teacher's tokenization, its character offsets and tag probabilities
(float16). A student `transformer_ner` that finds them on a training example's
reference doc adds `distill_weight` x KL(teacher || student) per token to its
gold loss. Tokens are matched by character offsets, so a student whose
tokenizer splits differently still learns from every token both agree on.
"""
from itertools import islice, tee
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

SOFT_TAGS_KEY = "spacy_llm_ner.soft_tags"


def set_soft_tags(doc: Doc, tokens: Doc, probs: numpy.ndarray, tags: Sequence[str]) -> None:
    """Attach a teacher's tag distributions to a doc.

    doc (Doc): The doc that will be stored in the corpus (e.g. the gold doc).
    tokens (Doc): The doc the teacher tagged (same text; its tokens).
    probs (numpy.ndarray): (len(tokens), len(tags)) probabilities.
    tags (Sequence[str]): The teacher's tag names, in column order.
    """
    if doc.text != tokens.text:
        raise ValueError("[distill] The teacher's doc and the stored doc have different texts.")
    if probs.shape != (len(tokens), len(tags)):
        raise ValueError(f"[distill] Expected probabilities of shape {(len(tokens), len(tags))}, got {probs.shape}.")
    starts = numpy.asarray([t.idx for t in tokens], dtype="<i4")
    ends = starts + numpy.asarray([len(t) for t in tokens], dtype="<i4")
    doc.user_data[SOFT_TAGS_KEY] = {
        "tags": list(tags),
        "starts": starts.tobytes(),
        "ends": ends.tobytes(),
        "probs": numpy.asarray(probs, dtype="<f2").tobytes(),
    }


def get_soft_tags(doc: Doc) -> Optional[Dict]:
    """The teacher distributions stored on a doc, decoded.

    doc (Doc): A doc from a distillation corpus.
    RETURNS (Optional[Dict]): {"tags", "starts", "ends", "probs"} with
        arrays, or None if the doc has none.
    """
    stored = doc.user_data.get(SOFT_TAGS_KEY)
    if stored is None:
        return None
    tags = list(stored["tags"])
    starts = numpy.frombuffer(stored["starts"], dtype="<i4")
    ends = numpy.frombuffer(stored["ends"], dtype="<i4")
    probs = numpy.frombuffer(stored["probs"], dtype="<f2").astype("f8")
    if len(starts) != len(ends) or probs.size != len(starts) * len(tags):
        raise ValueError(f"[distill] Corrupt teacher distributions on doc {doc.text[:40]!r}...")
    return {"tags": tags, "starts": starts, "ends": ends, "probs": probs.reshape((len(starts), len(tags)))}


def soft_targets(example: Example, tags: Sequence[str]) -> Optional[numpy.ndarray]:
    """Teacher probabilities for the tokens of example.predicted, in the
    student's tag order.

    example (Example): A training example whose reference doc may carry
        teacher distributions.
    tags (Sequence[str]): The student's tag names.
    RETURNS (Optional[numpy.ndarray]): (len(predicted), len(tags)); rows of
        NaN for tokens the teacher did not tokenize alike; None if the doc
        has no distributions.
    """
    stored = get_soft_tags(example.reference)
    if stored is None:
        return None
    index = {tag: i for i, tag in enumerate(tags)}
    unknown = [tag for tag in stored["tags"] if tag not in index]
    if unknown:
        raise ValueError(
            f"[distill] The teacher's tags {unknown} are not among the student's tags {list(tags)}: "
            "give the student the teacher's labels and tag scheme."
        )
    columns = numpy.asarray([index[tag] for tag in stored["tags"]], dtype="i")
    doc = example.predicted
    out = numpy.full((len(doc), len(tags)), numpy.nan)
    if not len(doc) or not len(stored["starts"]):
        return out
    starts = numpy.asarray([t.idx for t in doc], dtype="i8")
    ends = starts + numpy.asarray([len(t) for t in doc], dtype="i8")
    # Teacher tokens are sorted by offset: a student token has a target when
    # a teacher token starts and ends at the same characters.
    pos = numpy.clip(numpy.searchsorted(stored["starts"], starts), 0, len(stored["starts"]) - 1)
    same = (stored["starts"][pos] == starts) & (stored["ends"][pos] == ends)
    rows = numpy.zeros((int(same.sum()), len(tags)))
    rows[:, columns] = stored["probs"][pos[same]]
    out[same] = rows
    return out


def teacher_distributions(
    nlp: Language, docs: Iterable[Doc], *, component: str = "transformer_ner", batch_size: int = 32
) -> Iterator[numpy.ndarray]:
    """Run a teacher pipeline up to its `component` and yield each doc's tag
    distributions (softmax probabilities or CRF marginals).

    nlp (Language): The trained teacher.
    docs (Iterable[Doc]): Docs made by nlp.make_doc.
    component (str): The teacher's transformer_ner.
    batch_size (int): Docs per batch.
    YIELDS (numpy.ndarray): (len(doc), n_tags) per doc, in order.
    """
    ner = _teacher_ner(nlp, component)
    before = nlp.pipe_names[: nlp.pipe_names.index(component)]
    stream = iter(docs)
    while True:
        batch = list(islice(stream, batch_size))
        if not batch:
            break
        yield from _distributions(nlp, ner, before, batch)


def _teacher_ner(nlp: Language, component: str):
    if component not in nlp.pipe_names:
        raise ValueError(f"[distill] The teacher has no component {component!r}: it has {nlp.pipe_names}.")
    ner = nlp.get_pipe(component)
    if not hasattr(ner, "decoder"):
        raise ValueError(f"[distill] {component!r} is a {type(ner).__name__}, not a transformer_ner.")
    return ner


def _distributions(nlp: Language, ner, before: List[str], docs: List[Doc]) -> List[numpy.ndarray]:
    for name in before:
        docs = list(nlp.get_pipe(name).pipe(docs))
    n_tags = len(ner.tagset)
    nonempty = [doc for doc in docs if len(doc)]
    marginals = iter(ner.decoder.token_marginals(ner.model.predict(nonempty)) if nonempty else [])
    return [next(marginals) if len(doc) else numpy.zeros((0, n_tags)) for doc in docs]


def distill_corpus(
    teacher: Language,
    *,
    docs: Iterable[Doc] = (),
    texts: Iterable[str] = (),
    component: str = "transformer_ner",
    batch_size: int = 32,
) -> Iterator[Doc]:
    """Docs carrying the teacher's distributions: annotated docs keep their
    gold annotation, raw texts become docs without entities (missing, not
    "O"), so a student learns from the teacher alone there.

    teacher (Language): The trained teacher pipeline.
    docs (Iterable[Doc]): Annotated docs (e.g. the training corpus).
    texts (Iterable[str]): Unlabelled texts.
    component (str): The teacher's transformer_ner.
    batch_size (int): Docs per teacher batch.
    YIELDS (Doc): Docs to store with DocBin(store_user_data=True).
    """
    tags = _teacher_ner(teacher, component).tagset.tags

    def pairs() -> Iterator:
        # The teacher tags a scratch doc of the same text: its pipes leave
        # annotations (e.g. doc._.trf_data) that must not be stored.
        for doc in docs:
            yield doc, teacher.make_doc(doc.text)
        for text in texts:
            yield teacher.make_doc(text), teacher.make_doc(text)

    stored, tagged = tee(pairs())
    distributions = teacher_distributions(
        teacher, (tokens for _, tokens in tagged), component=component, batch_size=batch_size
    )
    for (doc, tokens), probs in zip(stored, distributions):
        set_soft_tags(doc, tokens, probs, tags)
        yield doc
