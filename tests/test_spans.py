"""Strided transformer windows with a stride of their own for prediction."""
import pickle

import pytest
import spacy
from spacy_transformers.span_getters import get_strided_spans

from conftest import TRAIN_DATA
from spacy_llm_ner.ml.spans import StridedSpans, predicting
from util import ents, train

NLP = spacy.blank("en")


def bounds(nested):
    return [[(span.start, span.end) for span in spans] for spans in nested]


@pytest.mark.parametrize("n_tokens", [0, 5, 16, 40, 41, 100])
def test_windows_equal_spacy_transformers_in_both_modes(n_tokens):
    doc = NLP.make_doc(" ".join(["w"] * n_tokens))
    getter = pickle.loads(pickle.dumps(StridedSpans(16, 12, 16)))
    assert bounds(getter([doc])) == bounds(get_strided_spans([doc], window=16, stride=12))
    with predicting():
        assert bounds(getter([doc])) == bounds(get_strided_spans([doc], window=16, stride=16))
        assert bounds(StridedSpans(16, 12)([doc])) == bounds(get_strided_spans([doc], window=16, stride=12))
    assert bounds(getter([doc])) == bounds(get_strided_spans([doc], window=16, stride=12))


@pytest.mark.parametrize("stride,predict_stride", [(0, None), (17, None), (12, 0), (12, 20)])
def test_strides_outside_the_window_are_an_error(stride, predict_stride):
    with pytest.raises(ValueError, match="stride"):
        StridedSpans(16, stride, predict_stride)


def _pipeline(model_dir, predict_stride):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy_llm_ner.TransformerModel.v1", "name": model_dir,
        "get_spans": {"@span_getters": "spacy_llm_ner.strided_spans.v1", "window": 8, "stride": 4,
                      "predict_stride": predict_stride},
        "tokenizer_config": {"use_fast": True},
    }})
    nlp.add_pipe("transformer_ner")
    return nlp


def test_transformer_uses_prediction_windows_only_without_gradients(tiny_bert_dir, tmp_path):
    nlp = _pipeline(tiny_bert_dir, 8)
    train(nlp, TRAIN_DATA, steps=3)
    doc = nlp.make_doc(" ".join(text for text, _ in TRAIN_DATA))
    model = nlp.get_pipe("transformer").model
    assert bounds(model.predict([doc]).spans) == bounds(get_strided_spans([doc], window=8, stride=8))
    batch, _ = model.begin_update([doc])
    assert bounds(batch.spans) == bounds(get_strided_spans([doc], window=8, stride=4))
    # A thread predicting does not change the windows another one trains on.
    from concurrent.futures import ThreadPoolExecutor

    with predicting(), ThreadPoolExecutor(1) as pool:
        assert bounds(pool.submit(lambda: model.begin_update([doc])[0].spans).result()) == bounds(batch.spans)
    nlp.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    assert loaded.get_pipe("transformer").model.attrs["get_spans"].predict_stride == 8
    assert ents(loaded(doc.text)) == ents(nlp(doc.text))
    override = spacy.load(tmp_path, config={"components.transformer.model.get_spans.predict_stride": 4})
    assert bounds(override.get_pipe("transformer").model.predict([doc]).spans) == bounds(batch.spans)


def test_replace_listeners_copy_keeps_prediction_windows(tiny_bert_dir, tmp_path):
    """spaCy's replace_listeners gives the NER its own copy of the
    transformer: the copy still predicts with the prediction windows."""
    nlp = _pipeline(tiny_bert_dir, 8)
    train(nlp, TRAIN_DATA, steps=3)
    text = " ".join(text for text, _ in TRAIN_DATA)
    expected = ents(nlp(text))
    nlp.replace_listeners("transformer", "transformer_ner", ["model.tok2vec"])
    own = next(node for node in nlp.get_pipe("transformer_ner").model.walk() if node.name == "transformer")
    assert own is not nlp.get_pipe("transformer").model
    doc = nlp.make_doc(text)
    assert bounds(own.predict([doc]).spans) == bounds(get_strided_spans([doc], window=8, stride=8))
    assert bounds(own.begin_update([doc])[0].spans) == bounds(get_strided_spans([doc], window=8, stride=4))
    assert own.attrs["has_transformer"]
    nlp.remove_pipe("transformer")
    assert ents(nlp(text)) == expected
    nlp.to_disk(tmp_path)
    assert ents(spacy.load(tmp_path)(text)) == expected
