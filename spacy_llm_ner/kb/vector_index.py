"""Nearest-neighbour search over a table of entity vectors.

`VectorIndex` keeps an (n, dim) table of vectors (float16 or float32) in a
.npy file, memory-mapped, with an ANN index beside it: faiss (IVF or HNSW)
or usearch (HNSW), both optional (pip install 'spacy-llm-ner[ann]') and
imported on first use. A search takes the ANN's shortlist of k * refine rows
and rescores it exactly against the mapped table, so a compressed index only
has to get the true neighbours into the shortlist, not rank them. The
"exact" backend scans the table: the reference, and the fallback without
either library. A saved index is loaded mapped (the table always; the index
with usearch and faiss IVF): processes share the pages, loading is quick.
"""
import importlib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

import numpy

FORMAT_VERSION = 1
BACKENDS = ("auto", "faiss", "usearch", "exact")
METRICS = ("cosine", "ip")
DTYPES = ("float16", "float32")
VECTORS_FILE, META_FILE = "vectors.npy", "meta.json"
INDEX_FILES = {"faiss": "index.faiss", "usearch": "index.usearch"}
# Below this many rows a full scan costs about as much as an ANN query, and
# is exact: "auto" builds no index.
AUTO_EXACT_BELOW = 20_000
# Rows converted to float32 at once when scanning or copying the table:
# bounds the working memory whatever the size of the table.
CHUNK_ROWS = 65_536
EXTRA = "pip install 'spacy-llm-ner[ann]'"

VectorsLike = Union[numpy.ndarray, Iterable[numpy.ndarray]]


def _require(module: str) -> Any:
    # Optional packages, imported on first use: "faiss" or "usearch.index".
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = {"faiss": "faiss-cpu"}.get(module, module.split(".")[0])
        raise ImportError(f"VectorIndex's {module.split('.')[0]} backend needs {package}: {EXTRA}") from err


