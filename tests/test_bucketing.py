"""Length-bucketed transformer inference: same outputs, less padding."""
import pickle

import numpy
import spacy

from spacy_llm_ner.ml.bucketing import LengthBucketedPredict

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
