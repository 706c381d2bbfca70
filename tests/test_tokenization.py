"""`convert` tokenizes without building a `Language` (spacy.blank imports
every installed factory: torch, transformers): the same tokens and the same
.spacy bytes as spacy.blank's tokenizer."""
import json
from pathlib import Path

import pytest
import spacy

from spacy_llm_ner.corpora import Tokenization, convert, make_doc_with_boundaries, read_jsonl, tokenization
from spacy_llm_ner.corpora import formats

ASSETS = Path(__file__).parents[1] / "assets"
TRICKY = [
    "See https://example.org/a?b=1&c=2 or www.example.com/x, and mail me@example.com.",
    "The U.S. and U.K. approved it in Jan. 2020, e.g. for Dr. Smith's patients.",
    "I don't know; they'd've said it wasn't. Can't won't shouldn't.",
    "Well-known anti-inflammatory non-steroidal drugs, 5-FU and COVID-19 co-infection.",
    "Great :) :-( ;) <3 :D ... and ^_^ too!!!",
    "Cisplatin (5mg/kg) was given i.v. at 10:30am; 3x daily (n=12, p<0.05).",
    "Prices: $5.00, 10%, 1,000.5 and 3.14e-10 -- 'quoted' \"double\" [brackets] {braces}.",
    "  leading and trailing spaces\tand\ttabs\nnewline  ",
]


def _tokens(tokenize, text):
    return [(t.text, t.whitespace_) for t in tokenize(text)]


@pytest.mark.parametrize("lang", ["en", "de", "xx"])
def test_tokens_are_spacy_blanks(lang):
    blank, built = spacy.blank(lang), tokenization(lang)
    for text in TRICKY:
        assert _tokens(built.tokenizer, text) == _tokens(blank.tokenizer, text)


def test_rule_based_languages_build_no_language(monkeypatch):
    def no_blank(lang):
        raise AssertionError("spacy.blank called")

    monkeypatch.setattr(spacy, "blank", no_blank)
    built = tokenization("en")
    assert isinstance(built, Tokenization) and built.vocab.lang == "en"
    assert built.tokenizer.vocab is built.vocab


def test_other_tokenizers_come_from_spacy_blank():
    blank, built = spacy.blank("zh"), tokenization("zh")
    text = "他患有急性肾衰竭和高血压。"
    assert _tokens(built.tokenizer, text) == _tokens(blank.tokenizer, text)
    assert built.vocab.lang == "zh"


def test_readers_take_a_pipeline_or_a_tokenization():
    blank, built = spacy.blank("en"), tokenization("en")
    path = ASSETS / "demo_dev.jsonl"
    for from_blank, from_built in zip(read_jsonl(path, nlp=blank), read_jsonl(path, nlp=built)):
        assert from_built.to_json() == from_blank.to_json()
    text = TRICKY[5]
    assert _tokens(lambda t: make_doc_with_boundaries(built, t, [10, 15]), text) == _tokens(
        lambda t: make_doc_with_boundaries(blank, t, [10, 15]), text
    )


@pytest.mark.parametrize("name", ["demo_train.jsonl", "demo_dev.jsonl", "demo_test.jsonl", "tricky.jsonl"])
def test_spacy_files_are_byte_identical(name, tmp_path, monkeypatch):
    if name == "tricky.jsonl":
        path = tmp_path / name
        path.write_text("".join(json.dumps({"text": text, "spans": []}) + "\n" for text in TRICKY), "utf8")
    else:
        path = ASSETS / name
    convert(path, tmp_path / "new.spacy")
    monkeypatch.setattr(formats, "tokenization", spacy.blank)  # the old path
    convert(path, tmp_path / "old.spacy")
    assert (tmp_path / "new.spacy").read_bytes() == (tmp_path / "old.spacy").read_bytes()
