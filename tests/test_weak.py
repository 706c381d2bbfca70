"""Weak labelling with KB names (matching rules, CLI) and the silver corpus
reader that down-weights its output."""
from itertools import islice
from typing import List, Tuple

import pytest
import spacy
import srsly
from spacy.tokens import Doc, DocBin
from spacy.util import registry
from thinc.api import Config
from typer.testing import CliRunner

from conftest import SHARED_DATA
from spacy_llm_ner.cli import app
from spacy_llm_ner.kb import EntityRecord, read_ctd
from spacy_llm_ner.training.weak import WeakLabeler, name_words
from spacy_llm_ner.training.weak_io import read_raw_docs, records_from_docs
from spacy_llm_ner.training import SilverCorpus

NLP = spacy.blank("en")
RECORDS = [
    EntityRecord("D1", "Kidney Failure", ["renal failure", "RF"], type="Disease"),
    EntityRecord("D2", "Acute Kidney Injury", ["acute renal failure"], type="Disease"),
    EntityRecord("D3", "Acute Lymphoblastic Leukemia", ["ALL", "lymphoblastic leukemia"], type="Disease"),
    EntityRecord("C1", "Lithium", ["lithium carbonate", "Li"], type="Chemical"),
    EntityRecord("C2", "Carbonate", ["carbonate toxicity"], type="Chemical"),
    # "cold" names a disease and a chemical formulation: ambiguous.
    EntityRecord("D4", "Common Cold", ["cold"], type="Disease"),
    EntityRecord("C3", "Cold", [], type="Chemical"),
]


def found(doc: Doc) -> List[Tuple[str, str, str]]:
    return [(e.text, e.label_, e.kb_id_) for e in doc.ents]


def label(text: str, **options) -> Doc:
    return WeakLabeler(RECORDS, **options)(NLP.make_doc(text))


def test_case_insensitive_by_default_and_case_sensitive_option():
    text = "RENAL FAILURE and Renal Failure and renal failure."
    assert [e[2] for e in found(label(text))] == ["D1", "D1", "D1"]
    assert found(label(text, case_sensitive=True)) == [("renal failure", "Disease", "D1")]


def test_longest_match_then_leftmost():
    doc = label("Acute renal failure and lithium carbonate toxicity.")
    # "acute renal failure" beats "renal failure"; "lithium carbonate" (2
    # tokens) and "carbonate toxicity" (2 tokens) overlap: the leftmost wins.
    assert found(doc) == [("Acute renal failure", "Disease", "D2"), ("lithium carbonate", "Chemical", "C1")]


def test_matches_fall_on_token_boundaries_across_whitespace():
    doc = label("Renal failures, renal\nfailure, renal  failure-induced, prerenal failure.")
    assert [(e.text, e.start_char) for e in doc.ents] == [("renal\nfailure", 16), ("renal  failure", 31)]


def test_stoplist_and_min_length():
    text = "ALL patients had all of it; RF and Li were seen."
    labeler = WeakLabeler(RECORDS, min_length=3)
    doc = labeler(NLP.make_doc(text))
    # "all" is an English stop word; "RF" and "Li" are shorter than 3.
    assert found(doc) == []
    assert labeler.stats.stoplist_hits == {"all": 2}
    assert labeler.n_short == 2
    doc = label(text, min_length=2, stoplist=["li"])
    assert found(doc) == [("ALL", "Disease", "D3"), ("all", "Disease", "D3"), ("RF", "Disease", "D1")]
    # A stop word inside a longer match is no skipped hit.
    labeler = WeakLabeler(RECORDS, stoplist=["lymphoblastic leukemia"])
    doc = labeler(NLP.make_doc("Acute lymphoblastic leukemia, not lymphoblastic leukemia."))
    assert found(doc) == [("Acute lymphoblastic leukemia", "Disease", "D3")]
    assert labeler.stats.stoplist_hits == {"lymphoblastic leukemia": 1}


