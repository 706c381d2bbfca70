"""The NumpyBLASOps callback: the shipped CNN config multiplies through
numpy's BLAS, trains, predicts what blis predicts, and keeps doing so after
a save and reload and in forked workers."""
import multiprocessing
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import load_config
from thinc.api import Model, NumpyOps, fix_random_seed

from spacy_llm_ner.ml.ops import use_numpy_blas
from spacy_llm_ner.corpora import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
BLIS = {"nlp": {"after_pipeline_creation": None}}


def _blis_nodes(nlp) -> int:
    return sum(
        1
        for _, pipe in nlp.components
        for node in pipe.model.walk()
        if type(node.ops) is NumpyOps and node.ops.use_blis
    )


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory):
    fix_random_seed(0)
    config = load_config(ROOT / "configs" / "ner_cnn.cfg", interpolate=True)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    docs = list(read_jsonl(ROOT / "assets" / "demo_train.jsonl", nlp=nlp))[:16]
    egs = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: egs)
    losses = [nlp.update(egs, sgd=optimizer, losses={})["transformer_ner"] for _ in range(30)]
    path = tmp_path_factory.mktemp("cnn") / "model"
    nlp.to_disk(path)
    return nlp, path, losses, [doc.text for doc in docs]


def test_shipped_cnn_config_multiplies_through_numpy(trained_cnn):
    nlp, _, losses, _ = trained_cnn
    assert _blis_nodes(nlp) == 0
    assert losses[-1] < losses[0] / 2


def test_predictions_equal_blis_after_reload(trained_cnn):
    _, path, _, texts = trained_cnn
    fast = spacy.load(path)
    blis = spacy.load(path, config=BLIS)
    assert _blis_nodes(fast) == 0 and _blis_nodes(blis) > 0
    fast_docs = list(fast.pipe(texts))
    blis_docs = list(blis.pipe(texts))
    for a, b in zip(fast_docs, blis_docs):
        numpy.testing.assert_allclose(a.tensor, b.tensor, rtol=1e-4, atol=1e-4)
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in fast_docs] == [
        [(e.start, e.end, e.label_) for e in d.ents] for d in blis_docs
    ]
    assert any(d.ents for d in fast_docs)


def test_pipe_with_workers_equals_call(trained_cnn):
    _, path, _, texts = trained_cnn
    nlp = spacy.load(path)
    one = [[(e.start, e.end, e.label_) for e in nlp(t).ents] for t in texts]
    two = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts, n_process=2, batch_size=4)]
    assert one == two


def _blas_threads(queue) -> None:
    from threadpoolctl import threadpool_info

    queue.put(max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"))


def test_forked_workers_get_one_blas_thread(trained_cnn):
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    spacy.load(trained_cnn[1])  # numpy's BLAS now in use in this process
    with threadpool_limits(limits=2, user_api="blas"):
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_blas_threads, args=(queue,))
        child.start()
        child.join(60)
        assert queue.get(timeout=5) == 1


def test_other_ops_are_left_alone():
    class OtherOps(NumpyOps):
        pass

    model = Model("other", lambda model, X, is_train: (X, lambda dY: dY), ops=OtherOps())
    plain = Model("plain", lambda model, X, is_train: (X, lambda dY: dY), ops=NumpyOps())
    assert use_numpy_blas(model) == 0 and type(model.ops) is OtherOps
    assert use_numpy_blas(plain) == 1 and not plain.ops.use_blis
