"""CRF inference against brute-force enumeration on small random problems."""
import itertools

import numpy
import pytest
from hypothesis import given, settings, strategies as st

from spacy_llm_ner.ml import crf
from spacy_llm_ner.ml.tags import TagSet


def _problem(seed: int, length: int, scheme: str, n_labels: int = 2):
    rng = numpy.random.default_rng(seed)
    tagset = TagSet(tuple(f"L{i}" for i in range(n_labels)), scheme)
    n = len(tagset)
    params = crf.CRFParams.constrained(
        rng.normal(size=(n, n)), rng.normal(size=n), rng.normal(size=n), tagset.constraints()
    )
    emissions = rng.normal(size=(length, n)) * 2
    return tagset, params, emissions


def _path_score(emissions, params, path):
    score = params.start[path[0]] + params.end[path[-1]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        score += params.trans[path[t - 1], path[t]] + emissions[t, path[t]]
    return score


def _all_paths(n_tags, length):
    return [numpy.asarray(p) for p in itertools.product(range(n_tags), repeat=length)]


def _is_valid(tagset, path):
    trans, start, end = tagset.constraints()
    return start[path[0]] and end[path[-1]] and all(
        trans[a, b] for a, b in zip(path[:-1], path[1:])
    )


@pytest.mark.parametrize("scheme", ["BILUO", "IOB"])
@pytest.mark.parametrize("seed", range(6))
def test_viterbi_equals_brute_force(scheme, seed):
    length = 1 + seed % 4
    tagset, params, emissions = _problem(seed, length, scheme, n_labels=1)
    paths = _all_paths(len(tagset), length)
    scores = [_path_score(emissions, params, p) for p in paths]
    best = paths[int(numpy.argmax(scores))]
    (got,) = crf.viterbi(emissions[None], numpy.asarray([length]), params)
    assert list(got) == list(best)
    assert _is_valid(tagset, got)


@pytest.mark.parametrize("scheme", ["BILUO", "IOB"])
def test_log_z_and_marginals_equal_brute_force(scheme):
    tagset, params, emissions = _problem(7, 4, scheme, n_labels=1)
    paths = [p for p in _all_paths(len(tagset), 4) if _is_valid(tagset, p)]
    scores = numpy.asarray([_path_score(emissions, params, p) for p in paths])
    log_z = crf.logsumexp(scores, axis=0)
    probs = numpy.exp(scores - log_z)
    expected = numpy.zeros_like(emissions)
    for p, prob in zip(paths, probs):
        expected[numpy.arange(4), p] += prob
    m = crf.marginals(emissions[None], numpy.asarray([4]), params)
    assert m.log_z[0] == pytest.approx(log_z)
    numpy.testing.assert_allclose(m.unary[0], expected, atol=1e-8)
    numpy.testing.assert_allclose(m.unary[0].sum(axis=1), 1.0)
    assert m.trans.sum() == pytest.approx(3.0)


def test_span_probability_equals_brute_force():
    tagset, params, emissions = _problem(3, 5, "IOB", n_labels=2)
    paths = [p for p in _all_paths(len(tagset), 5) if _is_valid(tagset, p)]
    scores = numpy.asarray([_path_score(emissions, params, p) for p in paths])
    probs = numpy.exp(scores - crf.logsumexp(scores, axis=0))
    (best,) = crf.viterbi(emissions[None], numpy.asarray([5]), params)
    spans = tagset.to_spans(best)
    if len(spans) == 0:
        pytest.skip("no entity decoded for this seed")
    got = numpy.exp(
        crf.span_log_probs(emissions, best, spans, params, tagset.continuation())
    )
    for (start, end, label), p_got in zip(spans, got):
        expected = sum(
            prob
            for path, prob in zip(paths, probs)
            if any(
                (s, e, lab) == (start, end, label) for s, e, lab in tagset.to_spans(path)
            )
        )
        assert p_got == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=5),
    scheme=st.sampled_from(["BILUO", "IOB"]),
    seed=st.integers(0, 10_000),
)
def test_padded_batch_matches_single_rows_and_is_valid(lengths, scheme, seed):
    rng = numpy.random.default_rng(seed)
    tagset = TagSet(("A", "B", "C"), scheme)
    n = len(tagset)
    params = crf.CRFParams.constrained(
        rng.normal(size=(n, n)) * 3, rng.normal(size=n), rng.normal(size=n), tagset.constraints()
    )
    seqs = [rng.normal(size=(k, n)) * 5 for k in lengths]
    padded, lens = crf.pad(seqs)
    paths = crf.viterbi(padded, lens, params)
    m = crf.marginals(padded, lens, params)
    for i, seq in enumerate(seqs):
        assert len(paths[i]) == len(seq)
        if len(seq) == 0:
            assert m.log_z[i] == 0.0
            continue
        assert _is_valid(tagset, paths[i])
        tagset.to_spans(paths[i])  # raises on an invalid sequence
        single = crf.marginals(seq[None], numpy.asarray([len(seq)]), params)
        assert m.log_z[i] == pytest.approx(single.log_z[0])
        numpy.testing.assert_allclose(m.unary[i, : len(seq)].sum(axis=1), 1.0)
        assert numpy.isfinite(m.unary).all()