def test_ambiguous_names_prefer_the_preferred_name_and_are_counted():
    labeler = WeakLabeler(RECORDS)
    doc = labeler(NLP.make_doc("A cold and a cold."))
    # "cold" is D4's alias but C3's preferred name.
    assert found(doc) == [("cold", "Chemical", "C3"), ("cold", "Chemical", "C3")]
    assert doc.user_data["weak_ambiguous"] == 2 and labeler.stats.ambiguous == 2
    assert labeler.n_ambiguous_keys == 1
    assert found(label("A cold.", types=["Disease"])) == [("cold", "Disease", "D4")]


def test_outside_or_missing_spans_group_and_silver_flag():
    doc = label("Lithium caused renal failure.")
    assert [t.ent_iob_ for t in doc] == ["B", "O", "B", "I", "O"]
    assert [(s.text, s.label_, s.kb_id_) for s in doc.spans["weak"]] == found(doc)
    assert doc.user_data["silver"] is True and doc.user_data["weak_ambiguous"] == 0
    doc = label("Lithium caused renal failure.", missing_outside=True)
    assert [t.ent_iob_ for t in doc] == ["B", "", "B", "I", ""]


def test_types_filter_and_counts():
    labeler = WeakLabeler(RECORDS, types=["Chemical"])
    docs = list(labeler.pipe(NLP.make_doc(t) for t in ["Lithium and renal failure.", "Nothing here."]))
    assert found(docs[0]) == [("Lithium", "Chemical", "C1")]
    assert labeler.stats.docs == 2 and labeler.stats.docs_with_mentions == 1
    assert labeler.stats.mentions == {"Chemical": 1}
    assert WeakLabeler(RECORDS).labels == ["Chemical", "Disease"]


def test_partial_outside_marks_labels_and_keeps_stoplisted_hits_open():
    doc = label("Lithium caused renal failure in ALL patients.", partial_outside=True, types=["Disease"])
    assert found(doc) == [("renal failure", "Disease", "D1")]
    assert [t.ent_iob_ for t in doc][:2] == ["", ""]  # missing outside
    assert doc.user_data["weak_labels"] == ["Disease"]
    assert [s.text for s in doc.spans["weak_stoplisted"]] == ["ALL"]
    plain = label("Lithium caused renal failure.", missing_outside=True)
    assert "weak_labels" not in plain.user_data


def test_abbreviations_defined_after_a_match_label_every_occurrence():
    text = "Acute renal failure (ARF) and ALL (ALL) occur; ARF resolved, but not ARFs or arf. RF (RF) too."
    doc = label(text, types=["Disease"], abbreviations=True)
    # ARF takes the long form's entity; "ALL" is a stop-listed name and a
    # short form not defined after a match; "arf" and "ARFs" are other tokens.
    assert found(doc) == [
        ("Acute renal failure", "Disease", "D2"), ("ARF", "Disease", "D2"), ("ARF", "Disease", "D2"),
    ]
    assert [s.text for s in doc.spans["weak"]] == ["Acute renal failure", "ARF", "ARF"]
    plain = label(text, types=["Disease"])
    assert found(plain) == [("Acute renal failure", "Disease", "D2")]
    # A short form that is on the stop-list is labelled once it is defined.
    doc = label("Acute lymphoblastic leukemia (ALL) relapsed. ALL was treated.", abbreviations=True)
    assert [e.text for e in doc.ents] == ["Acute lymphoblastic leukemia", "ALL", "ALL"]
    assert not doc.spans.get("weak_stoplisted", [])


def test_short_form_needs_a_match_holding_the_whole_long_form():
    records = [EntityRecord("N", "nitrogen", [], type="Chemical"), EntityRecord("U", "urea nitrogen", [], type="Chemical")]
    text = "Blood urea nitrogen (BUN) rose; BUN fell."
    # "urea nitrogen" ends the long form "Blood urea nitrogen" but does not hold it.
    doc = WeakLabeler(records, abbreviations=True)(NLP.make_doc(text))
    assert [e.text for e in doc.ents] == ["urea nitrogen"]
    whole = WeakLabeler([*records, EntityRecord("B", "blood urea nitrogen", [], type="Chemical")], abbreviations=True)
    assert found(whole(NLP.make_doc(text))) == [
        ("Blood urea nitrogen", "Chemical", "B"), ("BUN", "Chemical", "B"), ("BUN", "Chemical", "B"),
    ]


