"""Data in and out of the weak labeller: raw text to label, stop-lists, and
the entities of annotated docs as extra names (`records_from_docs`). The
labeller itself is `spacy_llm_ner.training.weak.WeakLabeler`."""
import json
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..kb.records import EntityRecord

PathLike = Union[str, Path]


def _is_entity_id(kb_id: str) -> bool:
    # BC5CDR-style placeholders: "-1" (no concept), "D1|D2" (composite).
    return bool(kb_id) and kb_id != "-1" and "|" not in kb_id


def records_from_docs(docs: Iterable[Doc]) -> List[EntityRecord]:
    """The entities of annotated docs as records: one per label and kb_id
    (or, without a kb_id or with a placeholder such as "-1" or "D1|D2", per
    label and lower-cased text), its names the
    mention texts in first-seen order. For names a KB lacks, e.g. those of a
    few gold docs for a type no vocabulary covers.

    docs (Iterable[Doc]): Docs with `doc.ents`.
    RETURNS (List[EntityRecord]): The records, in first-seen order.
    """
    names: Dict[Tuple[str, str], Dict[str, None]] = {}
    for doc in docs:
        for ent in doc.ents:
            kb_id = ent.kb_id_ if _is_entity_id(ent.kb_id_) else ""
            key = (ent.label_, kb_id or f"{ent.label_}:{ent.text.lower()}")
            names.setdefault(key, {})[ent.text] = None
    return [
        EntityRecord(entity_id, next(iter(texts)), list(texts)[1:], type=label)
        for (label, entity_id), texts in names.items()
    ]


def read_stoplist(path: PathLike) -> List[str]:
    """Stop-list entries: one per line; blank lines and lines starting with
    "#" are skipped.

    path (PathLike): A UTF-8 text file.
    RETURNS (List[str]): The entries.
    RAISES (ValueError): Naming the file and line of undecodable text.
    """
    out = []
    with Path(path).open("rb") as file_:
        for number, raw in enumerate(file_, 1):
            try:
                line = raw.decode("utf8").strip()
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}, line {number}: not valid UTF-8 ({err.reason})") from None
            if line and not line.startswith("#"):
                out.append(line)
    return out


def read_raw_docs(path: PathLike, nlp: Language) -> Iterator[Doc]:
    """Unlabelled docs from a file: .txt (one doc per non-empty line), .jsonl
    (the "text" field of each non-empty line) or .spacy (the docs' tokens,
    their annotation ignored).

    path (PathLike): The file.
    nlp (Language): Its tokenizer splits .txt and .jsonl texts.
    YIELDS (Doc): Docs without annotation.
    RAISES (ValueError): Naming the file, line and field of bad input.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            yield Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
        return
    if suffix not in (".txt", ".jsonl"):
        raise ValueError(f"{path}: unsupported raw-text file (expected .txt, .jsonl or .spacy)")
    with path.open("rb") as file_:
        for number, raw in enumerate(file_, 1):
            try:
                line = raw.decode("utf8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}, line {number}: not valid UTF-8 ({err.reason})") from None
            if not line.strip():
                continue
            if suffix == ".txt":
                yield nlp.make_doc(line)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: malformed JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict) or "text" not in record:
                raise ValueError(
                    f"{path}, line {number}, field 'text': missing (expected an object with a 'text' string)"
                )
            if not isinstance(record["text"], str):
                raise ValueError(
                    f"{path}, line {number}, field 'text': expected a string, got {type(record['text']).__name__}"
                )
            yield nlp.make_doc(record["text"])