def test_chunks_bound_padding():
    groups = crf.chunks_by_length([100_000, 3, 5, 4], max_cells=1000)
    assert sorted(sum(groups, [])) == [0, 1, 2, 3]
    assert [0] in groups


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=5),
    scheme=st.sampled_from(["BILUO", "IOB"]),
    scale=st.sampled_from([0.1, 3.0, 40.0]),
    masked=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_scaled_forward_backward_equals_log_space(lengths, scheme, scale, masked, seed):
    rng = numpy.random.default_rng(seed)
    tagset = TagSet(("A", "B"), scheme)
    n = len(tagset)
    params = crf.CRFParams.constrained(
        rng.normal(size=(n, n)) * scale, rng.normal(size=n), rng.normal(size=n), tagset.constraints()
    )
    padded, lens = crf.pad([rng.normal(size=(k, n)) * scale for k in lengths])
    allowed = rng.random(padded.shape) > 0.3 if masked else None
    E = crf._apply_mask(padded, allowed)
    expected = crf._forward_backward_log(E, lens, params)
    got = crf._forward_backward_scaled(E, lens, params)
    if got is None:
        # Falls back only where a step underflows: scores far apart, or a
        # mask that leaves no way through; the result is then the log-space one.
        assert masked or scale > 3
        numpy.testing.assert_allclose(crf.forward_backward(padded, lens, params, allowed)[2], expected[2])
        return
    valid = (numpy.arange(E.shape[1])[None] < lens[:, None])[:, :, None]
    numpy.testing.assert_allclose(got[2], expected[2], rtol=1e-9, atol=1e-6)
    for mine, theirs in zip(got[:2], expected[:2]):
        # Per position, the distributions over tags that alpha and beta give
        # agree (a tag below e^-600 of the best may come out as impossible).
        reachable = valid[:, :, 0] & (theirs.max(axis=2) > crf.NEG / 2)
        numpy.testing.assert_allclose(_normalized(mine)[reachable], _normalized(theirs)[reachable], atol=1e-9)
        totals = crf.logsumexp(mine, axis=2), crf.logsumexp(theirs, axis=2)
        numpy.testing.assert_allclose(totals[0][reachable], totals[1][reachable], rtol=1e-9, atol=1e-6)


def _normalized(scores):
    return numpy.exp(scores - crf.logsumexp(scores, axis=2)[:, :, None])


def test_forward_backward_falls_back_to_log_space_on_extreme_scores():
    tagset = TagSet(("A",), "BILUO")
    n = len(tagset)
    trans = numpy.zeros((n, n))
    trans[0, 0] = 1e4  # O -> O dwarfs every other transition: exp underflows
    params = crf.CRFParams.constrained(trans, numpy.zeros(n), numpy.zeros(n), tagset.constraints())
    emissions = numpy.zeros((1, 3, n))
    allowed = numpy.ones((1, 3, n), dtype=bool)
    allowed[0, 1, 0] = False  # the middle token is forced into an entity
    E = crf._apply_mask(emissions, allowed)
    lengths = numpy.asarray([3])
    assert crf._forward_backward_scaled(E, lengths, params) is None
    alpha, beta, log_z = crf.forward_backward(emissions, lengths, params, allowed)
    expected = crf._forward_backward_log(E, lengths, params)
    numpy.testing.assert_allclose(log_z, expected[2])
    m = crf.marginals(emissions, lengths, params, allowed)
    assert m.unary[0, 1, 0] == pytest.approx(0.0) and m.unary[0, 1].sum() == pytest.approx(1.0)