def test_extra_record_with_a_kb_id_joins_that_entity():
    text = "renal insufficiency and kidney failure"
    extra = records_from_docs([_gold(text, [(0, 19, "Disease", "D1"), (24, 38, "Disease", "-1")])])
    assert [r.id for r in extra] == ["D1", "Disease:kidney failure"]  # "-1" is no id
    labeler = WeakLabeler(RECORDS, types=["Disease"], extra_records=extra)
    assert labeler.n_extra_entities == 1  # D1 joined the KB's D1
    plain = WeakLabeler(RECORDS, types=["Disease"])
    # "renal insufficiency" is a new name of D1; "kidney failure" is now
    # shared by D1 and the made-up entity.
    assert labeler.n_ambiguous_keys == plain.n_ambiguous_keys + 1
    doc = labeler(NLP.make_doc("Renal insufficiency."))
    assert found(doc) == [("Renal insufficiency", "Disease", "D1")] and doc.user_data["weak_ambiguous"] == 0


def test_open_words_stay_open_under_partial_labels():
    text = "Renal failure and lithium nephropathy were seen in patients."
    doc = label(text, types=["Disease"], partial_outside=True, open_words=["Nephropathy", "renal"])
    # "renal" is inside a match: a labelled token is never opened.
    assert [s.text for s in doc.spans["weak_open"]] == ["nephropathy"]
    assert [s.text for s in label(text, types=["Disease"], partial_outside=True).spans["weak_open"]] == []
    cased = WeakLabeler(RECORDS, types=["Disease"], partial_outside=True, case_sensitive=True, open_words=["Lithium"])
    doc = cased(NLP.make_doc("Lithium and lithium."))
    assert [s.text for s in doc.spans["weak_open"]] == ["Lithium"]


def test_name_words_are_enriched_in_the_names_not_in_the_text():
    labeler = WeakLabeler(RECORDS, types=["Disease"])
    docs = [NLP.make_doc("Acute kidney illness in patients with acute kidney disease was kidney related.")] * 3
    words = name_words(labeler, docs, NLP.tokenizer, min_ratio=1.0)
    # In the names: failure, leukemia... ; "kidney" and "acute" are common in
    # this text, "the"-like stop words never count.
    assert {"failure", "leukemia", "lymphoblastic", "injury"} <= set(words)
    assert "kidney" not in words and "acute" not in words
    assert not {"all"} & set(words)
    assert set(name_words(labeler, docs, NLP.tokenizer, min_ratio=100.0)) < set(words)


def _gold(text: str, ents: List[Tuple[int, int, str, str]]) -> Doc:
    doc = NLP.make_doc(text)
    doc.ents = [doc.char_span(s, e, label=label, kb_id=kb_id) for s, e, label, kb_id in ents]
    return doc


def test_records_from_docs_group_by_id_or_text():
    docs = [
        _gold("Cocaine and cocaine HCl.", [(0, 7, "Chemical", "D1"), (12, 23, "Chemical", "D1")]),
        _gold("Cocaine, then Haloperidol.", [(0, 7, "Chemical", ""), (14, 25, "Chemical", "")]),
    ]
    records = records_from_docs(docs)
    assert [(r.id, r.name, r.aliases, r.type) for r in records] == [
        ("D1", "Cocaine", ["cocaine HCl"], "Chemical"),
        ("Chemical:cocaine", "Cocaine", [], "Chemical"),
        ("Chemical:haloperidol", "Haloperidol", [], "Chemical"),
    ]


