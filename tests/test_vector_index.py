"""VectorIndex: each backend finds the exact nearest rows on a small
clustered set, saves and loads memory-mapped, builds the same from chunks."""
from typing import Dict, Optional, Set

import numpy
import pytest

from spacy_llm_ner.kb.vector_index import VectorIndex

N, DIM, CENTRES, K = 2000, 32, 40, 10
# Small enough that every backend should be exact here: faiss IVF visits all
# of its 16 lists, usearch's HNSW at this size is close to exhaustive.
FAISS_PARAMS = {"factory": "IVF16,SQ8", "breadth": 16, "train_rows": N}


def _backend_params(backend: str) -> Optional[Dict[str, object]]:
    return FAISS_PARAMS if backend == "faiss" else None


@pytest.fixture(scope="module")
def data():
    # Clusters (entities around shared centres), not uniform noise: nearest
    # neighbours must mean something for an ANN to be tested at all.
    rng = numpy.random.default_rng(7)
    centres = rng.standard_normal((CENTRES, DIM))
    vectors = centres[rng.integers(0, CENTRES, N)] + 0.35 * rng.standard_normal((N, DIM))
    queries = vectors[rng.choice(N, 50, replace=False)] + 0.1 * rng.standard_normal((50, DIM))
    return vectors.astype("float32"), queries.astype("float32")


def _unit(x: numpy.ndarray) -> numpy.ndarray:
    return x / numpy.linalg.norm(x, axis=1, keepdims=True)


def _true_scores(vectors: numpy.ndarray, queries: numpy.ndarray, dtype: str) -> numpy.ndarray:
    stored = _unit(vectors).astype(dtype).astype("float32")
    return _unit(queries) @ stored.T


def _allowed(scores: numpy.ndarray, k: int) -> Set[int]:
    # Rows scoring at least the k-th best (ties with it included).
    kth = numpy.sort(scores)[-k]
    return set(numpy.flatnonzero(scores >= kth - 1e-5).tolist())


def _use(backend: str) -> None:
    if backend != "exact":
        pytest.importorskip({"faiss": "faiss", "usearch": "usearch.index"}[backend])


