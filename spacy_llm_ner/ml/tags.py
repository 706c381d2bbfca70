"""Tag schemes (BILUO, IOB): tag inventories, transition constraints and
vectorised conversion between tag sequences and entity spans."""
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy

SCHEMES = ("BILUO", "IOB")
# Tag kinds, stored as small ints so decoding can be vectorised.
O, B, I, L, U = 0, 1, 2, 3, 4
_KIND_PREFIX = {B: "B", I: "I", L: "L", U: "U"}
_BILUO_TO_IOB = {"B": "B", "I": "I", "L": "I", "U": "B"}


@dataclass(frozen=True)
class TagSet:
    """The tags of one scheme over a fixed list of entity labels.

    labels (Tuple[str, ...]): The entity labels, in a fixed order.
    scheme (str): "BILUO" or "IOB".
    """

    labels: Tuple[str, ...]
    scheme: str = "BILUO"
    tags: Tuple[str, ...] = field(init=False)
    kinds: numpy.ndarray = field(init=False, repr=False, compare=False)
    label_ids: numpy.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(
                f"Unknown tag scheme {self.scheme!r}: expected one of {', '.join(SCHEMES)}."
            )
        kinds_of_scheme = (B, I, L, U) if self.scheme == "BILUO" else (B, I)
        tags = ["O"]
        kinds = [O]
        label_ids = [-1]
        for i, label in enumerate(self.labels):
            for kind in kinds_of_scheme:
                tags.append(f"{_KIND_PREFIX[kind]}-{label}")
                kinds.append(kind)
                label_ids.append(i)
        object.__setattr__(self, "tags", tuple(tags))
        object.__setattr__(self, "kinds", numpy.asarray(kinds, dtype="i"))
        object.__setattr__(self, "label_ids", numpy.asarray(label_ids, dtype="i"))

    def __len__(self) -> int:
        return len(self.tags)

    @cached_property
    def index(self) -> dict:
        return {tag: i for i, tag in enumerate(self.tags)}

    def constraints(self) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Which transitions, first tags and last tags are valid.

        RETURNS (Tuple[ndarray, ndarray, ndarray]): Boolean arrays
            (n_tags, n_tags) for transitions prev -> next, (n_tags,) for the
            first tag and (n_tags,) for the last tag of a sequence.
        """
        kinds, labels = self.kinds, self.label_ids
        prev_k, next_k = kinds[:, None], kinds[None, :]
        same = labels[:, None] == labels[None, :]
        continues = (next_k == I) | (next_k == L)
        if self.scheme == "BILUO":
            inside = (prev_k == B) | (prev_k == I)
            # Inside an entity only I/L of the same label may follow; outside,
            # only O/B/U may follow.
            trans = numpy.where(inside, continues & same, ~continues)
            start = ~numpy.isin(kinds, (I, L))
            end = ~numpy.isin(kinds, (B, I))
        else:
            trans = numpy.where(next_k == I, (prev_k != O) & same, True)
            start = kinds != I
            end = numpy.ones(len(kinds), dtype=bool)
        return trans.astype(bool), start.astype(bool), end.astype(bool)

    def continuation(self) -> numpy.ndarray:
        """(n_tags, n_tags) boolean: the next tag extends the entity of the
        previous one. Used to close a span when computing its marginal."""
        kinds, labels = self.kinds, self.label_ids
        same = labels[:, None] == labels[None, :]
        nxt = kinds[None, :]
        return same & (kinds[:, None] != O) & ((nxt == I) | (nxt == L))

    def tags_without(self, labels: Iterable[str]) -> numpy.ndarray:
        """Which tags are of none of `labels` ("O" always is): what a missing
        token may be when a source says it is none of them.

        labels (Iterable[str]): Entity labels ruled out; unknown ones ignored.
        RETURNS (ndarray): Boolean (n_tags,) array.
        """
        ruled_out = set(labels)
        excluded = [i for i, label in enumerate(self.labels) if label in ruled_out]
        return ~numpy.isin(self.label_ids, excluded)

    def from_biluo(self, biluo: Sequence[Optional[str]]) -> numpy.ndarray:
        """Map spaCy's aligned BILUO strings to tag ids; -1 marks a missing
        or misaligned token (None or "-"), which the loss leaves open.

        biluo (Sequence[Optional[str]]): e.g. from Example.get_aligned_ner().
        RETURNS (ndarray): int array of tag ids, -1 where unknown.
        """
        index = self.index
        out = numpy.full(len(biluo), -1, dtype="i")
        for i, tag in enumerate(biluo):
            if tag is None or tag == "-" or tag == "":
                continue
            if tag != "O" and self.scheme == "IOB":
                tag = _BILUO_TO_IOB[tag[0]] + tag[1:]
            if tag not in index:
                raise ValueError(
                    f"Tag {tag!r} in the gold data is not in the label set "
                    f"{list(self.labels)}. Add the label to the component's "
                    "labels (or let initialize read them from the data); a trained (sourced) component "
                    "takes new labels from [initialize.after_init] spacy_llm_ner.add_ner_labels.v1."
                )
            out[i] = index[tag]
        return out

    def to_spans(self, tag_ids: numpy.ndarray) -> numpy.ndarray:
        """Decode a valid tag sequence into entity spans without a Python loop
        over tokens.

        tag_ids (ndarray): A valid sequence of tag ids (as Viterbi returns).
        RETURNS (ndarray): int array (n_ents, 3) of (start, end, label_id),
            end exclusive.
        """
        tag_ids = numpy.asarray(tag_ids, dtype="i")
        if tag_ids.size == 0:
            return numpy.zeros((0, 3), dtype="i")
        kinds = self.kinds[tag_ids]
        if self.scheme == "BILUO":
            starts = numpy.flatnonzero((kinds == B) | (kinds == U))
            ends = numpy.flatnonzero((kinds == L) | (kinds == U)) + 1
        else:
            starts = numpy.flatnonzero(kinds == B)
            next_kinds = numpy.append(kinds[1:], O)
            ends = numpy.flatnonzero((kinds != O) & (next_kinds != I)) + 1
        if len(starts) != len(ends):
            raise ValueError("Invalid tag sequence: entity starts and ends do not pair up.")
        labels = self.label_ids[tag_ids[starts]] if len(starts) else numpy.zeros(0, "i")
        return numpy.stack([starts, ends, labels], axis=1).astype("i")

    def from_spans(self, length: int, spans: Iterable[Tuple[int, int, int]]) -> numpy.ndarray:
        """Encode non-overlapping (start, end, label_id) spans as tag ids.

        length (int): Number of tokens.
        spans (Iterable[Tuple[int, int, int]]): Spans, end exclusive.
        RETURNS (ndarray): int array of tag ids.
        """
        index = self.index
        out = numpy.zeros(length, dtype="i")
        for start, end, label_id in spans:
            label = self.labels[label_id]
            if self.scheme == "BILUO" and end - start == 1:
                out[start] = index[f"U-{label}"]
                continue
            out[start] = index[f"B-{label}"]
            out[start + 1 : end] = index[f"I-{label}"]
            if self.scheme == "BILUO":
                out[end - 1] = index[f"L-{label}"]
        return out


def labels_from_tags(tags: Iterable[str]) -> List[str]:
    """Entity labels named by BILUO/IOB tag strings, sorted."""
    return sorted({t.split("-", 1)[1] for t in tags if t and t not in ("O", "-")})
