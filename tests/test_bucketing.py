"""Length-bucketed transformer inference: same outputs, less padding."""
import pickle

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_llm_ner.ml.bucketing import LengthBucketedPredict, chunks_by_cost

TEXTS = [
    "Aspirin causes headache in mice.",
    "We gave cisplatin to patients with renal failure. " * 6,
    "No effect.",
    "Chronic kidney disease worsened after lithium therapy. " * 3,
]


def real_positions(doc) -> numpy.ndarray:
    """The backbone's output at the doc's word pieces (padding left out)."""
    data = doc._.trf_data
    return numpy.asarray(data.tensors[0])[numpy.asarray(data.wordpieces.attention_mask).astype(bool)]


def make_nlp(model_dir: str) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy_llm_ner.TransformerModel.v1",
        "name": model_dir,
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
        "tokenizer_config": {"use_fast": True},
    }})
    nlp.initialize()
    return nlp


def forward_shapes(nlp):
    shapes = []
    torch_model = nlp.get_pipe("transformer").model.layers[0].shims[0]._model

    def hook(module, args, kwargs, output):
        shapes.append(tuple(kwargs["input_ids"].shape))

    return shapes, torch_model.register_forward_hook(hook, with_kwargs=True)


def test_bucketed_outputs_equal_plain_outputs_with_less_padding(tiny_bert_dir):
    nlp = make_nlp(tiny_bert_dir)
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert isinstance(shim.predict, LengthBucketedPredict)
    # Calls free: these few short windows are then split by length.
    shim.predict.call_cost = 0
    shapes, handle = forward_shapes(nlp)
    bucketed = [real_positions(d) for d in nlp.pipe(TEXTS, batch_size=8)]
    bucketed_positions = sum(b * n for b, n in shapes)
    shapes.clear()
    del shim.predict  # the class's own predict: one padded tensor
    plain = [real_positions(d) for d in nlp.pipe(TEXTS, batch_size=8)]
    plain_positions = sum(b * n for b, n in shapes)
    handle.remove()
    for a, b in zip(bucketed, plain):
        numpy.testing.assert_allclose(a, b, atol=1e-5)
    assert bucketed_positions < plain_positions


def test_bucketed_pipeline_saves_loads_and_pickles(tiny_bert_dir, tmp_path):
    nlp = make_nlp(tiny_bert_dir)
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    assert isinstance(loaded.get_pipe("transformer").model.layers[0].shims[0].predict, LengthBucketedPredict)
    expected = [real_positions(d) for d in nlp.pipe(TEXTS)]
    got = [real_positions(d) for d in loaded.pipe(TEXTS)]
    for a, b in zip(expected, got):
        numpy.testing.assert_allclose(a, b, atol=1e-5)
    copied = pickle.loads(pickle.dumps(LengthBucketedPredict(None, max_tokens=7)))
    assert copied.max_tokens == 7


def _cost(chunks, lengths, call_cost):
    return sum(call_cost + len(c) * max(max(lengths[i] for i in c), 1) for c in chunks)


def _contiguous_partitions(n):
    # Every split of range(n) into consecutive runs.
    for mask in range(2 ** max(n - 1, 0)):
        bounds = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        yield [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 200), min_size=1, max_size=8),
    call_cost=st.sampled_from([0, 16, 64, 500]),
    max_cells=st.sampled_from([100, 400, 8192]),
)
def test_chunks_by_cost_is_optimal_and_bounded(lengths, call_cost, max_cells):
    chunks = chunks_by_cost(lengths, max_cells=max_cells, call_cost=call_cost)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) == 1 or len(chunk) * max(lengths[i] for i in chunk) <= max_cells
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    feasible = [
        [[order[i] for i in part] for part in parts]
        for parts in _contiguous_partitions(len(lengths))
        if all(len(p) == 1 or len(p) * max(max(lengths[order[i]] for i in p), 1) <= max_cells for p in parts)
    ]
    assert _cost(chunks, lengths, call_cost) == pytest.approx(min(_cost(c, lengths, call_cost) for c in feasible))


def test_chunks_by_cost_merges_short_tail_windows():
    # A batch's windows: many full ones, and one short tail window per doc.
    rng = numpy.random.default_rng(0)
    lengths = [190] * 120 + list(rng.integers(5, 190, size=64))
    chunks = chunks_by_cost(lengths, max_cells=8192, call_cost=64)
    padded = sum(len(c) * max(lengths[i] for i in c) for c in chunks)
    # The padding-bounded chunks this replaced: 4096 positions at most, a new
    # chunk wherever a window is 25% longer than its chunk's shortest.
    n_bounded, shortest, rows = 1, None, 0
    for length in sorted(lengths):
        if shortest is not None and ((rows + 1) * length > 4096 or length > 1.25 * shortest):
            n_bounded, shortest, rows = n_bounded + 1, None, 0
        shortest, rows = shortest or length, rows + 1
    assert len(chunks) < n_bounded / 1.5
    assert padded < 1.15 * sum(lengths)