@pytest.mark.parametrize("backend", ["exact", "faiss", "usearch"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_search_is_exact_on_small_set(data, backend, dtype):
    _use(backend)
    vectors, queries = data
    index = VectorIndex.build(vectors, backend=backend, dtype=dtype, params=_backend_params(backend), threads=1)
    assert index.backend == backend and str(index.table.dtype) == dtype
    rows, scores = index.search(queries, K, threads=1)
    assert rows.shape == scores.shape == (len(queries), K)
    assert rows.dtype == numpy.int64 and scores.dtype == numpy.float32
    truth = _true_scores(vectors, queries, dtype)
    for q in range(len(queries)):
        assert set(rows[q].tolist()) <= _allowed(truth[q], K), f"query {q}"
        assert numpy.all(numpy.diff(scores[q]) <= 1e-6), "best first"
        numpy.testing.assert_allclose(scores[q], truth[q, rows[q]], atol=1e-4)


@pytest.mark.parametrize("backend", ["exact", "faiss", "usearch"])
def test_round_trip_is_identical_and_mapped(data, backend, tmp_path):
    _use(backend)
    vectors, queries = data
    index = VectorIndex.build(vectors, backend=backend, params=_backend_params(backend), threads=1)
    rows, scores = index.search(queries, K, threads=1)
    index.to_disk(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index")
    assert isinstance(loaded.table, numpy.memmap)
    assert (loaded.backend, loaded.metric, loaded.n_rows, loaded.dim) == (backend, "cosine", N, DIM)
    rows2, scores2 = loaded.search(queries, K, threads=1)
    numpy.testing.assert_array_equal(rows2, rows)
    numpy.testing.assert_array_equal(scores2, scores)


@pytest.mark.parametrize("backend", ["exact", "usearch"])
def test_chunked_build_into_folder_equals_one_array(data, backend, tmp_path):
    _use(backend)
    vectors, queries = data
    whole = VectorIndex.build(vectors, backend=backend, threads=1)
    chunks = (vectors[i : i + 300] for i in range(0, N, 300))
    chunked = VectorIndex.build(chunks, folder=tmp_path, n_rows=N, backend=backend, threads=1)
    assert isinstance(chunked.table, numpy.memmap)
    numpy.testing.assert_array_equal(numpy.asarray(chunked.table), whole.table)
    numpy.testing.assert_array_equal(chunked.search(queries, K, threads=1)[0], whole.search(queries, K, threads=1)[0])
    # build with a folder saved the index there too
    numpy.testing.assert_array_equal(VectorIndex.load(tmp_path).search(queries, K)[0], whole.search(queries, K)[0])


def test_rebuild_leaves_loaded_map_intact(data, tmp_path):
    vectors, queries = data
    VectorIndex.build(vectors, folder=tmp_path, backend="exact")
    loaded = VectorIndex.load(tmp_path)
    before = loaded.search(queries, K)
    rebuilt = VectorIndex.build(vectors[::-1].copy(), folder=tmp_path, backend="exact")
    numpy.testing.assert_array_equal(loaded.search(queries, K)[0], before[0])
    numpy.testing.assert_array_equal(rebuilt.search(queries, K)[0], N - 1 - before[0])
    assert isinstance(rebuilt.table, numpy.memmap)


def test_chunk_iterator_needs_n_rows(data):
    vectors, _ = data
    with pytest.raises(ValueError, match="n_rows"):
        VectorIndex.build(iter([vectors[:100], vectors[100:]]), backend="exact")
    with pytest.raises(ValueError, match="expected n_rows=300"):
        VectorIndex.build(iter([vectors[:100], vectors[100:200]]), backend="exact", n_rows=300)


def test_adopts_table_already_in_folder(data, tmp_path):
    vectors, queries = data
    first = VectorIndex.build(vectors, folder=tmp_path, backend="exact")
    mapped = numpy.load(tmp_path / "vectors.npy", mmap_mode="r")
    again = VectorIndex.build(mapped, folder=tmp_path, backend="exact")
    numpy.testing.assert_array_equal(again.search(queries, K)[0], first.search(queries, K)[0])


def test_float16_and_float32_agree_on_top1(data):
    vectors, queries = data
    half = VectorIndex.build(vectors, backend="exact", dtype="float16")
    full = VectorIndex.build(vectors, backend="exact", dtype="float32")
    assert half.table.nbytes * 2 == full.table.nbytes
    numpy.testing.assert_array_equal(half.search(queries, 1)[0], full.search(queries, 1)[0])


def test_ip_metric_keeps_norms(data):
    vectors, queries = data
    index = VectorIndex.build(vectors, backend="exact", metric="ip", dtype="float32")
    rows, scores = index.search(queries[:1], 3)
    full = queries[:1] @ vectors.T
    numpy.testing.assert_array_equal(rows[0], numpy.argsort(-full[0])[:3])
    numpy.testing.assert_allclose(scores[0], full[0, rows[0]], rtol=1e-5)


def test_single_query_and_k_above_n(data):
    vectors, queries = data
    index = VectorIndex.build(vectors[:5], backend="exact")
    rows, scores = index.search(queries[0], 10)
    assert rows.shape == (1, 5) and sorted(rows[0].tolist()) == list(range(5))


def test_errors(data):
    vectors, queries = data
    index = VectorIndex.build(vectors, backend="exact")
    with pytest.raises(ValueError, match=r"\(m, 32\)"):
        index.search(queries[:, :16], K)
    with pytest.raises(ValueError, match="k must be"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="Unknown VectorIndex backend 'annoy'"):
        VectorIndex.build(vectors, backend="annoy")
    with pytest.raises(ValueError, match="metric"):
        VectorIndex.build(vectors, metric="l2")
    with pytest.raises(ValueError, match="float16 or float32"):
        VectorIndex.build(vectors, dtype="int8")
    with pytest.raises(ValueError, match="holds no VectorIndex"):
        VectorIndex.load("/nonexistent/folder")
