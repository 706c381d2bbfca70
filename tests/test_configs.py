"""The shipped NER configs build, initialize and train with the tiny BERT
(the real model is trained by the slow tests)."""
from pathlib import Path

import pytest
import spacy
from spacy.training import Example
from spacy.util import load_config
from thinc.api import fix_random_seed

from spacy_llm_ner.corpora import read_jsonl
from spacy_llm_ner.ml.features import GAZETTEER

ROOT = Path(__file__).resolve().parents[1]
DEMO_KB = ROOT / "assets" / "demo_kb.jsonl"


def _build(name: str, model_dir: str, **overrides):
    config = load_config(ROOT / "configs" / f"{name}.cfg", interpolate=True, overrides={
        "vars.transformer_name": model_dir, "vars.window": 16, "vars.stride": 16, "vars.predict_stride": 16, **overrides,
    })
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def _gazetteer(nlp):
    layers = [node for node in nlp.get_pipe("transformer_ner").model.walk() if node.name == GAZETTEER]
    return layers[0] if layers else None


@pytest.mark.parametrize("name", ["ner", "ner_kb"])
def test_shipped_ner_config_trains(name, tiny_bert_dir):
    fix_random_seed(0)
    nlp = _build(name, tiny_bert_dir, **({"paths.kb": str(DEMO_KB)} if name == "ner_kb" else {}))
    ner = nlp.get_pipe("transformer_ner")
    assert nlp.pipe_names == ["transformer", "transformer_ner"]
    assert ner.cfg["abbreviations"] == "consistent"
    docs = list(read_jsonl(ROOT / "assets" / "demo_train.jsonl", nlp=nlp))[:8]
    egs = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = 0.001  # past the config's warm-up, which starts at 0
    gazetteer = _gazetteer(nlp)
    if name == "ner_kb":
        assert gazetteer.attrs["types"] == ["Chemical", "Disease"] and gazetteer.attrs["aliases"]
    else:
        assert gazetteer is None
    losses = [nlp.update(egs, sgd=optimizer, losses={})["transformer_ner"] for _ in range(4)]
    assert losses[-1] < losses[0]
    assert "ents_f" in nlp.evaluate(egs)


def test_kb_config_without_a_kb_says_which_setting(tiny_bert_dir):
    with pytest.raises(Exception, match="gazetteer"):
        _build("ner_kb", tiny_bert_dir)
