"""Converters from CoNLL, PubTator and JSONL to DocBin, the convert and show
commands, and the demo assets."""
import json
from pathlib import Path

import pytest
import spacy
from hypothesis import given, settings, strategies as st
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_llm_ner.cli import app
from spacy_llm_ner.corpora import (
    ConvertStats,
    convert,
    detect_format,
    make_doc_with_boundaries,
    read_conll,
    read_jsonl,
    read_pubtator,
)

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
ASSETS = Path(__file__).parents[1] / "assets"
_NLP = spacy.blank("en")


@pytest.fixture(scope="module")
def nlp():
    return _NLP


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def _ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


# --------------------------------------------------------------------------
# CoNLL
# --------------------------------------------------------------------------

CONLL_2COL = """EU\tB-ORG
rejects\tO
German\tB-MISC
call\tO

Peter\tB-PER
Blackburn\tI-PER

BRUSSELS\tB-LOC
1996-08-22\tO
"""


def test_conll_two_columns_groups_n_sents(tmp_path, nlp):
    path = _write(tmp_path, "two.conll", CONLL_2COL)
    docs = list(read_conll(path, vocab=nlp.vocab, n_sents=2))
    assert len(docs) == 2
    first, second = docs
    assert [t.text for t in first] == ["EU", "rejects", "German", "call", "Peter", "Blackburn"]
    assert first.text == "EU rejects German call Peter Blackburn"
    assert _ents(first) == [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")]
    assert [s.text for s in first.sents] == ["EU rejects German call", "Peter Blackburn"]
    assert _ents(second) == [("BRUSSELS", "LOC")]
    assert [t.is_sent_start for t in second] == [True, False]
    # One sentence per doc
    assert len(list(read_conll(path, vocab=nlp.vocab, n_sents=1))) == 3


CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP I-LOC
1996-08-22 CD I-NP O
"""


def test_conll_four_columns_docstart(tmp_path, nlp):
    path = _write(tmp_path, "eng.train", CONLL_2003)
    assert detect_format(path) == "conll"
    # -DOCSTART- decides the documents, whatever n_sents says.
    docs = list(read_conll(path, vocab=nlp.vocab, n_sents=1))
    assert len(docs) == 2
    # IOB1: an I- tag after O starts an entity.
    assert _ents(docs[0]) == [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")]
    assert len(list(docs[0].sents)) == 2
    assert _ents(docs[1]) == [("BRUSSELS", "LOC")]


def test_conll_wnut_tab_only_separator(tmp_path, nlp):
    text = "Empire\tB-location\nState\tI-location\n\t\nFrom\tO\nGreen\tB-person\n \n\nok\tO\n"
    path = _write(tmp_path, "wnut.conll", text)
    docs = list(read_conll(path, vocab=nlp.vocab, n_sents=1))
    assert [d.text for d in docs] == ["Empire State", "From Green", "ok"]
    assert _ents(docs[0]) == [("Empire State", "location")]
    assert _ents(docs[1]) == [("Green", "person")]


@pytest.mark.parametrize(
    "tags",
    [
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG"],  # IOB2
        ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"],  # IOB1
        ["B-PER", "L-PER", "O", "U-LOC", "U-LOC", "O", "U-ORG"],  # BILUO
        ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "S-ORG"],  # BIOES
    ],
)
def test_conll_tag_schemes(tmp_path, nlp, tags):
    words = ["John", "Smith", "visited", "Paris", "Lyon", "and", "IBM"]
    path = _write(tmp_path, "x.iob", "".join(f"{w}\t{t}\n" for w, t in zip(words, tags)))
    stats = ConvertStats()
    (doc,) = read_conll(path, vocab=nlp.vocab, stats=stats)
    assert _ents(doc) == [("John Smith", "PER"), ("Paris", "LOC"), ("Lyon", "LOC"), ("IBM", "ORG")]
    assert not stats.repaired


def test_conll_invalid_biluo_repaired_and_counted(tmp_path, nlp):
    path = _write(tmp_path, "bad.biluo", "a\tB-X\nb\tO\nc\tU-Y\n\nd\tU-X\n")
    stats = ConvertStats()
    (doc,) = read_conll(path, vocab=nlp.vocab, stats=stats)
    assert _ents(doc) == [("a", "X"), ("c", "Y"), ("d", "X")]
    assert stats.repaired == {"invalid BILUO sequences repaired": 1}


@pytest.mark.parametrize(
    "text,match",
    [
        ("a\tO\nb\tO\tO\n", r"bad\.conll, line 2, columns: expected 2 columns"),
        ("a O\n\nb\n", r"bad\.conll, line 3, columns"),
        ("single\n", r"bad\.conll, line 1, columns"),
        ("a\tO\nb\tX-PER\n", r"bad\.conll, line 2, column 2 \(tag 'X-PER'\): unknown tag prefix"),
        ("a\tO\nb\tB\n", r"bad\.conll, line 2, column 2 \(tag 'B'\): unknown tag prefix"),
        ("a\tB-\n", r"bad\.conll, line 1, column 2 \(tag 'B-'\): tag has no label"),
    ],
)
def test_conll_errors_name_file_and_line(tmp_path, nlp, text, match):
    path = _write(tmp_path, "bad.conll", text)
    with pytest.raises(ValueError, match=match):
        list(read_conll(path, vocab=nlp.vocab))


# --------------------------------------------------------------------------
# PubTator
# --------------------------------------------------------------------------


def _pubtator(pmid, title, abstract, mentions, relations=()):
    text = f"{title} {abstract}"
    lines = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
    for start, end, label, kb_id, *extra in mentions:
        lines.append("\t".join([pmid, str(start), str(end), text[start:end], label, kb_id, *extra]))
    lines += ["\t".join([pmid, "CID", *r]) for r in relations]
    return "\n".join(lines) + "\n"


def test_pubtator_entity_inside_token(tmp_path, nlp):
    title = "5-fluorouracil-induced cardiotoxicity."
    abstract = "Ocular and auditory toxicity after cisplatin or puromycin aminonucleoside (PAN)-induced nephrosis."
    mentions = [
        (0, 14, "Chemical", "D005472"),
        (23, 37, "Disease", "D066126"),
        (39, 67, "Disease", "D014786|D006311", "Ocular toxicity|auditory toxicity"),
        (74, 83, "Chemical", "-1"),
        (87, 112, "Chemical", "D011692"),
        (114, 117, "Chemical", "D011692"),
        (127, 136, "Disease", "D009401"),
    ]
    text = _pubtator("123", title, abstract, mentions, relations=[("D005472", "D066126")])
    path = _write(tmp_path, "cdr.PubTator.txt", text)
    assert detect_format(path) == "pubtator"
    stats = ConvertStats()
    (doc,) = read_pubtator(path, nlp=nlp, stats=stats)
    assert doc.text == f"{title} {abstract}"
    assert [(e.text, e.label_, e.kb_id_) for e in doc.ents] == [
        ("5-fluorouracil", "Chemical", "D005472"),
        ("cardiotoxicity", "Disease", "D066126"),
        ("Ocular and auditory toxicity", "Disease", "D014786|D006311"),
        ("cisplatin", "Chemical", "-1"),
        ("puromycin aminonucleoside", "Chemical", "D011692"),
        ("PAN", "Chemical", "D011692"),
        ("nephrosis", "Disease", "D009401"),
    ]
    # The tokenizer makes "PAN)-induced" one token: it is cut after "PAN".
    pan = doc.ents[5]
    assert [t.text for t in doc[pan.start : pan.end + 2]] == ["PAN", ")", "-induced"]
    assert stats.repaired == {"tokens cut at mention boundaries": 1}
    assert stats.skipped == {"relation lines (CID)": 1}
    assert [s.text for s in doc.sents] == [title, abstract]


def test_pubtator_overlaps_counted(tmp_path, nlp):
    title = "Renal failure after lithium carbonate."
    mentions = [
        (0, 13, "Disease", "D051437"),
        (6, 13, "Disease", "D000001"),  # nested: dropped, the outer one is longer
        (20, 27, "Chemical", "D008094"),
        (20, 37, "Chemical", "D016651"),  # longer: kept, "lithium" dropped
    ]
    path = _write(tmp_path, "o.txt", _pubtator("9", title, "None.", mentions) + "\n")
    stats = ConvertStats()
    (doc,) = read_pubtator(path, nlp=nlp, stats=stats)
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Renal failure", "D051437"), ("lithium carbonate", "D016651")]
    assert stats.skipped == {"overlapping mentions (kept the longer)": 2}


def test_pubtator_several_documents(tmp_path, nlp):
    one = _pubtator("1", "Aspirin.", "Pain.", [(0, 7, "Chemical", "D001241")])
    two = _pubtator("2", "Fever.", "", [(0, 5, "Disease", "D005334")])
    # No blank line between the second and third document: still split.
    three = _pubtator("3", "Nothing.", "Here.", [])
    path = _write(tmp_path, "many.pubtator", one + "\n" + two + three)
    docs = list(read_pubtator(path, nlp=nlp))
    assert [d.text for d in docs] == ["Aspirin. Pain.", "Fever. ", "Nothing. Here."]
    assert [len(d.ents) for d in docs] == [1, 1, 0]


@pytest.mark.parametrize(
    "line,match",
    [
        ("1\t0\t7\tAspirn\tChemical\tD1", r"p\.txt, line 3, column 4 \(mention\): 'Aspirn' does not match"),
        ("1\t0\tx\tAspirin\tChemical\tD1", r"p\.txt, line 3, column 3 \(end\): expected an integer"),
        ("1\t0\t99\tAspirin\tChemical\tD1", r"p\.txt, line 3, columns 2-3 \(start, end\): span 0-99"),
        ("1\t0\t7\tAspirin", r"p\.txt, line 3, columns: expected at least 6"),
        ("2\t0\t7\tAspirin\tChemical\tD1", r"p\.txt, line 3, column 1 \(PMID\): expected 1"),
    ],
)
def test_pubtator_errors(tmp_path, nlp, line, match):
    path = _write(tmp_path, "p.txt", f"1|t|Aspirin.\n1|a|Pain.\n{line}\n")
    with pytest.raises(ValueError, match=match):
        list(read_pubtator(path, nlp=nlp))


# --------------------------------------------------------------------------
# JSONL
# --------------------------------------------------------------------------


def test_jsonl_both_schemas_and_rejected_answers(tmp_path, nlp):
    records = [
        {"text": "Aspirin causes ulcers.", "spans": [{"start": 0, "end": 7, "label": "Chemical", "kb_id": "C1"}],
         "tokens": [{"text": "ignored"}], "answer": "accept"},
        {"text": "Lithium toxicity.", "entities": [[0, 7, "Chemical"], [8, 16, "Disease", "D2"]]},
        {"text": "Rejected.", "spans": [], "answer": "reject"},
        {"text": "Ignored.", "spans": [], "answer": "ignore"},
        {"text": "No entities here."},
    ]
    path = _write(tmp_path, "a.jsonl", "".join(json.dumps(r) + "\n" for r in records) + "\n")
    stats = ConvertStats()
    docs = list(read_jsonl(path, nlp=nlp, stats=stats))
    assert [(e.text, e.label_, e.kb_id_) for d in docs for e in d.ents] == [
        ("Aspirin", "Chemical", "C1"),
        ("Lithium", "Chemical", ""),
        ("toxicity", "Disease", "D2"),
    ]
    assert len(docs) == 3
    assert stats.skipped == {"records with answer 'reject'": 1, "records with answer 'ignore'": 1}


def test_jsonl_retokenizes_misaligned_spans(tmp_path, nlp):
    text = "Na+/K+-ATPase inhibition by 5-FU/cisplatin."
    spans = [
        {"start": 0, "end": 2, "label": "Chemical"},
        {"start": 4, "end": 5, "label": "Chemical"},
        {"start": 28, "end": 32, "label": "Chemical"},
        {"start": 33, "end": 42, "label": "Chemical"},
    ]
    path = _write(tmp_path, "m.jsonl", json.dumps({"text": text, "spans": spans}) + "\n")
    stats = ConvertStats()
    (doc,) = read_jsonl(path, nlp=nlp, stats=stats)
    assert doc.text == text
    assert [e.text for e in doc.ents] == ["Na", "K", "5-FU", "cisplatin"]
    assert [t.text for t in doc[:6]] == ["Na", "+", "/", "K", "+", "-ATPase"]
    assert stats.repaired == {"tokens cut at mention boundaries": 1}


def test_jsonl_prodigy_accept_gives_kb_id(tmp_path, nlp):
    record = {"text": "Emerson won.", "spans": [{"start": 0, "end": 7, "text": "Emerson", "label": "PERSON"}],
              "accept": ["Q312545"], "answer": "accept"}
    path = _write(tmp_path, "nel.jsonl", json.dumps(record) + "\n")
    (doc,) = read_jsonl(path, nlp=nlp)
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Emerson", "Q312545")]


@pytest.mark.parametrize(
    "line,match",
    [
        ('{"text": "a b", "spans": [', r"e\.jsonl, line 2, JSON: invalid JSON"),
        ('["text"]', r"e\.jsonl, line 2, JSON: expected an object"),
        ('{"spans": []}', r"e\.jsonl, line 2, text: missing"),
        ('{"text": "a b", "spans": [{"start": 0, "end": 9, "label": "X"}]}', r"line 2, spans\[0\]: span 0-9"),
        ('{"text": "a b", "spans": [{"start": "0", "end": 1, "label": "X"}]}', r"line 2, spans\[0\]\.start: expected an integer"),
        ('{"text": "a b", "spans": [{"start": 0, "end": 1}]}', r"line 2, spans\[0\]\.label"),
        ('{"text": "a b", "spans": [{"start": 0, "end": 1, "label": "X", "kb_id": 3}]}', r"spans\[0\]\.kb_id"),
        ('{"text": "a b", "entities": [[0, 1]]}', r"line 2, entities\[0\]: expected"),
        ('{"text": "a b", "spans": [{"start": 0, "end": 1, "label": "X", "text": "b"}]}', r"spans\[0\]\.text"),
        ('{"text": "a b", "spans": [{"start": 1, "end": 3, "label": "X"}]}', r"line 2, spans\[0\]: mention ' b'"),
    ],
)
def test_jsonl_errors(tmp_path, nlp, line, match):
    path = _write(tmp_path, "e.jsonl", '{"text": "fine"}\n' + line + "\n")
    with pytest.raises(ValueError, match=match):
        list(read_jsonl(path, nlp=nlp))


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(alphabet="ab1 -.(\n/", min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=6),
)
def test_make_doc_with_boundaries_keeps_text(text, cuts):
    doc = make_doc_with_boundaries(_NLP, text, cuts)
    assert doc.text == text
    starts = {t.idx for t in doc} | {len(text)}
    ends = {t.idx + len(t.text) for t in doc} | {0}
    for cut in cuts:
        if 0 < cut < len(text) and not text[cut].isspace():
            assert cut in starts
        if 0 < cut < len(text) and not text[cut - 1].isspace():
            assert cut in ends


# --------------------------------------------------------------------------
# convert() and the command line
# --------------------------------------------------------------------------


def test_detect_format(tmp_path):
    assert detect_format(_write(tmp_path, "x.jsonl", "{}\n")) == "jsonl"
    assert detect_format(_write(tmp_path, "x.txt", "\n12|t|Title\n")) == "pubtator"
    assert detect_format(_write(tmp_path, "y.txt", "a\tO\n")) == "conll"
    assert detect_format(_write(tmp_path, "x.tsv", "a\tO\n")) == "conll"


def test_convert_cli_writes_docbin(tmp_path, nlp):
    src = _write(tmp_path, "in.conll", CONLL_2COL)
    out = tmp_path / "sub" / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(src), str(out), "--format", "conll", "--n-sents", "2"])
    assert result.exit_code == 0, result.output
    assert "2 docs" in result.output and "ORG" in result.output
    docs = list(DocBin().from_disk(out).get_docs(nlp.vocab))
    assert [_ents(d) for d in docs] == [
        [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")],
        [("BRUSSELS", "LOC")],
    ]
    assert len(list(docs[0].sents)) == 2


def test_convert_cli_reports_skipped_and_errors(tmp_path, nlp):
    title = "Renal failure after lithium carbonate."
    mentions = [(0, 13, "Disease", "D1"), (6, 13, "Disease", "D2"), (20, 37, "Chemical", "C1|C2")]
    src = _write(tmp_path, "in.PubTator.txt", _pubtator("9", title, "x", mentions, relations=[("C1", "D1")]))
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "1 overlapping mentions" in result.output and "1 relation lines" in result.output
    (doc,) = DocBin().from_disk(out).get_docs(nlp.vocab)
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Renal failure", "D1"), ("lithium carbonate", "C1|C2")]

    bad = _write(tmp_path, "bad.jsonl", '{"text": 1}\n')
    result = CliRunner().invoke(app, ["convert", str(bad), str(out)])
    assert result.exit_code == 1
    assert "bad.jsonl, line 1, text" in result.output


def test_show_cli(tmp_path):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "Chemical", "pattern": "aspirin"}])
    model = tmp_path / "model"
    nlp.to_disk(model)
    texts = _write(tmp_path, "texts.txt", "no entity\n\naspirin twice aspirin\nthird\nfourth\n")
    html = tmp_path / "out.html"
    args = ["show", str(model), "--text", "Take aspirin.", "--text-file", str(texts), "--n", "2", "--html", str(html)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Text 3" in result.output and "Text 4" not in result.output
    assert result.output.count("Chemical") == 3
    assert "<html" in html.read_text(encoding="utf8")


# --------------------------------------------------------------------------
# Demo assets
# --------------------------------------------------------------------------


def test_demo_assets_convert_and_link(tmp_path):
    kb = [json.loads(line) for line in (ASSETS / "demo_kb.jsonl").open(encoding="utf8")]
    ids = {e["id"]: e for e in kb}
    assert len(ids) == len(kb) >= 80
    assert {e["type"] for e in kb} == {"Chemical", "Disease"}
    seen = {}
    for split, n in (("train", 300), ("dev", 80), ("test", 80)):
        stats = convert(ASSETS / f"demo_{split}.jsonl", tmp_path / f"{split}.spacy")
        assert stats.docs == n and not stats.skipped
        assert set(stats.entities) == {"Chemical", "Disease"}
        assert stats.with_kb_id == stats.n_entities
        docs = DocBin().from_disk(tmp_path / f"{split}.spacy").get_docs(spacy.blank("en").vocab)
        seen[split] = {e.kb_id_ for d in docs for e in d.ents}
        for kb_id in seen[split]:
            assert kb_id in ids
    # Dev and test hold entities never seen in training.
    assert seen["dev"] - seen["train"] and seen["test"] - seen["train"]
    raw = (ASSETS / "demo_raw.txt").read_text(encoding="utf8").splitlines()
    assert len(raw) >= 40 and all(raw)


# --------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_bc5cdr_train(tmp_path):
    path = SHARED_DATA / "bc5cdr" / "train.PubTator.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    n_mentions = sum(
        1 for line in path.open(encoding="utf8") if len(line.rstrip("\n").split("\t")) >= 6
    )
    stats = convert(path, tmp_path / "train.spacy")
    assert stats.docs == 500
    dropped = stats.skipped.get("overlapping mentions (kept the longer)", 0)
    assert stats.n_entities + dropped == n_mentions
    assert set(stats.entities) == {"Chemical", "Disease"}
    assert stats.with_kb_id == stats.n_entities
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 500
    assert sum(len(d.ents) for d in docs) == stats.n_entities
