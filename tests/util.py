"""Pipelines and gold docs built in tests: tiny random BERT or spaCy's CNN Tok2Vec."""
from pathlib import Path
from typing import List, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

# The transformer backbone's strided windows (in spaCy tokens).
WINDOW, STRIDE = 16, 12


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
                        "window": WINDOW,
                        "stride": STRIDE,
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


def overfitted_pipeline(model_dir: str, data, path, *, steps: int) -> "Path":
    """A tiny transformer_ner pipeline on `model_dir`, trained `steps`
    updates on `data` from seed 0 and saved to `path` (the teacher or fp32
    reference of the compression tests).

    RETURNS (Path): `path`.
    """
    fix_random_seed(0)
    nlp = make_nlp("transformer", model_dir=model_dir, head_lr_scale=5.0)
    train(nlp, data, steps=steps, learn_rate=0.01)
    nlp.to_disk(path)
    return path


def ents(doc) -> List[Tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def long_document(nlp: Language, data, n_tokens: int, *, window: int = WINDOW, stride: int = STRIDE):
    """At least n_tokens tokens of the data's sentences, with filler tokens
    between them chosen so that each gold entity in turn starts at every
    position modulo the stride: multi-token entities then straddle the
    backbone's window starts and ends.

    data (list): (text, [(start, end, label, ...)]) pairs.
    RETURNS (Tuple[str, list]): The text and its gold entities, each
        (char start, char end, label, ..., straddles a window edge).
    """
    combos = [(text, ents, j, r) for r in range(stride) for text, ents in data for j in range(len(ents))]
    parts: List[str] = []
    gold: list = []
    n_done = offset = i = 0
    while n_done < n_tokens:
        text, ents, j, residue = combos[i % len(combos)]
        filler = "the " * ((residue - n_done - len(nlp.make_doc(text[: ents[j][0]]))) % stride)
        first = n_done + len(filler) // 4  # the sentence's first token
        for s, e, *rest in ents:
            start = first + len(nlp.make_doc(text[:s]))
            end = start + len(nlp.make_doc(text[s:e]))
            # Window w covers tokens [w * stride, w * stride + window): an
            # entity straddles an edge if a window holds part of it, not all.
            edges = {w * stride + d for w in range(start // stride - 2, end // stride + 2) for d in (0, window)}
            at = offset + len(filler) + s
            gold.append((at, at + e - s, *rest, any(start < edge < end for edge in edges)))
        piece = filler + text + " "
        parts.append(piece)
        offset += len(piece)
        n_done = first + len(nlp.make_doc(text))
        i += 1
    return "".join(parts), gold


def reference(nlp: Language, text: str, ents) -> Doc:
    """A gold doc with linked entities: ents are (start_char, end_char,
    label, kb_id)."""
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(s, e, label=label, kb_id=kb_id) for s, e, label, kb_id in ents]
    return doc
