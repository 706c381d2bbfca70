"""Priors from annotated mentions: P(entity | alias) from how often a text
links to each entity, with the dictionary's names as pseudo-counts."""
import pytest
import spacy

from spacy_llm_ner.kb.knowledge_base import LinkerKB
from spacy_llm_ner.kb.mentions import add_mention_aliases
from spacy_llm_ner.kb.records import EntityRecord

HEMO = EntityRecord(
    id="D006432", name="Hemochromatosis",
    aliases=["hemochromatosis", "Haemochromatosis", "Iron Overload Disease", "Bronze Diabetes", "Hemosiderosis"],
)
LYMPHOMA = EntityRecord(id="D008223", name="Lymphoma")


def _kb(records):
    return LinkerKB.from_records(spacy.blank("en").vocab, records)


def test_one_stray_annotation_does_not_outrank_twenty():
    mentions = [("hemochromatosis", "D006432")] * 20 + [("hemochromatosis", "D008223")]
    records, stats = add_mention_aliases([HEMO, LYMPHOMA], mentions)
    assert stats.counted == 21 and stats.known == 20 and stats.added == 1
    priors = {c.entity_: c.prior_prob for c in _kb(records).get_alias_candidates("hemochromatosis")}
    # c'(a, H) = 20 + 1/6 (one pseudo-count over H's six names), c'(a, L) = 1.
    assert priors["D006432"] == pytest.approx((20 + 1 / 6) / (21 + 1 / 6), abs=1e-4)
    assert priors["D008223"] == pytest.approx(1 / (21 + 1 / 6), abs=1e-4)


def test_counts_decide_between_two_dictionary_readings():
    a = EntityRecord(id="A", name="MS", aliases=["Multiple Sclerosis"])
    b = EntityRecord(id="B", name="MS", aliases=["Mitral Stenosis", "Mitral Valve Stenosis"])
    records, _ = add_mention_aliases([a, b], [("MS", "B")] * 3 + [("MS", "A")])
    priors = {c.entity_: c.prior_prob for c in _kb(records).get_alias_candidates("MS")}
    # c'(MS, B) = 3 + 1/3, c'(MS, A) = 1 + 1/2.
    assert priors["B"] == pytest.approx((3 + 1 / 3) / (4 + 5 / 6), abs=1e-4)


def test_without_mentions_the_dictionary_rule_is_kept():
    a = EntityRecord(id="A", name="MS", aliases=["Multiple Sclerosis"])
    b = EntityRecord(id="B", name="MS", aliases=["Mitral Stenosis", "Mitral Valve Stenosis"])
    before = {c.entity_: c.prior_prob for c in _kb([a, b]).get_alias_candidates("MS")}
    records, _ = add_mention_aliases([a, b], [("Mitral Stenosis", "B")])
    after = {c.entity_: c.prior_prob for c in _kb(records).get_alias_candidates("MS")}
    assert before["A"] == pytest.approx(0.6, abs=1e-4) and before["B"] == pytest.approx(0.4, abs=1e-4)
    # P(entity | "MS") depends on the counts of "MS" only: a mention of another
    # name of B leaves it as the dictionary had it.
    assert after == pytest.approx(before, abs=1e-4)


def test_pseudo_count_sets_the_weight_of_the_dictionary():
    mentions = [("hemochromatosis", "D008223")]
    # c'(a, H) = pseudo / 6 against c'(a, L) = 1.
    for pseudo, expected in ((1.0, 6 / 7), (6.0, 1 / 2)):
        records, _ = add_mention_aliases([HEMO, LYMPHOMA], mentions, pseudo_count=pseudo)
        priors = {c.entity_: c.prior_prob for c in _kb(records).get_alias_candidates("hemochromatosis")}
        assert priors["D008223"] == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="pseudo_count"):
        add_mention_aliases([HEMO], mentions, pseudo_count=0)


def test_records_are_valid_and_unmentioned_entities_keep_uniform_names():
    records, _ = add_mention_aliases([HEMO, LYMPHOMA], [("iron overload", "D006432")] * 2)
    for record in records:
        record.validate()
    assert records[1].alias_priors == {} and records[1].prior > 0
    probs = records[0].alias_probabilities()
    # c'(H) = 1 pseudo-count over six names + 2 mentions.
    assert probs["iron overload"] == pytest.approx(2 / 3) and probs["Hemochromatosis"] == pytest.approx(1 / 18)
    assert sum(r.prior for r in records) == pytest.approx(1.0)


def test_explicit_kb_priors_weight_the_dictionary_counts():
    a = EntityRecord(id="A", name="cold", prior=0.9)
    b = EntityRecord(id="B", name="cold", prior=0.1)
    records, _ = add_mention_aliases([a, b], [("cold", "B")])
    priors = {c.entity_: c.prior_prob for c in _kb(records).get_alias_candidates("cold")}
    # Dictionary pseudo-counts 1.8 (A) and 0.2 (B), plus one mention of B.
    assert priors["A"] == pytest.approx(1.8 / 3.0, abs=1e-4)


def test_build_kb_cli_writes_count_priors(tmp_path):
    from spacy.tokens import DocBin
    from typer.testing import CliRunner

    from spacy_llm_ner.cli import app

    kb_file = tmp_path / "kb.jsonl"
    kb_file.write_text(
        '{"id": "D006432", "name": "Hemochromatosis", "aliases": ["hemochromatosis", "Bronze Diabetes"]}\n'
        '{"id": "D008223", "name": "Lymphoma"}\n', encoding="utf8",
    )
    nlp = spacy.blank("en")
    docs = []
    for kb_id in ["D006432"] * 4 + ["D008223"]:
        doc = nlp("hemochromatosis was seen")
        doc.ents = [doc.char_span(0, 15, label="Disease", kb_id=kb_id)]
        docs.append(doc)
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    args = ["build-kb", str(kb_file), str(tmp_path / "out"), "--aliases-from", str(tmp_path / "train.spacy")]
    result = CliRunner().invoke(app, args + ["--pseudo-count", "2"])
    assert result.exit_code == 0, result.output
    assert "Priors from 5 mention counts over 2 entities" in " ".join(result.output.split())
    kb = LinkerKB.load(tmp_path / "out", spacy.blank("en").vocab)
    priors = {c.entity_: c.prior_prob for c in kb.get_alias_candidates("hemochromatosis")}
    # c'(a, H) = 4 + 2/3 (pseudo-count 2 over H's three names), c'(a, L) = 1.
    assert priors["D006432"] == pytest.approx((4 + 2 / 3) / (5 + 2 / 3), abs=1e-4)
    assert CliRunner().invoke(app, args + ["--pseudo-count", "0"]).exit_code != 0
