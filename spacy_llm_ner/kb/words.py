"""Word-level retrieval for the n-gram stage: which normalised names share
a word, or a word one edit away, with the query.

Why: the 3-gram retrieval (`ngram_search.py`) reads each query's rarest
3-grams' posting lists, but 3-grams are shared by many words, so at a
million names even the rarest lists are long and the retrieval product
dominates the cascade's time. A name one typo away from the query shares
all its words but one with it, and that one is one edit from the query's
word; a word's posting list is short for all but the commonest words. So
candidates come from the query's rarest words instead, exact or fuzzy, and
are then scored exactly by 3-gram cosine, as before.

Arrays (saved with each segment, prefix ``wd_``):

- ``hash`` / ``indptr`` / ``rows``: the distinct words' hashes (sorted,
  uint64, see `word_hash.py`) and, in CSR, the names containing each;
- ``del_hash`` / ``del_word``: the words' variants, sorted by hash, and the
  word of each: every one-character deletion of the words of at least
  `MIN_FUZZY` characters, and each word with 1 to `MAX_CUT` characters cut
  from its end (at least `KEEP` of it kept).

A query word q matches a word w exactly, or fuzzily when one edit
(insertion, deletion, substitution or transposition of neighbours) turns
one into the other, or when they differ only in their endings: q is a
variant of w, a variant of q is w, or they share a variant (for edits, the
deletion neighbourhood of SymSpell). Endings matter on real names:
"hypertensive", "hemorrhagic" and "parkinsonian" must find "hypertension",
"hemorrhage" and "Parkinson disease" (the 3-grams found them; words alone
missed 5% of BC5CDR's Disease mentions before endings were added).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .csr import best_per_query, csr_positions, distinct, indptr, run_starts, runs, search_sorted, unique_inverse
from .word_hash import MIN_FUZZY, QueryWords, string_hashes, word_variants, words_of  # noqa: F401  (MIN_FUZZY re-exported)

FUZZY_WEIGHT = 0.7  # a fuzzy word counts this much of an exact one in the shortlist
# (query, rows) -> float32 factor of each row's length against its query's.
LengthFactor = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class WordIndex:
    """Words of one set of normalised strings (rows).

    hash (np.ndarray): uint64 sorted hashes of the distinct words.
    indptr (np.ndarray): int64 CSR offsets of each word's rows.
    rows (np.ndarray): int32 rows containing each word.
    del_hash (np.ndarray): uint64 sorted hashes of the words' variants
        (deletions and cut endings, see the module docstring).
    del_word (np.ndarray): int32 word of each variant.
    n_rows (int): Number of rows indexed.
    fwd_indptr (Optional[np.ndarray]): int64 CSR offsets of each row's words
        (saved since format 4; None before).
    fwd_words (Optional[np.ndarray]): int32 words of each row.
    """

    hash: np.ndarray
    indptr: np.ndarray
    rows: np.ndarray
    del_hash: np.ndarray
    del_word: np.ndarray
    n_rows: int
    fwd_indptr: Optional[np.ndarray] = None
    fwd_words: Optional[np.ndarray] = None

    @classmethod
    def build(cls, texts: Sequence[str], *, chunk_size: int = 200_000) -> "WordIndex":
        """Index normalised strings; row i is texts[i].

        texts (Sequence[str]): Normalised strings (words separated by spaces).
        chunk_size (int): Strings hashed at a time (the code-point arrays of
            a million names at once would dominate peak memory).
        RETURNS (WordIndex): The index.
        """
        hashes, rows_of, variant_words, variants = [], [], [], []
        for start in range(0, len(texts), chunk_size):
            words, row_of = words_of(texts[start : start + chunk_size])
            word_hash = string_hashes(words)
            hashes.append(word_hash), rows_of.append(row_of + start)
            _, first, _ = unique_inverse(word_hash)
            owner, variant = word_variants(words.take(first))
            variant_words.append(word_hash[first][owner]), variants.append(variant)
        word_hash = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        row_of = np.concatenate(rows_of) if rows_of else np.zeros(0, np.int64)
        uniq, _, inverse = unique_inverse(word_hash)
        del word_hash, hashes
        # One entry per (word, row), rows ascending within a word.
        pairs = distinct(inverse * max(1, len(texts)) + row_of)
        word_of, rows = np.divmod(pairs, max(1, len(texts)))
        offsets = indptr(np.bincount(word_of, minlength=len(uniq)))
        # A word of several chunks has its variants once per chunk: one each.
        owner = np.searchsorted(uniq, np.concatenate(variant_words)) if variants else np.zeros(0, np.int64)
        variant = np.concatenate(variants) if variants else np.zeros(0, np.uint64)
        order = np.lexsort((owner, variant))
        owner, variant = owner[order], variant[order]
        keep = run_starts(owner, variant)
        # Each row's words: the left-out words of a query are checked in its candidates' rows.
        by_row = np.argsort(rows, kind="stable")
        fwd_indptr = indptr(np.bincount(rows, minlength=len(texts)))
        return cls(
            uniq, offsets, rows.astype(np.int32), variant[keep], owner[keep].astype(np.int32), len(texts),
            fwd_indptr, word_of[by_row].astype(np.int32),
        )

    def arrays(self) -> Dict[str, np.ndarray]:
        """The arrays to save.

        RETURNS (Dict[str, np.ndarray]): Named arrays (without the prefix).
        """
        return {
            "hash": self.hash, "indptr": self.indptr, "rows": self.rows, "del_hash": self.del_hash,
            "del_word": self.del_word, "n_rows": np.asarray([self.n_rows], dtype=np.int64),
            **({"fwd_indptr": self.fwd_indptr, "fwd_words": self.fwd_words} if self.fwd_words is not None else {}),
        }

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> Optional["WordIndex"]:
        """Rebuild from `arrays()` (which may be memory-mapped).

        arrays (Dict[str, np.ndarray]): As written by `arrays`.
        RETURNS (Optional[WordIndex]): The index; None when the arrays are
            absent (a KB saved before word retrieval).
        """
        if "hash" not in arrays:
            return None
        return cls(
            arrays["hash"], arrays["indptr"], arrays["rows"], arrays["del_hash"], arrays["del_word"],
            int(arrays["n_rows"][0]), arrays.get("fwd_indptr"), arrays.get("fwd_words"),
        )

    def matches(self, texts: Union[Sequence[str], "QueryWords"]) -> "Matches":
        """The index words each query word matches.

        texts (Union[Sequence[str], QueryWords]): Normalised query strings,
            or their words hashed once for several indexes.
        RETURNS (Matches): One item per (query word, index word), the exact
            match where a word matches both ways, by query word.
        """
        qw_ = texts if isinstance(texts, QueryWords) else QueryWords.make(texts)
        n_words = len(qw_.hashes)
        probe_qw = np.concatenate([np.arange(n_words, dtype=np.int64), qw_.owner])
        probe_h = qw_.probes.values
        at = qw_.probes.search(self.hash) if len(self.hash) else None
        found_qw, found_w, found_exact = [], [], []
        if at is not None:
            at = np.minimum(at, len(self.hash) - 1)
            ok = self.hash[at] == probe_h
            # The query word is an index word; a variant of it is (an extra character, a longer ending).
            exact = ok & (np.arange(len(ok)) < n_words)
            found_qw.append(probe_qw[ok]), found_w.append(at[ok].astype(np.int64)), found_exact.append(exact[ok])
        # The query word, or a variant of it, is a variant of an index word.
        lo = qw_.probes.search(self.del_hash, side="left")
        hi = qw_.probes.search(self.del_hash, side="right")
        which, pos = csr_positions(np.stack([lo, hi], axis=1).ravel(), np.arange(len(lo), dtype=np.int64) * 2)
        found_qw.append(probe_qw[which]), found_w.append(self.del_word[pos].astype(np.int64))
        found_exact.append(np.zeros(len(pos), bool))
        qw, w, exact = (np.concatenate(x) for x in (found_qw, found_w, found_exact))
        order = np.lexsort((~exact, w, qw))
        qw, w, exact = qw[order], w[order], exact[order]
        first = run_starts(qw, w)
        return Matches(qw_.query_of, qw[first], w[first], exact[first])

    def shortlist(
        self, texts: Sequence[str], length_factor: LengthFactor, *, budget: int, rescore: int
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The rows to rescore for each query.

        Each query word is one retrieval term: the index words it matches,
        exactly or fuzzily, whose posting entries add up to its cost. The
        cheapest terms retrieve (cost within `budget`, at least the
        cheapest); a row scores the idf of each term it contains (fuzzy
        matches discounted), the terms left out included where they match
        an index word exactly (checked by binary search in their posting
        lists, which are never read whole), times `length_factor`; the
        `rescore` best rows of each query are kept.

        texts (Sequence[str]): Normalised query strings.
        length_factor (LengthFactor): (query, rows) -> float32 factor of each
            row's length against the query's.
        budget (int): Posting entries read per query.
        rescore (int): Rows kept per query.
        RETURNS (Tuple[np.ndarray, np.ndarray]): int64 query and row of each
            shortlisted candidate, by query.
        """
        (pq, prow, _), = shortlist_indexes([self], texts, [length_factor], budget=budget, rescore=rescore)
        return pq, prow

    def term_costs(self, m: "Matches") -> np.ndarray:
        """Posting entries each query word's matches would read.

        m (Matches): The matches of a batch's query words.
        RETURNS (np.ndarray): float64 cost per query word.
        """
        df = self.indptr[m.word + 1] - self.indptr[m.word]
        return np.bincount(m.query_word, weights=df, minlength=len(m.query_of))

    def scored(
        self, m: "Matches", *, idf: np.ndarray, chosen: np.ndarray, length_factor: LengthFactor, n_queries: int
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows found by the chosen query words, and their shortlist scores.

        m (Matches): The batch's matches in this index.
        idf (np.ndarray): float32 weight per query word.
        chosen (np.ndarray): bool per query word: it retrieves.
        length_factor (LengthFactor): (query, rows) -> length factors.
        n_queries (int): Queries in the batch.
        RETURNS (Tuple[np.ndarray, np.ndarray, np.ndarray]): int64 query and
            row, float32 score; sorted by (query, row).
        """
        take = chosen[m.query_word]
        qw, w = m.query_word[take], m.word[take]
        weight = idf[qw] * np.where(m.exact[take], np.float32(1.0), np.float32(FUZZY_WEIGHT))
        which, pos = csr_positions(self.indptr, w)
        # A row found through several variants of one query word counts it once, at its best.
        key, weight = _best(qw[which] * self.n_rows + self.rows[pos], weight[which])
        qw_of, row = np.divmod(key, self.n_rows)
        pair, _, inverse = unique_inverse(m.query_of[qw_of] * self.n_rows + row)
        score = np.bincount(inverse, weights=weight).astype(np.float32)
        pq, prow = np.divmod(pair, self.n_rows)
        score += self._left_out_terms(m, chosen, idf, pq, prow, n_queries=n_queries)
        score *= length_factor(pq, prow)
        return pq, prow, score

    def _left_out_terms(
        self, m: "Matches", chosen: np.ndarray, idf: np.ndarray, pq: np.ndarray, prow: np.ndarray, *, n_queries: int
    ) -> np.ndarray:
        """Score of each candidate (query pq, row prow) from the query words
        that did not retrieve but match an index word exactly and are in the row."""
        extra = np.zeros(len(pq), dtype=np.float32)
        left = m.exact & ~chosen[m.query_word]
        if not left.any() or len(pq) == 0:
            return extra
        qw, w = m.query_word[left], m.word[left]
        if self.fwd_words is not None:
            return self._left_out_by_rows(m.query_of[qw], w, idf[qw], pq, prow)
        starts = np.searchsorted(pq, np.arange(n_queries + 1))
        # One binary search per distinct word, over the candidates of every
        # query that left it out: the words left out are the common ones
        # ("disease", "syndrome"), shared by many queries of a batch, and
        # per-word calls into their long posting lists cost more than the
        # searches themselves.
        order = np.argsort(w, kind="stable")
        qw, w = qw[order], w[order]
        for first, last in zip(*runs(w)):
            which, pos = csr_positions(starts, m.query_of[qw[first:last]])
            if len(pos) == 0:
                continue
            word = int(w[first])
            posting = self.rows[self.indptr[word] : self.indptr[word + 1]]
            at = np.minimum(search_sorted(posting, prow[pos]), len(posting) - 1)
            hit = posting[at] == prow[pos]
            extra += np.bincount(pos[hit], weights=idf[qw[first:last]][which[hit]], minlength=len(pq)).astype(np.float32)
        return extra

    def _left_out_by_rows(
        self, query: np.ndarray, word: np.ndarray, weight: np.ndarray, pq: np.ndarray, prow: np.ndarray
    ) -> np.ndarray:
        """`_left_out_terms` through each candidate's own words (the forward
        rows), in one pass over all candidates: a search per left-out word
        cost a numpy call each, thousands per batch on a KB in segments.

        query, word, weight (np.ndarray): Query, index word and idf of each
            left-out query word.
        pq, prow (np.ndarray): Query and row of each candidate.
        RETURNS (np.ndarray): float32 extra score per candidate.
        """
        n_words = max(1, len(self.hash))
        keys, _, inverse = unique_inverse(query * n_words + word)
        # A query word repeated in the query counts once per repetition.
        weights = np.bincount(inverse, weights=weight, minlength=len(keys))
        which, pos = csr_positions(self.fwd_indptr, prow)
        probe = pq[which] * n_words + self.fwd_words[pos]
        at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        hit = keys[at] == probe
        return np.bincount(which[hit], weights=weights[at[hit]], minlength=len(pq)).astype(np.float32)


def shortlist_indexes(
    indexes: Sequence[WordIndex],
    texts: Sequence[str],
    length_factors: Sequence[LengthFactor],
    *,
    budget: int,
    rescore: int,
) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`WordIndex.shortlist` over several indexes (a KB's segments) as if
    they were one: a word's cost and idf count its postings in all of them,
    `budget` is per query over all of them, and the `rescore` best rows per
    query are kept over all of them, so the rows rescored per query do not
    grow with the number of segments.

    indexes (Sequence[WordIndex]): The indexes.
    texts (Sequence[str]): Normalised query strings.
    length_factors (Sequence[LengthFactor]): One per index.
    budget (int): Posting entries read per query.
    rescore (int): Rows kept per query.
    RETURNS (List[Tuple[np.ndarray, np.ndarray, np.ndarray]]): Per index:
        int64 query and row, float32 shortlist score, by query.
    """
    qwords = QueryWords.make(texts)
    found = [ix.matches(qwords) for ix in indexes]
    n_words = len(qwords.query_of)
    cost = np.zeros(n_words)
    for ix, m in zip(indexes, found):
        if len(m.word):
            cost += ix.term_costs(m)
    n_rows = sum(ix.n_rows for ix in indexes)
    idf = (np.log((1.0 + n_rows) / (1.0 + np.minimum(cost, n_rows))) + 1.0).astype(np.float32)
    chosen = _cheapest(qwords.query_of, cost, budget)
    parts = [
        ix.scored(m, idf=idf, chosen=chosen, length_factor=lf, n_queries=len(texts))
        if len(m.word) else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        for ix, m, lf in zip(indexes, found, length_factors)
    ]
    return best_per_query(parts, rescore)


