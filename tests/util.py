"""Pipelines built in tests: tiny random BERT or spaCy's CNN Tok2Vec."""
from typing import List, Tuple

import spacy
from spacy.language import Language
from spacy.training import Example


def make_nlp(
    backbone: str, *, component: str = "transformer_ner", model_dir: str = "", lang: str = "en", **cfg
) -> Language:
    """A blank pipeline with a backbone ("transformer": the tiny BERT in
    model_dir; "tok2vec": spaCy's CNN) and `component` listening to it."""
    nlp = spacy.blank(lang)
    if backbone == "transformer":
        nlp.add_pipe(
            "transformer",
            config={
                "model": {
                    "@architectures": "spacy_llm_ner.TransformerModel.v1",
                    "name": model_dir,
                    "get_spans": {
                        "@span_getters": "spacy-transformers.strided_spans.v1",
                        "window": 16,
                        "stride": 12,
                    },
                    "tokenizer_config": {"use_fast": True},
                }
            },
        )
        nlp.add_pipe(component, config=cfg)
    else:
        nlp.add_pipe("tok2vec")
        listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 96}
        nlp.add_pipe(component, config={"model": {"tok2vec": listener}, **cfg})
    return nlp


def examples(nlp: Language, data: List[Tuple[str, list]]) -> List[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"entities": ents}) for text, ents in data]


def train(nlp: Language, data, *, steps: int = 80, learn_rate: float = 0.002) -> List[Example]:
    egs = examples(nlp, data)
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = learn_rate
    for _ in range(steps):
        nlp.update(egs, sgd=optimizer, losses={})
    return egs


def ents(doc) -> List[Tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]
