"""Weak supervision: label raw text with a knowledge base's names and aliases.

Every name and alias of the KB's records (optionally only some types) is a
key: whitespace collapsed to single spaces and, unless `case_sensitive`,
lower-cased. The keys are stored in a marisa-trie. A doc is put into the
same form, its tokens' texts joined by one space wherever the text has
whitespace, and at every token start `Trie.prefixes` lists the keys that
begin there; a key is a match only if it also ends where a token ends. So
matches fall on token boundaries, but a vocabulary's names never have to be
tokenized, and a name matches however the tokenizer splits it in context
("non-Hodgkin", "Crohn's"). A trie rather than spaCy's `PhraseMatcher`
because it builds in a fraction of the time and memory for a vocabulary of
CTD's size, and matching is not the bottleneck (the tokenizer is slower than
either); both find the same matches (benchmarks/weak_label_matchers.py).

Overlapping matches are resolved longest first (in tokens), then leftmost,
like `spacy.util.filter_spans`. Names shorter than `min_length` characters
are left out, and names on the stop-list (common words that are also
aliases, e.g. CTD's "ALL" or "Cold") are found but not labelled: they are
counted as stop-list hits wherever no kept match overlaps them. A key shared
by several entities is ambiguous: its kb_id is the entity whose preferred
name it is (else the first in KB order) and its label that entity's type;
the doc counts such matches in ``user_data["weak_ambiguous"]``.

Each labelled doc gets ``doc.ents`` (label = record type, kb_id = entity
id), the same spans in ``doc.spans["weak"]``, and ``user_data["silver"] =
True``. Tokens outside the matches are "O" (the KB is assumed complete), or
missing with ``missing_outside=True`` (the KB says nothing outside its
matches), or, with ``partial_outside=True``, missing and marked as none of
the KB's labels: ``user_data["weak_labels"]`` lists them, and
`transformer_ner`'s loss lets such a token take any other tag (a Disease
vocabulary taken as complete for Disease says nothing about chemicals).
Stop-list hits are not marked: their tokens stay fully open
(``doc.spans["weak_stoplisted"]``), and so do the tokens of `open_words`
(``doc.spans["weak_open"]``): words that a name missing from the KB is
likely made of (see `name_words`), so that "not Disease" is not taught on
the diseases a vocabulary lacks.

With `abbreviations=True`, a short form defined in the doc right after a
matched long form ("acute renal failure (ARF)", found by
`find_abbreviation_definitions`) is labelled like the long form wherever it
occurs in the doc as whole tokens, case as written, even when the short form
alone is on the stop-list or not a name of the KB. Defined abbreviations are
most of the mentions a vocabulary misses in abstracts (PD, ALF, VTE, ...).

Reading raw text and stop-lists, and records from annotated docs, are in
`spacy_llm_ner.training.weak_io`.
"""
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import marisa_trie
from spacy.attrs import IDX, IS_SPACE, LENGTH, SPACY
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc, Span

from ..kb.abbreviations import short_form_uses
from ..kb.records import EntityRecord

SILVER_KEY = "silver"
AMBIGUOUS_KEY = "weak_ambiguous"
LABELS_KEY = "weak_labels"
STOPLISTED_KEY = "weak_stoplisted"
OPEN_WORDS_KEY = "weak_open"
# Span groups whose tokens a partial label leaves fully open.
OPEN_SPAN_KEYS = (STOPLISTED_KEY, OPEN_WORDS_KEY)
SPANS_KEY = "weak"
_ARRAY_ATTRS = [IDX, LENGTH, IS_SPACE, SPACY]
DEFAULT_LABEL = "ENTITY"
# spaCy's English stop words: the common words that also occur as
# (abbreviation) aliases in biomedical vocabularies, such as "all", "was", "can".
DEFAULT_STOPLIST: frozenset = frozenset(STOP_WORDS)


def _key(text: str, case_sensitive: bool) -> str:
    text = " ".join(text.split())
    return text if case_sensitive else text.lower()


@dataclass
class WeakLabelStats:
    """Counts over the docs a `WeakLabeler` has labelled.

    docs (int): Docs labelled.
    docs_with_mentions (int): Docs with at least one mention.
    mentions (Counter): Mentions per label.
    stoplist_hits (Counter): Skipped stop-list matches per key.
    ambiguous (int): Mentions whose key names several entities.
    """

    docs: int = 0
    docs_with_mentions: int = 0
    mentions: Counter = field(default_factory=Counter)
    stoplist_hits: Counter = field(default_factory=Counter)
    ambiguous: int = 0