def test_extra_records_are_matched_but_never_denied():
    extra = records_from_docs([_gold("haloperidol", [(0, 11, "Chemical", "C9")])])
    labeler = WeakLabeler(RECORDS, types=["Disease", "Chemical"], partial_outside=True, extra_records=extra)
    doc = labeler(NLP.make_doc("Haloperidol caused renal failure."))
    assert found(doc) == [("Haloperidol", "Chemical", "C9"), ("renal failure", "Disease", "D1")]
    assert doc.user_data["weak_labels"] == ["Chemical", "Disease"]  # the KB has both types
    disease_kb = WeakLabeler(RECORDS, types=["Disease"], partial_outside=True, extra_records=extra)
    doc = disease_kb(NLP.make_doc("Haloperidol caused renal failure."))
    # --types filters extra records too; without them, Chemical is not denied.
    assert found(doc) == [("renal failure", "Disease", "D1")]
    only_disease = [r for r in RECORDS if r.type == "Disease"]
    labeler = WeakLabeler(only_disease, partial_outside=True, extra_records=extra)
    doc = labeler(NLP.make_doc("Haloperidol caused renal failure."))
    assert found(doc) == [("Haloperidol", "Chemical", "C9"), ("renal failure", "Disease", "D1")]
    assert doc.user_data["weak_labels"] == ["Disease"] and labeler.labels == ["Chemical", "Disease"]


def test_read_raw_docs_names_file_line_and_field(tmp_path):
    good = tmp_path / "raw.jsonl"
    good.write_text('{"text": "Renal failure."}\n\n{"text": "Lithium."}\n', encoding="utf8")
    assert [d.text for d in read_raw_docs(good, NLP)] == ["Renal failure.", "Lithium."]
    cases = [
        ('{"text": "a"}\n{"text": ', "line 2", "malformed JSON"),
        ('{"text": "a"}\n{"txt": "b"}\n', "line 2, field 'text'", "missing"),
        ('{"text": 3}\n', "line 1, field 'text'", "expected a string"),
    ]
    for content, where, what in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(content, encoding="utf8")
        with pytest.raises(ValueError, match=what) as err:
            list(read_raw_docs(bad, NLP))
        assert f"bad.jsonl, {where}" in str(err.value)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"fine\nna\xefve\n")
    with pytest.raises(ValueError, match=r"latin.txt, line 2: not valid UTF-8"):
        list(read_raw_docs(latin, NLP))


def _output(result) -> str:
    """The CLI's output with wasabi's line wrapping undone."""
    return " ".join(result.output.split())


def _write_kb(path):
    srsly.write_jsonl(path, [
        {"id": r.id, "name": r.name, "aliases": r.aliases, "type": r.type} for r in RECORDS
    ])


def _cli_files(tmp_path, raw_text: str, raw_name: str = "raw.txt"):
    """A KB of RECORDS, a raw-text file and an output path."""
    kb = tmp_path / "kb.jsonl"
    _write_kb(kb)
    raw = tmp_path / raw_name
    raw.write_text(raw_text, encoding="utf8")
    return kb, raw, tmp_path / "weak.spacy"


