"""Character 3-gram TF-IDF nearest-neighbour search over normalised aliases.

Features are scikit-learn's ``char_wb`` 3-grams (each word padded with a space,
no n-gram across words), weighted TF-IDF with smoothed idf and L2-normalised
(the scheme scispaCy's linker uses), compared by cosine.

Why this layout (speed, size and hit rates at a million entities are in
``benchmarks/results/kb_scale.md``, made by ``benchmarks/kb_scale.py``;
candidate recall on BC5CDR in ``benchmarks/results/kb_candidates_bc5cdr.md``):

- Featurisation is vectorised: all strings are packed into one UTF-32 array
  and each 3-gram (three 21-bit code points) is hashed into 2**20 buckets, so
  a million aliases featurise with no Python loop per alias and no
  vocabulary to store. Hashing also gives every index built later (e.g. by
  `LinkerKB.add_entities`) the same feature space; collisions are rare at
  this size and only blur rare 3-grams.
- Only the inverted index (a CSR matrix bucket -> alias rows, weights
  pre-divided by the alias's norm) is stored: 8 bytes per non-zero, plus
  the ids of the buckets that occur (not all 2**20, so a small index, e.g.
  one made by `add_entities`, stays small).
- Search is a scipy sparse product of the query batch with the index, but
  each query retrieves through its rarest 3-grams only (its posting lists
  up to a budget of entries): common 3-grams make almost all of the cost of
  an exact product and carry little idf weight. The best `rescore` rows
  then get their exact cosine from the forward rows (each name's 3-grams
  and weights, stored beside the postings since format 2; see
  `ngram_search.py`); what can be missed is a row sharing only common
  3-grams with the query. At a million
  entities the budget makes the search several times faster than the exact
  product at practically the same hit rate on typo queries (``kb_scale.md``
  measures both); it also beat a fixed document-frequency threshold, and a
  smaller budget trades a little hit rate for more speed.
- Dense approximate search (faiss / usearch / pynndescent on projected
  vectors) was not adopted. Its ceiling, exact nearest neighbours on a
  TruncatedSVD projection of these vectors (128 and 256 dimensions), found
  the right entity less often than this sparse search on BC5CDR Disease
  mentions against CTD's names, and 128 float32 per name take more space
  than this whole index.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from .ngram_search import search_flat

Forward = Tuple[np.ndarray, np.ndarray, np.ndarray]

N_FEATURES_BITS = 20
N_FEATURES = 1 << N_FEATURES_BITS
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def trigram_features(texts: Sequence[str], *, bits: int = N_FEATURES_BITS) -> sp.csr_matrix:
    """Count matrix of hashed char_wb 3-grams.

    texts (Sequence[str]): Normalised strings (words separated by single
        spaces, no NUL characters).
    bits (int): log2 of the number of hash buckets.
    RETURNS (scipy.sparse.csr_matrix): (len(texts), 2**bits) float32 counts.
    """
    n = len(texts)
    if n == 0:
        return sp.csr_matrix((0, 1 << bits), dtype=np.float32)
    # Pack " text " strings separated by NUL into one code-point array.
    packed = "\0".join(f" {t} " for t in texts)
    cps = np.frombuffer(packed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) < 3:
        return sp.csr_matrix((n, 1 << bits), dtype=np.float32)
    lengths = np.fromiter((len(t) + 3 for t in texts), dtype=np.int64, count=n)
    row_of = np.repeat(np.arange(n, dtype=np.int32), lengths)[: len(cps) - 2]
    a, b, c = cps[:-2], cps[1:-1], cps[2:]
    # No separator inside, and no space in the middle (char_wb: no cross-word 3-grams).
    valid = (a != 0) & (b != 0) & (c != 0) & (b != 32)
    codes = (a[valid] << np.uint64(42)) | (b[valid] << np.uint64(21)) | c[valid]
    cols = ((codes * _GOLDEN) >> np.uint64(64 - bits)).astype(np.int32)
    rows = row_of[valid]
    counts = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n, 1 << bits), dtype=np.float32
    )
    counts.sum_duplicates()
    return counts


class Idf:
    """Smoothed idf, ln((1 + n) / (1 + df)) + 1 (scikit-learn's), stored for
    the buckets that occur only; any other bucket has df = 0.

    buckets (np.ndarray): Sorted int32 bucket ids with df > 0.
    values (np.ndarray): float32 idf of those buckets.
    n_docs (int): Number of documents it was fitted on.
    """

    def __init__(self, buckets: np.ndarray, values: np.ndarray, n_docs: int) -> None:
        self.buckets = buckets
        self.values = values
        self.n_docs = int(n_docs)
        self.unseen = np.float32(np.log(1.0 + self.n_docs) + 1.0)
        self._table: Optional[np.ndarray] = None

    @classmethod
    def fit(cls, counts: sp.csr_matrix) -> "Idf":
        """Fit on a count matrix (`trigram_features`).

        counts (scipy.sparse.csr_matrix): Documents x buckets.
        RETURNS (Idf): The idf.
        """
        # Bucket ids are below 2**bits: counting beats sorting (np.unique).
        df_all = np.bincount(counts.indices, minlength=counts.shape[1])
        buckets = np.flatnonzero(df_all)
        df = df_all[buckets]
        values = np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0
        return cls(buckets.astype(np.int32), values.astype(np.float32), counts.shape[0])

    def __call__(self, cols: np.ndarray) -> np.ndarray:
        """idf of the given bucket ids.

        cols (np.ndarray): Bucket ids.
        RETURNS (np.ndarray): float32 idf (df = 0 for buckets not fitted).
        """
        if len(self.buckets) == 0:
            return np.full(len(cols), self.unseen, dtype=np.float32)
        if len(cols) and int(cols.max()) < N_FEATURES:
            return self.table[cols]
        pos = np.minimum(np.searchsorted(self.buckets, cols), len(self.buckets) - 1)
        return np.where(self.buckets[pos] == cols, self.values[pos], self.unseen).astype(np.float32)

    @property
    def table(self) -> np.ndarray:
        """idf of every bucket (4 MB, made on first use): a gather instead of
        a binary search per 3-gram, which dominated featurising at a million
        names."""
        if self._table is None:
            table = np.full(N_FEATURES, self.unseen, dtype=np.float32)
            table[self.buckets] = self.values
            self._table = table
        return self._table

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"idf_buckets": self.buckets, "idf_values": self.values, "idf_n_docs": np.asarray([self.n_docs])}

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray]) -> "Idf":
        return cls(arrays["idf_buckets"], arrays["idf_values"], int(arrays["idf_n_docs"][0]))


def tfidf(counts: sp.csr_matrix, idf: Idf, *, copy: bool = True) -> sp.csr_matrix:
    """Weight counts by idf and L2-normalise the rows.

    counts (scipy.sparse.csr_matrix): float32 count matrix.
    idf (Idf): The idf.
    copy (bool): Leave `counts` unchanged (else it is reweighted in place).
    RETURNS (scipy.sparse.csr_matrix): float32 unit rows (zero rows stay zero).
    """
    weighted = counts.copy() if copy else counts
    weighted.data *= idf(weighted.indices)
    row_len = np.diff(weighted.indptr)
    rows = np.repeat(np.arange(weighted.shape[0]), row_len)
    norms = np.sqrt(np.bincount(rows, weights=weighted.data.astype(np.float64) ** 2, minlength=weighted.shape[0]))
    norms[norms == 0] = 1.0
    weighted.data /= norms[rows].astype(np.float32)
    return weighted


def _positions(buckets: np.ndarray) -> np.ndarray:
    """Position of each bucket id in the sorted `buckets`, -1 where absent
    (a table of all 2**20 ids: 4 MB, a gather instead of a binary search)."""
    table = np.full(N_FEATURES, -1, dtype=np.int32)
    table[buckets] = np.arange(len(buckets), dtype=np.int32)
    return table


class NgramIndex:
    """Inverted index of TF-IDF char 3-gram vectors for one set of strings.

    buckets (np.ndarray): Sorted int32 ids of the hash buckets that occur.
    postings (scipy.sparse.csr_matrix): (len(buckets), n_rows) unit-row
        weights, row indices sorted within each bucket.
    idf (Idf): The idf the weights were made with; queries use it too.
    forward (Optional[Forward]): The same weights by row (indptr, local
        bucket ids, weights), for exact rescoring; None: transposed from
        the postings on first use (a KB saved in format 1 lacks them).
    """

    def __init__(
        self, buckets: np.ndarray, postings: sp.csr_matrix, idf: Idf, *, forward: Optional["Forward"] = None
    ) -> None:
        self.buckets = buckets
        self.postings = postings
        self.idf = idf
        self.posting_len = np.diff(postings.indptr)
        self._forward = forward
        self._row_grams: Optional[np.ndarray] = None
        self._local: Optional[np.ndarray] = None  # bucket -> posting row, made on first search

    @property
    def row_grams(self) -> np.ndarray:
        """Distinct 3-grams of each row, capped at 255 (uint8; made once, on
        first use, from the forward rows: a byte per row)."""
        if self._row_grams is None:
            self._row_grams = np.minimum(np.diff(self.forward[0]), 255).astype(np.uint8)
        return self._row_grams

    @property
    def forward(self) -> "Forward":
        """The weights by row: (int64 indptr, int32 bucket ids, float32 weights)."""
        if self._forward is None:
            by_row = self.postings.T.tocsr()
            self._forward = (by_row.indptr, by_row.indices, by_row.data)
        return self._forward

    @classmethod
    def build(cls, texts: Sequence[str], *, idf: Optional[Idf] = None, chunk_size: int = 200_000) -> "NgramIndex":
        """Index normalised strings; row i is texts[i].

        texts (Sequence[str]): Normalised strings.
        chunk_size (int): Strings featurised at a time.
        idf (Optional[Idf]): Reuse this idf (e.g. the KB's, so that scores of
            separately built indexes are comparable); default: fit on `texts`.
        RETURNS (NgramIndex): The index.
        """
        # Featurise in chunks: the temporaries of a million strings at once
        # (code points, 64-bit codes, COO triples) would dominate peak memory.
        parts = [trigram_features(texts[i : i + chunk_size]) for i in range(0, max(1, len(texts)), chunk_size)]
        counts = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
        del parts
        if idf is None:
            idf = Idf.fit(counts)
        weights = tfidf(counts, idf, copy=False)
        del counts
        buckets = np.flatnonzero(np.bincount(weights.indices, minlength=weights.shape[1])).astype(np.int32)
        # Keep only the buckets that occur: 2**20 offsets would cost 8 MB per index.
        local = _positions(buckets)[weights.indices]
        weights = sp.csr_matrix((weights.data, local, weights.indptr), shape=(weights.shape[0], len(buckets)), copy=False)
        del local
        postings = weights.T.tocsr()
        postings.sort_indices()
        postings.indices = postings.indices.astype(np.int32, copy=False)
        weights.sort_indices()
        forward = (weights.indptr.astype(np.int64), weights.indices.astype(np.int32), weights.data)
        return cls(buckets, postings, idf, forward=forward)

    @property
    def n_rows(self) -> int:
        return self.postings.shape[1]

    def arrays(self) -> Dict[str, np.ndarray]:
        """The arrays to serialise (the idf is stored by the owner).

        RETURNS (Dict[str, np.ndarray]): Named arrays.
        """
        indptr, indices, data = self.forward
        return {
            "buckets": self.buckets,
            "indptr": self.postings.indptr,
            "indices": self.postings.indices,
            "data": self.postings.data,
            "shape": np.asarray(self.postings.shape, dtype=np.int64),
            "fwd_indptr": indptr,
            "fwd_indices": indices,
            "fwd_data": data,
        }

    @classmethod
    def from_arrays(cls, arrays: Dict[str, np.ndarray], idf: Idf) -> "NgramIndex":
        """Rebuild from `arrays()` (which may be memory-mapped).

        arrays (Dict[str, np.ndarray]): As written by `arrays`.
        idf (Idf): The idf.
        RETURNS (NgramIndex): The index.
        """
        shape = tuple(int(x) for x in arrays["shape"])
        postings = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape, copy=False)
        postings.has_sorted_indices = True
        forward = None
        if "fwd_indptr" in arrays:
            forward = (arrays["fwd_indptr"], arrays["fwd_indices"], arrays["fwd_data"])
        return cls(arrays["buckets"], postings, idf, forward=forward)

    def query_vectors(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF vectors of normalised query strings under this index's idf
        (in hash-bucket space; every index with the same idf accepts them).

        texts (Sequence[str]): Normalised strings.
        RETURNS (scipy.sparse.csr_matrix): Unit rows.
        """
        return tfidf(trigram_features(texts), self.idf)

    def to_local(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        # Bucket space -> this index's posting rows; 3-grams it lacks drop out
        # (they still counted in the query norm, so scores stay true cosines).
        if len(self.buckets) == 0:
            return sp.csr_matrix((queries.shape[0], 0), dtype=np.float32)
        if self._local is None:
            self._local = _positions(self.buckets)
        pos = self._local[queries.indices]
        found = pos >= 0
        rows = np.repeat(np.arange(queries.shape[0]), np.diff(queries.indptr))[found]
        return sp.csr_matrix(
            (queries.data[found], (rows, pos[found])), shape=(queries.shape[0], len(self.buckets)), dtype=np.float32
        )

    def search(
        self,
        queries: sp.csr_matrix,
        *,
        top_n: int,
        budget: int = 100000,
        min_grams: int = 3,
        rescore: int = 1000,
        batch_size: int = 64,
        min_score: float = 0.0,
    ) -> List[List[Tuple[int, float]]]:
        """The rows most similar to each query vector.

        Each query retrieves candidates through its rarest 3-grams only: at
        least `min_grams` of them, then more while their posting lists add
        up to at most `budget` entries. The `rescore` best candidates by that
        partial score get their exact cosine (from the forward rows), so
        every returned score is the true cosine; rows sharing only common
        3-grams with the query can be missed.

        queries (scipy.sparse.csr_matrix): Unit query rows (`query_vectors`).
        top_n (int): Rows to return per query.
        budget (int): Posting entries per query in the retrieval product
            (0: use every 3-gram, i.e. exact search).
        min_grams (int): 3-grams always used for retrieval.
        rescore (int): Candidates rescored per query.
        batch_size (int): Queries per sparse product (bounds its memory).
        min_score (float): Drop rows scoring below this.
        RETURNS (List[List[Tuple[int, float]]]): Per query, (row, cosine)
            best first.
        """
        _, q, rows, scores = search_flat(
            [self], queries, top_n=top_n, budget=budget, min_grams=min_grams, rescore=rescore, batch_size=batch_size,
            min_score=min_score,
        )
        out: List[List[Tuple[int, float]]] = [[] for _ in range(queries.shape[0])]
        # Rounding can push a perfect match a hair over 1.
        for i, row, score in zip(q.tolist(), rows.tolist(), scores.tolist()):
            out[i].append((row, min(1.0, score)))
        return out