def resolve_backend(backend: str, n_rows: int) -> str:
    """The backend (one of BACKENDS) that "auto" stands for at n_rows, or
    `backend` itself once checked.

    RETURNS (str): "usearch", "faiss" or "exact".
    RAISES (ValueError): For an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown VectorIndex backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if n_rows < AUTO_EXACT_BELOW:
        return "exact"
    # Preference chosen by benchmarks/entity_ann.py (see its docstring).
    return next((name for name in ("usearch", "faiss") if importlib.util.find_spec(name)), "exact")


def default_params(backend: str, n_rows: int) -> Dict[str, Any]:
    """Build and search parameters of a backend ("faiss", "usearch" or
    "exact") for a table of n_rows (saved in meta.json).

    RETURNS (Dict[str, Any]): The parameters.
    """
    if backend == "faiss":
        # IVF lists grow as ~sqrt(n) (a power of two, so sizes stay familiar);
        # at least 39 training rows per list, faiss's own minimum.
        nlist = 2 ** max(4, min(16, round(math.log2(max(1.0, 2 * math.sqrt(n_rows))))))
        nlist = max(1, min(nlist, n_rows // 39))
        return {"factory": f"IVF{nlist},SQ8", "breadth": max(1, min(nlist, 64)), "train_rows": min(n_rows, 64 * nlist)}
    if backend == "usearch":
        # i8 in the graph: the exact float16 rows are in the table already, and
        # the rescoring of a k * refine shortlist recovers what i8 loses.
        return {"quantization": "i8", "connectivity": 16, "expansion_add": 128, "breadth": 128}
    return {}


def _as_chunks(vectors: VectorsLike) -> Iterator[numpy.ndarray]:
    if isinstance(vectors, numpy.ndarray):
        for start in range(0, len(vectors), CHUNK_ROWS):
            yield vectors[start : start + CHUNK_ROWS]
    else:
        yield from vectors


def _normalized(chunk: numpy.ndarray) -> numpy.ndarray:
    chunk = numpy.asarray(chunk, dtype="float32")
    norms = numpy.linalg.norm(chunk, axis=1, keepdims=True)
    # A zero vector stays zero (its score is 0 with everything), not NaN.
    return chunk / numpy.maximum(norms, 1e-12)


def _count_rows(vectors: VectorsLike, n_rows: Optional[int]) -> int:
    if isinstance(vectors, numpy.ndarray):
        return len(vectors)
    if n_rows is None and isinstance(vectors, (list, tuple)):
        return sum(len(chunk) for chunk in vectors)
    if n_rows is None:
        raise ValueError("VectorIndex.build from an iterator of chunks needs n_rows (the total number of rows)")
    return n_rows


def _is_file(vectors: VectorsLike, path: Path) -> bool:
    filename = getattr(vectors, "filename", None)
    return filename is not None and path.exists() and os.path.samefile(filename, path)


def write_table(
    vectors: VectorsLike, path: Optional[Path], *, n_rows: int, dim: Optional[int], metric: str, dtype: str
) -> numpy.ndarray:
    """Write vectors chunk by chunk (normalised for "cosine") to a .npy file
    (path) or into memory (path None).

    vectors (VectorsLike): One (n, dim) array or (rows, dim) chunks.
    RETURNS (numpy.ndarray): The (n_rows, dim) table, read-only mapped when
        written to a file.
    RAISES (ValueError): If the chunks disagree with n_rows or dim.
    """
    table: Optional[numpy.ndarray] = None
    start = 0
    for chunk in _as_chunks(vectors):
        chunk = numpy.asarray(chunk)
        if chunk.ndim != 2 or (dim is not None and chunk.shape[1] != dim):
            raise ValueError(f"Vector chunks must be (rows, {dim or 'dim'}) arrays, got shape {chunk.shape}")
        dim = chunk.shape[1]
        if table is None:
            table = (numpy.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n_rows, dim))
                     if path is not None else numpy.empty((n_rows, dim), dtype=dtype))
        if start + len(chunk) > n_rows:
            raise ValueError(f"The vector chunks hold more than n_rows={n_rows} rows")
        table[start : start + len(chunk)] = _normalized(chunk) if metric == "cosine" else chunk
        start += len(chunk)
    if table is None or start != n_rows:
        raise ValueError(f"The vector chunks hold {start} rows, expected n_rows={n_rows} (at least one)")
    if path is None:
        return table
    table.flush()
    del table
    return numpy.load(path, mmap_mode="r")


def _replace_table(vectors: VectorsLike, path: Path, **options: Any) -> numpy.ndarray:
    # Written aside and renamed: another process (or this one) may have the
    # old file mapped, and must keep seeing the old rows, not torn ones.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
    write_table(vectors, tmp, **options)
    os.replace(tmp, path)
    return numpy.load(path, mmap_mode="r")


def _check_unit_rows(table: numpy.ndarray) -> None:
    for start in range(0, len(table), CHUNK_ROWS):
        norms = numpy.linalg.norm(numpy.asarray(table[start : start + CHUNK_ROWS], dtype="float32"), axis=1)
        if numpy.any(numpy.abs(norms[norms > 0] - 1.0) > 1e-2):
            raise ValueError("A table adopted for the cosine metric must hold L2-normalised rows")


class VectorIndex:
    """Top-k inner-product (or cosine) search over a memory-mapped table of
    vectors, through an ANN shortlist rescored exactly against the table."""

    def __init__(
        self, table: numpy.ndarray, *, backend: str, metric: str, params: Dict[str, Any], ann: Any = None,
        refine: int = 4,
    ) -> None:
        """Made by `build` and `load`: the (n, dim) table (normalised for
        "cosine"), the backend's index object `ann` (None for "exact") and
        parameters, and the shortlist size `refine` (a multiple of k)."""
        self.table, self.backend, self.metric = table, backend, metric
        self.params, self.ann, self.refine = params, ann, refine

    @property
    def n_rows(self) -> int:
        """The number of vectors."""
        return int(self.table.shape[0])

    @property
    def dim(self) -> int:
        """The width of the vectors."""
        return int(self.table.shape[1])

    @classmethod
    def build(
        cls, vectors: VectorsLike, *, folder: Optional[Union[str, Path]] = None, backend: str = "auto",
        metric: str = "cosine", dtype: str = "float16", n_rows: Optional[int] = None, dim: Optional[int] = None,
        refine: int = 4, params: Optional[Dict[str, Any]] = None, threads: int = 0,
    ) -> "VectorIndex":
        """Store vectors and build the index over them.

        vectors (VectorsLike): An (n, dim) array, or (rows, dim) chunks so
            that a large table never has to be in memory at once. An array
            memory-mapped from folder/vectors.npy is adopted as it is.
        folder (Optional[Union[str, Path]]): Where the table is written (and
            the index saved, as by to_disk); None keeps both in memory.
        backend (str): "auto", "faiss", "usearch" or "exact".
        metric (str): "cosine" (vectors are normalised) or "ip".
        dtype (str): The stored table's dtype: "float16" or "float32".
        n_rows (Optional[int]): Total rows; needed for an iterator of chunks.
        dim (Optional[int]): Width; checked against every chunk.
        refine (int): Shortlist size as a multiple of k, rescored exactly.
        params (Optional[Dict[str, Any]]): Overrides of `default_params`.
        threads (int): Threads for building (0: the library's default).
        RETURNS (VectorIndex): The index.
        RAISES (ValueError): For an unknown backend, metric or dtype, or
            chunks that disagree in shape.
        RAISES (ImportError): If the backend's package is missing.
        """
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        if dtype not in DTYPES:
            raise ValueError(f"Entity vectors are stored as float16 or float32, not {dtype}")
        total = _count_rows(vectors, n_rows)
        backend = resolve_backend(backend, total)
        path = Path(folder) / VECTORS_FILE if folder is not None else None
        if path is not None and _is_file(vectors, path) and str(vectors.dtype) == dtype:  # type: ignore[union-attr]
            table = numpy.load(path, mmap_mode="r")
            if metric == "cosine":
                _check_unit_rows(table)
        elif path is not None:
            table = _replace_table(vectors, path, n_rows=total, dim=dim, metric=metric, dtype=dtype)
        else:
            table = write_table(vectors, None, n_rows=total, dim=dim, metric=metric, dtype=dtype)
        settings = {**default_params(backend, total), **(params or {})}
        builder = {"faiss": _build_faiss, "usearch": _build_usearch}.get(backend)
        ann = builder(table, settings, threads=threads) if builder else None
        index = cls(table, backend=backend, metric=metric, params=settings, ann=ann, refine=refine)
        if folder is not None:
            index.to_disk(folder)
        return index

    def search(
        self, queries: numpy.ndarray, k: int, *, refine: Optional[int] = None, breadth: Optional[int] = None,
        threads: int = 0,
    ) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The k best rows for each query, best first.

        queries (numpy.ndarray): (m, dim) or (dim,) query vectors.
        k (int): Rows per query (at most n_rows).
        refine (Optional[int]): Shortlist as a multiple of k (None: the
            index's); 1 only reorders the ANN's own top k.
        breadth (Optional[int]): How much of the index a query visits: nprobe
            (faiss IVF), efSearch (faiss HNSW), expansion_search (usearch).
        threads (int): Search threads (0: the library's default).
        RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): rows (m, k) int64 and
            scores (m, k) float32 (inner products; cosine for "cosine").
            Where the ANN finds fewer than k rows, rows are -1, scores -inf.
        RAISES (ValueError): For queries of another width, or k < 1.
        """
        queries = numpy.atleast_2d(numpy.asarray(queries, dtype="float32"))
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"Queries must be (m, {self.dim}) for this index, got shape {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, self.n_rows)
        if self.metric == "cosine":
            queries = _normalized(queries)
        if self.ann is None:
            return exact_search(self.table, queries, k)
        shortlist = min(self.n_rows, k * max(1, refine or self.refine))
        width = breadth or self.params.get("breadth")
        if self.backend == "faiss":
            rows = _search_faiss(self.ann, queries, shortlist, width, threads)
        else:
            rows = _search_usearch(self.ann, queries, shortlist, width, threads)
        return rescore(self.table, queries, rows, k)

    def to_disk(self, folder: Union[str, Path]) -> None:
        """Save the table, the index and meta.json in a folder; the table is
        then the saved file's map.

        folder (Union[str, Path]): The folder (created if needed).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / VECTORS_FILE
        if not _is_file(self.table, path):
            self.table = _replace_table(self.table, path, n_rows=self.n_rows, dim=self.dim, metric="ip",
                                        dtype=str(self.table.dtype))
        if self.backend == "faiss":
            _require("faiss").write_index(self.ann, str(folder / INDEX_FILES["faiss"]))
        elif self.backend == "usearch":
            self.ann.save(str(folder / INDEX_FILES["usearch"]))
        meta = {
            "format": FORMAT_VERSION, "backend": self.backend, "metric": self.metric, "n": self.n_rows,
            "dim": self.dim, "dtype": str(self.table.dtype), "refine": self.refine, "params": self.params,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf8")

    @classmethod
    def load(cls, folder: Union[str, Path]) -> "VectorIndex":
        """Load what to_disk saved, the table and the index memory-mapped.

        folder (Union[str, Path]): The folder.
        RETURNS (VectorIndex): The index.
        RAISES (ValueError): If meta.json is missing, of a newer format, or
            disagrees with the table.
        """
        folder = Path(folder)
        if not (folder / META_FILE).exists():
            raise ValueError(f"{folder} holds no VectorIndex ({META_FILE} is missing)")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf8"))
        if meta.get("format", 0) > FORMAT_VERSION:
            raise ValueError(f"{folder}: VectorIndex format {meta['format']} is newer than this version reads")
        table = numpy.load(folder / VECTORS_FILE, mmap_mode="r")
        if table.shape != (meta["n"], meta["dim"]):
            raise ValueError(f"{folder}: table of shape {table.shape}, meta.json says ({meta['n']}, {meta['dim']})")
        ann, backend = None, meta["backend"]
        # Mapped, not read, where the backend allows it (usearch views, faiss
        # IVF lists; faiss reads an HNSW graph whole): processes share pages.
        if backend == "faiss":
            faiss = _require("faiss")
            ann = faiss.read_index(str(folder / INDEX_FILES[backend]), faiss.IO_FLAG_MMAP)
        elif backend == "usearch":
            ann = _require("usearch.index").Index.restore(str(folder / INDEX_FILES[backend]), view=True)
        return cls(table, backend=meta["backend"], metric=meta["metric"], params=meta["params"], ann=ann,
                   refine=meta["refine"])

    from_disk = load


def exact_search(table: numpy.ndarray, queries: numpy.ndarray, k: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Brute-force top k (at most n) by inner product of float32 queries,
    one pass over the table in chunks.

    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): rows (m, k) int64 and
        scores (m, k) float32, best first.
    """
    m = len(queries)
    best_rows = numpy.full((m, 0), -1, dtype="int64")
    best_scores = numpy.full((m, 0), -numpy.inf, dtype="float32")
    # Scores of every query against a chunk are held at once: keep them ~64 MB.
    step = max(k, min(CHUNK_ROWS, (1 << 24) // max(1, m)))
    for start in range(0, len(table), step):
        chunk = numpy.asarray(table[start : start + step], dtype="float32")
        scores = queries @ chunk.T
        top = _top_k(scores, k)
        rows = numpy.concatenate([best_rows, top + start], axis=1)
        merged = numpy.concatenate([best_scores, numpy.take_along_axis(scores, top, axis=1)], axis=1)
        keep = _top_k(merged, k)
        best_rows = numpy.take_along_axis(rows, keep, axis=1)
        best_scores = numpy.take_along_axis(merged, keep, axis=1)
    return _sorted(best_rows, best_scores)


def rescore(
    table: numpy.ndarray, queries: numpy.ndarray, rows: numpy.ndarray, k: int
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The best k of each query's shortlisted rows ((m, s), -1 for none) by
    exact scores against the table.

    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): rows (m, k) int64 and
        scores (m, k) float32, best first.
    """
    valid = rows >= 0
    # One gather of the distinct rows, in file order: a map reads each page once.
    unique, inverse = numpy.unique(numpy.where(valid, rows, 0), return_inverse=True)
    vectors = numpy.asarray(table[unique], dtype="float32")
    gathered = vectors[inverse.reshape(rows.shape)]
    scores = numpy.einsum("msd,md->ms", gathered, queries)
    scores = numpy.where(valid, scores, -numpy.inf).astype("float32")
    keep = _top_k(scores, min(k, rows.shape[1]))
    best_rows = numpy.where(numpy.take_along_axis(valid, keep, axis=1), numpy.take_along_axis(rows, keep, axis=1), -1)
    return _sorted(best_rows.astype("int64"), numpy.take_along_axis(scores, keep, axis=1))


def _top_k(scores: numpy.ndarray, k: int) -> numpy.ndarray:
    if scores.shape[1] <= k:
        return numpy.broadcast_to(numpy.arange(scores.shape[1]), scores.shape).copy()
    return numpy.argpartition(-scores, k - 1, axis=1)[:, :k]


def _sorted(rows: numpy.ndarray, scores: numpy.ndarray) -> Tuple[numpy.ndarray, numpy.ndarray]:
    # Ties broken by row, so that equal scores come out in a stable order.
    order = numpy.lexsort((rows, -scores), axis=1)
    return numpy.take_along_axis(rows, order, axis=1), numpy.take_along_axis(scores, order, axis=1).astype("float32")


def _sample_rows(n_rows: int, count: int) -> numpy.ndarray:
    # Deterministic, sorted (sequential reads of a map), spread over the table.
    return numpy.sort(numpy.random.default_rng(0).choice(n_rows, size=count, replace=False))


def _build_faiss(table: numpy.ndarray, params: Dict[str, Any], *, threads: int) -> Any:
    faiss = _require("faiss")
    if threads:
        faiss.omp_set_num_threads(threads)
    index = faiss.index_factory(table.shape[1], params["factory"], faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        sample = _sample_rows(len(table), min(len(table), int(params.get("train_rows", len(table)))))
        index.train(numpy.asarray(table[sample], dtype="float32"))
    for start in range(0, len(table), CHUNK_ROWS):
        index.add(numpy.asarray(table[start : start + CHUNK_ROWS], dtype="float32"))
    return index


def _search_faiss(index: Any, queries: numpy.ndarray, count: int, breadth: Optional[int], threads: int) -> Any:
    faiss = _require("faiss")
    if threads:
        faiss.omp_set_num_threads(threads)
    if breadth:
        name = "efSearch" if "HNSW" in type(index).__name__ else "nprobe"
        value = max(breadth, count) if name == "efSearch" else breadth
        faiss.ParameterSpace().set_index_parameter(index, name, int(value))
    _, rows = index.search(queries, count)
    return rows.astype("int64")


def _build_usearch(table: numpy.ndarray, params: Dict[str, Any], *, threads: int) -> Any:
    usearch_index = _require("usearch.index")
    index = usearch_index.Index(
        ndim=table.shape[1], metric="ip", dtype=params["quantization"], connectivity=params["connectivity"],
        expansion_add=params["expansion_add"], expansion_search=params["breadth"],
    )
    for start in range(0, len(table), CHUNK_ROWS):
        chunk = numpy.asarray(table[start : start + CHUNK_ROWS], dtype="float32")
        index.add(numpy.arange(start, start + len(chunk), dtype="uint64"), chunk, threads=threads)
    return index


def _search_usearch(index: Any, queries: numpy.ndarray, count: int, breadth: Optional[int], threads: int) -> Any:
    if breadth:
        # HNSW returns at most expansion_search results: never fewer than asked.
        index.expansion_search = int(max(breadth, count))
    matches = index.search(queries, count, threads=threads)
    keys = numpy.asarray(matches.keys, dtype="int64").reshape(len(queries), -1)
    found = numpy.arange(keys.shape[1])[None, :] < numpy.asarray(matches.counts).reshape(-1, 1)
    return numpy.where(found, keys, -1)