def test_cli_end_to_end(tmp_path):
    kb = tmp_path / "kb.jsonl"
    _write_kb(kb)
    raw = tmp_path / "raw.txt"
    raw.write_text("Acute renal failure after lithium.\n\nALL patients had a cold.\nThe RF fell.\n", encoding="utf8")
    stop = tmp_path / "stop.txt"
    stop.write_text("# custom\ncold\n", encoding="utf8")
    out = tmp_path / "silver" / "weak.spacy"
    args = ["weak-label", str(kb), str(raw), str(out), "--stoplist", str(stop)]
    args += ["--types", "Disease", "--types", "Chemical"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 docs, 1 with mentions" in _output(result) and "2 mentions, 0 ambiguous" in _output(result)
    assert "2 stop-list hits skipped: all (1), cold (1)" in _output(result)
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    assert [found(d) for d in docs] == [
        [("Acute renal failure", "Disease", "D2"), ("lithium", "Chemical", "C1")], [], []
    ]
    assert all(d.user_data["silver"] for d in docs) and len(docs[0].spans["weak"]) == 2
    # A .spacy input: its tokens are kept, its gold entities ignored.
    gold = NLP.make_doc("Renal failure again.")
    gold.ents = [gold.char_span(0, 5, label="GOLD")]
    DocBin(docs=[gold]).to_disk(tmp_path / "gold.spacy")
    args = ["weak-label", str(kb), str(tmp_path / "gold.spacy"), str(out), "--min-length", "2", "--missing-outside"]
    result = CliRunner().invoke(app, args + ["--case-sensitive"])
    assert result.exit_code == 0, result.output
    (doc,) = DocBin().from_disk(out).get_docs(NLP.vocab)
    assert found(doc) == [] and [t.ent_iob_ for t in doc] == ["", "", "", ""]


def test_cli_abbreviations_and_open_name_words(tmp_path):
    kb, raw, out = _cli_files(tmp_path, "Acute renal failure (ARF) after lithium. The ARF and leukemias resolved.\n")
    args = ["weak-label", str(kb), str(raw), str(out), "--types", "Disease", "--abbreviations", "--partial-outside"]
    result = CliRunner().invoke(app, args + ["--open-name-words", "1"])
    assert result.exit_code == 0, result.output
    assert "name words left open" in _output(result)
    (doc,) = DocBin().from_disk(out).get_docs(NLP.vocab)
    assert found(doc) == [("Acute renal failure", "Disease", "D2"), ("ARF", "Disease", "D2"), ("ARF", "Disease", "D2")]
    assert "failure" not in [s.text for s in doc.spans["weak_open"]]  # labelled
    bad = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(out), "--open-name-words", "1"])
    assert bad.exit_code == 1 and "--open-name-words needs --partial-outside" in _output(bad)


def test_cli_names_from_annotated_docs(tmp_path):
    kb, raw, out = _cli_files(tmp_path, "Haloperidol caused renal failure.\n")
    gold = tmp_path / "gold.spacy"
    DocBin(docs=[_gold("Haloperidol", [(0, 11, "Drug", "")])]).to_disk(gold)
    result = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(out), "--names-from", str(gold),
                                      "--partial-outside"])
    assert result.exit_code == 0, result.output
    assert "1 entities from" in _output(result) and ": 1 new" in _output(result)
    (doc,) = DocBin().from_disk(out).get_docs(NLP.vocab)
    assert found(doc) == [("Haloperidol", "Drug", "Drug:haloperidol"), ("renal failure", "Disease", "D1")]
    assert list(doc.user_data["weak_labels"]) == ["Chemical", "Disease"]  # msgpack gives a tuple
    (tmp_path / "bad.spacy").write_bytes(b"not a docbin")
    bad = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(out), "--names-from", str(tmp_path / "bad.spacy")])
    assert bad.exit_code == 1 and "bad.spacy: not a readable .spacy file" in _output(bad)


def test_cli_bad_input_names_file_line_and_field(tmp_path):
    kb, raw, out = _cli_files(tmp_path, '{"text": "Renal failure."}\n{"body": "x"}\n', "raw.jsonl")
    result = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(out)])
    assert result.exit_code == 1
    assert "raw.jsonl, line 2, field 'text'" in _output(result) and not out.exists()
    bad_kb = tmp_path / "bad.jsonl"
    bad_kb.write_text('{"id": "A", "name": "a"}\n{"id": "B"}\n', encoding="utf8")
    result = CliRunner().invoke(app, ["weak-label", str(bad_kb), str(raw), str(out)])
    assert result.exit_code == 1 and "bad.jsonl, line 2, field 'name'" in _output(result)
    result = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(out), "--types", "Gene"])
    assert result.exit_code == 1 and "no KB records of type Gene" in _output(result)


# -- silver corpus ------------------------------------------------------------------