@dataclass
class Matches:
    """Query words and the index words they match.

    query_of (np.ndarray): int64 query of each query word.
    query_word (np.ndarray): int64 query word of each match.
    word (np.ndarray): int64 index word of each match.
    exact (np.ndarray): bool, an exact match.
    """

    query_of: np.ndarray
    query_word: np.ndarray
    word: np.ndarray
    exact: np.ndarray


def _cheapest(query_of: np.ndarray, cost: np.ndarray, budget: int) -> np.ndarray:
    """Which query words retrieve: each query's cheapest, then the next
    cheapest while the query's total cost stays within `budget`.

    query_of (np.ndarray): Query of each query word (ascending).
    cost (np.ndarray): Cost of each query word (0: matches nothing).
    budget (int): Posting entries per query.
    RETURNS (np.ndarray): bool per query word.
    """
    order = np.lexsort((cost, query_of))
    q, c = query_of[order], cost[order]
    starts = np.searchsorted(q, q)
    cum = np.cumsum(c)
    within = cum - (cum - c)[starts]
    chosen = np.zeros(len(cost), dtype=bool)
    chosen[order] = ((within <= budget) | (np.arange(len(q)) == starts)) & (c > 0)
    return chosen


def _best(keys: np.ndarray, weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The largest weight of each distinct key.

    keys (np.ndarray): int64 keys.
    weights (np.ndarray): float32 weights.
    RETURNS (Tuple[np.ndarray, np.ndarray]): Sorted distinct keys, their weights.
    """
    order = np.lexsort((-weights, keys))
    keys, weights = keys[order], weights[order]
    first = run_starts(keys)
    return keys[first], weights[first]