@dataclass
class WeakMatch:
    """One mention found in a doc.

    start (int): First token.
    end (int): One past the last token.
    key (str): The matched name, normalised.
    entity_id (str): The chosen entity.
    label (str): Its type.
    n_entities (int): How many entities share the key (> 1: ambiguous).
    """

    start: int
    end: int
    key: str
    entity_id: str
    label: str
    n_entities: int


class WeakLabeler:
    """Dictionary labeller over a KB's names (see the module docstring).

    records (Iterable[EntityRecord]): The KB's entities (streamed once).
    types (Optional[Sequence[str]]): Only records of these types.
    stoplist (Iterable[str]): Names never labelled (compared lower-cased,
        or as written with `case_sensitive`).
    min_length (int): Names shorter than this (in characters) are left out.
    case_sensitive (bool): Match case exactly.
    missing_outside (bool): Leave tokens outside matches missing, not "O".
    partial_outside (bool): Leave them missing and mark them as none of the
        KB's labels (a partial label; implies `missing_outside`).
    abbreviations (bool): Label the short forms defined after a matched long
        form, wherever they occur in the doc.
    open_words (Iterable[str]): Words whose tokens a partial label leaves
        fully open (compared lower-cased, or as written with `case_sensitive`;
        without `partial_outside` nothing is denied, so they do nothing).
    extra_records (Iterable[EntityRecord]): Names not taken as complete, such
        as those of annotated docs (`records_from_docs`): matched like the
        KB's (`types` filters them too; one with a KB entity's id and type
        adds its names to that entity), but a partial label denies only the
        KB's own types.
    default_label (str): Label of records without a type.
    """

    def __init__(
        self,
        records: Iterable[EntityRecord],
        *,
        types: Optional[Sequence[str]] = None,
        stoplist: Iterable[str] = DEFAULT_STOPLIST,
        min_length: int = 3,
        case_sensitive: bool = False,
        missing_outside: bool = False,
        partial_outside: bool = False,
        abbreviations: bool = False,
        open_words: Iterable[str] = (),
        extra_records: Iterable[EntityRecord] = (),
        default_label: str = DEFAULT_LABEL,
    ) -> None:
        self.case_sensitive = case_sensitive
        self.abbreviations = abbreviations
        self.open_words = open_words  # type: ignore[assignment]  # normalised by the setter
        self.missing_outside = missing_outside or partial_outside
        self.partial_outside = partial_outside
        self.min_length = min_length
        self.stoplist: Set[str] = {_key(w, case_sensitive) for w in stoplist if w.strip()}
        wanted = set(types) if types else None
        entity_ids: List[str] = []
        labels: List[str] = []
        preferred: List[str] = []
        by_key: Dict[str, List[int]] = {}
        self.n_short = 0
        self.n_extra_entities = 0
        kb_labels: Set[str] = set()
        kb_index: Dict[Tuple[str, str], int] = {}
        extra = [(record, False) for record in extra_records]
        for record, complete in itertools.chain(((r, True) for r in records), extra):
            label = record.type or default_label
            if wanted is not None and record.type not in wanted:
                continue
            # An extra record with a KB entity's id and type adds names to
            # that entity instead of making its names look ambiguous.
            index = kb_index.get((record.id, label)) if not complete else None
            if index is None:
                index = len(entity_ids)
                entity_ids.append(record.id)
                labels.append(label)
                preferred.append(_key(record.name, case_sensitive))
                if complete:
                    kb_labels.add(label)
                    kb_index[(record.id, label)] = index
                else:
                    self.n_extra_entities += 1
            for name in dict.fromkeys(_key(n, case_sensitive) for n in record.all_names()):
                if len(name) < min_length:
                    self.n_short += 1
                    continue
                indices = by_key.setdefault(name, [])
                if index not in indices:
                    indices.append(index)
        self.n_entities = len(entity_ids)
        self.trie = marisa_trie.Trie(by_key.keys())
        # Payloads indexed by the trie's own key ids.
        self._entity = [0] * len(self.trie)
        self._n_entities = [0] * len(self.trie)
        for key, indices in by_key.items():
            named = [i for i in indices if preferred[i] == key]
            self._entity[self.trie[key]] = (named or indices)[0]
            self._n_entities[self.trie[key]] = len(indices)
        self._ids = entity_ids
        self._labels = labels
        self.labels: List[str] = sorted(set(labels))
        # The types a partial label denies outside the matches.
        self.complete_labels: List[str] = sorted(kb_labels)
        self.max_key_length = max((len(k) for k in by_key), default=0)
        self.n_ambiguous_keys = sum(n > 1 for n in self._n_entities)
        self.stats = WeakLabelStats()

    @property
    def open_words(self) -> Set[str]:
        """Words whose tokens a partial label leaves fully open (normalised
        like names: lower-cased unless `case_sensitive`)."""
        return self._open_words

    @open_words.setter
    def open_words(self, words: Iterable[str]) -> None:
        self._open_words = {_key(w, self.case_sensitive) for w in words if w.strip()}

    def __len__(self) -> int:
        """RETURNS (int): The number of distinct names matched."""
        return len(self.trie)

    def _candidates(self, doc: Doc) -> List[Tuple[int, int, str]]:
        """(start token, end token, key) of every key found on token boundaries."""
        text = doc.text
        low = text if self.case_sensitive else text.lower()
        if len(low) != len(text):
            # A few characters lower-case to two ("İ"); keep those as they are
            # so that token offsets stay valid.
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        parts: List[str] = []
        starts: List[Tuple[int, int]] = []
        ends: Dict[int, int] = {}
        position = 0
        pending_space = False
        # Plain integer rows instead of Token objects: this loop is most of
        # the labelling time.
        for i, (idx, length, is_space, space_after) in enumerate(doc.to_array(_ARRAY_ATTRS).tolist()):
            if is_space:
                pending_space = position > 0
                continue
            if pending_space:
                parts.append(" ")
                position += 1
            starts.append((i, position))
            parts.append(low[idx : idx + length])
            position += length
            ends[position] = i + 1
            pending_space = bool(space_after)
        joined = "".join(parts)
        found = []
        prefixes = self.trie.prefixes
        width = self.max_key_length
        for i, begin in starts:
            for key in prefixes(joined[begin : begin + width]):
                end = ends.get(begin + len(key))
                if end is not None:
                    found.append((i, end, key))
        return found

    def matches(self, doc: Doc) -> Tuple[List[WeakMatch], List[Tuple[int, int, str]]]:
        """The mentions to label, overlaps resolved, and the skipped stop-list
        hits (those no kept mention overlaps).

        doc (Doc): A tokenized doc.
        RETURNS (Tuple[List[WeakMatch], List[Tuple[int, int, str]]]): Mentions
            in text order; (start token, end token, key) of the stop-list hits.
        """
        kept: List[Tuple[int, int, str]] = []
        stopped: List[Tuple[int, int, str]] = []
        for candidate in self._candidates(doc):
            (stopped if candidate[2] in self.stoplist else kept).append(candidate)
        # spacy.util.filter_spans' order (longest, then leftmost) on tuples:
        # Span objects would add every matched name to the vocab's strings.
        kept.sort(key=lambda c: (c[1] - c[0], -c[0]), reverse=True)
        covered: Set[int] = set()
        spans = []
        for start, end, key in kept:
            if covered.isdisjoint(range(start, end)):
                spans.append((start, end, key))
                covered.update(range(start, end))
        if self.abbreviations:
            for start, end, key in _defined_short_forms(doc, list(spans)):
                if covered.isdisjoint(range(start, end)):
                    spans.append((start, end, key))
                    covered.update(range(start, end))
        spans.sort()
        hits = sorted((s, e, k) for s, e, k in stopped if covered.isdisjoint(range(s, e)))
        out = []
        for start, end, key in spans:
            kid = self.trie[key]
            entity = self._entity[kid]
            out.append(
                WeakMatch(
                    start=start, end=end, key=key, entity_id=self._ids[entity], label=self._labels[entity],
                    n_entities=self._n_entities[kid],
                )
            )
        return out, hits

    def __call__(self, doc: Doc) -> Doc:
        """Label a doc in place: entities, the "weak" span group and the
        silver flag (its existing entities are replaced).

        doc (Doc): A tokenized doc.
        RETURNS (Doc): The same doc.
        """
        found, stoplisted = self.matches(doc)
        spans = [Span(doc, m.start, m.end, label=m.label, kb_id=m.entity_id) for m in found]
        doc.set_ents(spans, default="missing" if self.missing_outside else "outside")
        doc.spans[SPANS_KEY] = spans
        ambiguous = sum(m.n_entities > 1 for m in found)
        doc.user_data[SILVER_KEY] = True
        doc.user_data[AMBIGUOUS_KEY] = ambiguous
        if self.partial_outside:
            doc.user_data[LABELS_KEY] = list(self.complete_labels)
            doc.spans[STOPLISTED_KEY] = [Span(doc, start, end) for start, end, _ in stoplisted]
            doc.spans[OPEN_WORDS_KEY] = self._open_word_spans(doc, found)
        hits: Counter = Counter(key for _, _, key in stoplisted)
        self.stats.docs += 1
        self.stats.docs_with_mentions += bool(found)
        self.stats.mentions.update(m.label for m in found)
        self.stats.stoplist_hits.update(hits)
        self.stats.ambiguous += ambiguous
        return doc

    def _open_word_spans(self, doc: Doc, found: Sequence[WeakMatch]) -> List[Span]:
        if not self.open_words:
            return []
        labelled = {i for m in found for i in range(m.start, m.end)}
        attr = "text" if self.case_sensitive else "lower_"
        return [
            doc[t.i : t.i + 1] for t in doc if t.i not in labelled and getattr(t, attr) in self.open_words
        ]

    def pipe(self, docs: Iterable[Doc]) -> Iterator[Doc]:
        """Label docs one by one.

        docs (Iterable[Doc]): Tokenized docs.
        YIELDS (Doc): The labelled docs.
        """
        for doc in docs:
            yield self(doc)