def _corpus_dir(tmp_path, n_gold: int = 5, n_silver: int = 400):
    labeler = WeakLabeler(RECORDS)
    gold = []
    for i in range(n_gold):
        doc = NLP.make_doc(f"Gold doc {i} with renal failure.")
        doc.ents = [doc.char_span(doc.text.index("renal"), len(doc.text) - 1, label="Disease", kb_id="D1")]
        gold.append(doc)
    texts = [f"Silver doc {i} with {'a cold' if i % 4 == 0 else 'lithium'}." for i in range(n_silver)]
    silver = [labeler(NLP.make_doc(t)) for t in texts]
    DocBin(docs=gold, store_user_data=True).to_disk(tmp_path / "gold.spacy")
    DocBin(docs=silver, store_user_data=True).to_disk(tmp_path / "silver.spacy")
    return tmp_path


def _texts(corpus) -> List[str]:
    return [eg.reference.text for eg in corpus(NLP)]


def test_silver_corpus_down_weights_silver_per_read(tmp_path):
    path = _corpus_dir(tmp_path)
    full = _texts(SilverCorpus(path, silver_weight=1.0))
    assert len(full) == 405
    assert _texts(SilverCorpus(path, silver_weight=0.0)) == [f"Gold doc {i} with renal failure." for i in range(5)]
    corpus = SilverCorpus(path, silver_weight=0.3, seed=1)
    first, second = _texts(corpus), _texts(corpus)
    for texts in (first, second):
        n_silver = sum(t.startswith("Silver") for t in texts)
        # Binomial(400, 0.3): mean 120, sd 9.2.
        assert 85 <= n_silver <= 155
        assert sum(t.startswith("Gold") for t in texts) == 5
    assert first != second  # a new draw for every read (epoch)
    assert _texts(SilverCorpus(path, silver_weight=0.3, seed=1)) == first


def test_silver_corpus_drops_ambiguous_from_a_config(tmp_path):
    path = _corpus_dir(tmp_path)
    cfg = Config().from_str(
        f"""
        [corpus]
        @readers = "spacy_llm_ner.silver_corpus.v1"
        path = "{path}"
        silver_weight = 1.0
        drop_ambiguous = true
        """
    )
    corpus = registry.resolve(cfg)["corpus"]
    texts = _texts(corpus)
    # Every fourth silver doc mentions the ambiguous "cold".
    assert len(texts) == 5 + 300 and not any("cold" in t for t in texts)
    with pytest.raises(ValueError, match="silver_weight"):
        SilverCorpus(path, silver_weight=1.5)


def test_weak_label_output_trains_through_the_silver_reader(tmp_path):
    kb = tmp_path / "kb.jsonl"
    _write_kb(kb)
    raw = tmp_path / "raw.txt"
    raw.write_text("Lithium caused renal failure.\nA cold.\n", encoding="utf8")
    (tmp_path / "corpus").mkdir()
    result = CliRunner().invoke(app, ["weak-label", str(kb), str(raw), str(tmp_path / "corpus" / "silver.spacy")])
    assert result.exit_code == 0, result.output
    examples = list(SilverCorpus(tmp_path / "corpus", drop_ambiguous=True)(NLP))
    assert [found(eg.reference) for eg in examples] == [
        [("Lithium", "Chemical", "C1"), ("renal failure", "Disease", "D1")]
    ]


# -- the real vocabulary ------------------------------------------------------------------


@pytest.mark.slow
def test_ctd_slice():
    path = SHARED_DATA / "kb" / "CTD_diseases.tsv.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    records = list(islice(read_ctd(path, strip_prefix="MESH:"), 2000))  # names A... to Ch...
    labeler = WeakLabeler(records)
    doc = labeler(NLP.make_doc(
        "Patients with acute renal failure and severe abdominal pain developed metabolic acidosis "
        "and granulocytopenia; AD was not seen in ALL of them."
    ))
    assert found(doc) == [
        ("acute renal failure", "Disease", "D058186"),
        ("abdominal pain", "Disease", "D015746"),
        ("metabolic acidosis", "Disease", "D000138"),
        ("granulocytopenia", "Disease", "D000380"),
    ]
    assert labeler.n_short > 0  # "AD" and the like
