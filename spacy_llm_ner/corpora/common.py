"""What every corpus reader shares: the mention tuple, the conversion counts
and the error for malformed input."""
import functools
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

from spacy.tokens import Doc

PathLike = Union[str, Path]
# A mention as read from a file: (start_char, end_char, label, kb_id, line number, field name).
Mention = Tuple[int, int, str, str, int, str]


@dataclass
class ConvertStats:
    """What a conversion produced and what it could not keep.

    docs (int): Number of Docs written.
    sents (int): Number of sentences (CoNLL: as in the file; otherwise as set
        by the rule-based sentencizer).
    tokens (int): Number of tokens.
    entities (Counter): Number of entities per label.
    with_kb_id (int): Number of entities carrying a non-empty ``kb_id_``.
    skipped (Counter): Things read but not kept, by reason.
    repaired (Counter): Things kept after a change, by reason.
    examples (Dict[str, str]): The first case of a reason of `repaired` or
        `skipped`, where one is noted ("file, line 3, column 6 (id): ' D1 '").
    """

    docs: int = 0
    sents: int = 0
    tokens: int = 0
    entities: Counter = field(default_factory=Counter)
    with_kb_id: int = 0
    skipped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    examples: Dict[str, str] = field(default_factory=dict)

    def repair(self, reason: str, example: str) -> None:
        """Count one repair and keep the first example of its reason.

        reason (str): What was repaired. example (str): Where and what.
        """
        self.repaired[reason] += 1
        self.examples.setdefault(reason, example)

    def add_doc(self, doc: Doc) -> None:
        """Count one Doc's tokens, sentences and entities.

        doc (Doc): The converted Doc.
        """
        self.docs += 1
        self.tokens += len(doc)
        if doc.has_annotation("SENT_START"):
            self.sents += sum(1 for _ in doc.sents)
        for ent in doc.ents:
            self.entities[ent.label_] += 1
            if ent.kb_id_:
                self.with_kb_id += 1

    @property
    def n_entities(self) -> int:
        """RETURNS (int): The number of entities of every label."""
        return sum(self.entities.values())


def line_error(path: PathLike, line_no: int, field_name: str, problem: str) -> ValueError:
    """The error for malformed input: names the file, the line and the field,
    so that a large corpus can be fixed without a debugger.

    path (PathLike): The file.
    line_no (int): The 1-based line number.
    field_name (str): The column or JSON field, e.g. "column 2 (start)".
    problem (str): What is wrong.
    RETURNS (ValueError): The error, to raise.
    """
    return ValueError(f"{path}, line {line_no}, {field_name}: {problem}")


def require_docs(reader: Callable[..., Iterator[Doc]]) -> Callable[..., Iterator[Doc]]:
    """Make a corpus reader raise when its file yields no Doc at all: an empty
    or blank-only file is a failed download or a wrong path, and converting
    it to "0 docs" with success would hide that until training.

    reader (Callable[..., Iterator[Doc]]): A reader taking the path first.
    RETURNS (Callable[..., Iterator[Doc]]): The same reader, raising
        ValueError naming the file when it yields nothing.
    """

    @functools.wraps(reader)
    def read(path: PathLike, *args: Any, **kwargs: Any) -> Iterator[Doc]:
        n_docs = 0
        for doc in reader(path, *args, **kwargs):
            n_docs += 1
            yield doc
        if n_docs == 0:
            raise ValueError(f"{path}: no documents (the file is empty or holds only blank lines)")

    return read


def unterminated_last_line(path: PathLike, line_no: int, *, strict: bool) -> None:
    """Report a last line without a final newline: the file may have been cut
    inside it (an id cut from D011125 to D011, an abstract mid-sentence), and
    nothing else would tell.

    path (PathLike): The file.
    line_no (int): The number of its last line.
    strict (bool): Raise instead of warning.
    RAISES (ValueError): With `strict`.
    """
    problem = "no final newline: the last line may be cut short (file truncated?)"
    if strict:
        raise line_error(path, line_no, "line", problem)
    warnings.warn(f"{path}, line {line_no}: {problem}; read as it is (strict=True or --strict makes this an error)", stacklevel=3)


LINK_ID_WHITESPACE = "link ids with stray whitespace (stripped)"


def clean_link_id(kb_id: str, *, where: str, stats: Optional[ConvertStats]) -> str:
    """A link id without surrounding whitespace: " D012345 " would never
    equal the KB's "D012345", so the entity could not be linked. The repair
    is counted (with the first example) in `stats`.

    kb_id (str): The id as read. where (str): "file, line N, field", for the
        example. stats (Optional[ConvertStats]): Updated with the repair.
    RETURNS (str): The stripped id.
    """
    stripped = kb_id.strip()
    if stripped != kb_id and stats is not None:
        stats.repair(LINK_ID_WHITESPACE, f"{where}: {kb_id!r}")
    return stripped