def _defined_short_forms(doc: Doc, spans: Sequence[Tuple[int, int, str]]) -> Iterator[Tuple[int, int, str]]:
    """(start token, end token, long form's key) of every use of a short form
    defined next to a matched long form ("long (SF)", or "SF (long)"), the
    match covering the whole long form."""
    ends = {doc[end - 1].idx + len(doc[end - 1]): (doc[start].idx, key) for start, end, key in spans}
    for abbr, uses in short_form_uses(doc):
        start_char, key = ends.get(abbr.long_start + len(abbr.long), (-1, None))
        # The match must hold the whole long form: "nitrogen" ends "blood
        # urea nitrogen (BUN)" but is not what BUN stands for.
        if key is None or start_char > abbr.long_start or len(abbr.short) < 2:
            continue
        for start, end in uses:
            yield start, end, key


def name_words(
    labeler: WeakLabeler, docs: Iterable[Doc], tokenizer: Tokenizer, *, min_ratio: float
) -> List[str]:
    """Words much more frequent in the KB's names than in the docs: the
    words a name that the KB lacks is likely made of ("toxicity",
    "nephropathy", "renal"), to leave open under partial labels. Stop-list
    words and words without a letter never count.

    labeler (WeakLabeler): Its names (as matched, normalised).
    docs (Iterable[Doc]): The text to be labelled.
    tokenizer (Tokenizer): Splits the names as the docs were split.
    min_ratio (float): Least ratio of a word's relative frequency among the
        names' words to its relative frequency (add-one) among the docs'.
    RETURNS (List[str]): The words, most enriched first.
    """
    in_names: Counter = Counter()
    for name in tokenizer.pipe(labeler.trie.keys(), batch_size=1000):
        in_names.update({t.text for t in name})
    in_text: Counter = Counter()
    attr = "text" if labeler.case_sensitive else "lower_"
    for doc in docs:
        in_text.update(getattr(t, attr) for t in doc)
    n_names, n_text = sum(in_names.values()) or 1, sum(in_text.values()) or 1
    ratios = {
        word: (count / n_names) / ((in_text[word] + 1) / n_text)
        for word, count in in_names.items()
        if word not in labeler.stoplist and any(c.isalpha() for c in word)
    }
    return sorted((w for w, r in ratios.items() if r >= min_ratio), key=lambda w: -ratios[w])
