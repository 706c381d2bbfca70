"""Other spaCy languages end to end (#27): Chinese from the shipped configs,
the initialize-time warnings for a tokenizer or backbone that does not fit
the text, and the KB and abbreviation rules on Chinese names."""
import json
import warnings
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_config, load_model_from_config
from spacy.vocab import Vocab
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.api import fix_random_seed

from spacy_llm_ner.corpora import read_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["ner", "ner_cnn", "ner_el", "ner_kb"]

# (text, [(start_char, end_char, label)]): written for these tests.
ZH_DATA: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("苹果公司的CEO是蒂姆·库克。", [(0, 4, "ORG"), (9, 14, "PER")]),
    ("蒂姆·库克住在加州。", [(0, 5, "PER"), (7, 9, "LOC")]),
    ("华为总部位于深圳。", [(0, 2, "ORG"), (6, 8, "LOC")]),
    ("马云在杭州创办了阿里巴巴。", [(0, 2, "PER"), (3, 5, "LOC"), (8, 12, "ORG")]),
    ("库克访问了北京。", [(0, 2, "PER"), (5, 7, "LOC")]),
    ("阿里巴巴的总部在杭州。", [(0, 4, "ORG"), (8, 10, "LOC")]),
]
EN_SENTENCES = [
    "Aspirin (ASA) causes headache in U.S. mice, e.g. 3.5mg/kg!",
    "Dr. Smith's don't-stop \"quote\" at 10:30am -- co-operate.",
    "http://x.org/a?b=1 user@mail.com :) 5km N.Y.C. TNF-alpha-induced",
]
TOKENIZER_WARNING = "differently from the gold docs"
UNKNOWN_WARNING = "as its unknown token"


def _bert_folder(folder: Path, vocab: List[str]) -> str:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def zh_bert_dir(tmp_path_factory) -> str:
    """A random 2-layer BERT whose word pieces are the test texts' characters
    (BERT splits CJK text into one piece per character)."""
    chars = sorted({c.lower() for text, _ in ZH_DATA for c in text} | set("abcdefghijklmnopqrstuvwxyz"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return _bert_folder(tmp_path_factory.mktemp("zh_bert"), specials + chars + ["##" + c for c in chars])


def zh_gold(vocab: Vocab) -> List[Doc]:
    """The gold docs as a Chinese corpus has them: one token per character
    (what spaCy's zh tokenizer with segmenter "char" gives), entities set."""
    docs = []
    for text, ents in ZH_DATA:
        doc = Doc(vocab, words=list(text), spaces=[False] * len(text))
        doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
        docs.append(doc)
    return docs


def _build(name: str, model_dir: str, **overrides):
    config = load_config(ROOT / "configs" / f"{name}.cfg", interpolate=True, overrides={
        "vars.transformer_name": model_dir, "vars.window": 16, "vars.stride": 16, "vars.predict_stride": 16,
        **overrides,
    })
    return load_model_from_config(config, auto_fill=True, validate=True)


def _language_warnings(record) -> List[str]:
    return [str(w.message) for w in record if TOKENIZER_WARNING in str(w.message) or UNKNOWN_WARNING in str(w.message)]


def _initialize(nlp, docs: List[Doc]) -> List[str]:
    egs = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nlp.initialize(lambda: egs)
    return _language_warnings(record)


def _ents(doc: Doc) -> List[Tuple[int, int, str]]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


# -- the configs follow the language ------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_take_the_languages_tokenizer(name):
    nlp = _build(name, "unused", **{"nlp.lang": "zh", "paths.kb": "unused"})
    assert type(nlp.tokenizer).__name__ == "ChineseTokenizer" and nlp.tokenizer.segmenter == "char"
    for text, _ in ZH_DATA:
        assert [t.text for t in nlp.make_doc(text)] == list(text)


@pytest.mark.parametrize("name", CONFIGS)
def test_english_tokenizer_is_unchanged(name):
    nlp = _build(name, "unused", **{"paths.kb": "unused"})
    pinned = _build(name, "unused", **{"paths.kb": "unused", "nlp.tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}})
    assert nlp.lang == "en" and nlp.config["nlp"]["tokenizer"] == {"@tokenizers": "spacy.Tokenizer.v1"}
    for text in EN_SENTENCES:
        assert [t.text for t in nlp.make_doc(text)] == [t.text for t in pinned.make_doc(text)]
        assert [t.text for t in nlp.make_doc(text)] == [t.text for t in spacy.blank("en").make_doc(text)]


def test_project_passes_the_language_everywhere():
    import srsly

    project = srsly.read_yaml(ROOT / "project.yml")
    assert project["vars"]["lang"] == "en"
    scripts = [line for command in project["commands"] for line in command["script"]]
    trains = [line for line in scripts if "spacy train" in line]
    converts = [line for line in scripts if "spacy_llm_ner convert" in line or "weak-label" in line]
    assert trains and all("--nlp.lang ${vars.lang}" in line for line in trains)
    assert converts and all("--lang ${vars.lang}" in line for line in converts)


def test_project_convert_makes_the_configs_tokens(tmp_path):
    """`convert --lang zh` (the project's convert with --vars.lang zh) gives
    gold docs that the zh configs' tokenizer splits the same way."""
    import subprocess
    import sys

    lines = [{"text": text, "entities": [[s, e, label] for s, e, label in ents]} for text, ents in ZH_DATA]
    (tmp_path / "zh.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf8")
    command = [sys.executable, "-m", "spacy_llm_ner", "convert", str(tmp_path / "zh.jsonl"), str(tmp_path / "zh.spacy")]
    subprocess.run(command + ["--format", "jsonl", "--lang", "zh"], check=True, capture_output=True)
    nlp = _build("ner", "unused", **{"nlp.lang": "zh"})
    docs = list(DocBin().from_disk(tmp_path / "zh.spacy").get_docs(nlp.vocab))
    assert [_ents(doc) for doc in docs] == [gold for _, gold in ZH_DATA]
    assert all([t.text for t in doc] == [t.text for t in nlp.make_doc(doc.text)] for doc in docs)


# -- Chinese end to end through `spacy train` ----------------------------------


@pytest.fixture(scope="module")
def zh_trained(zh_bert_dir, tmp_path_factory):
    """configs/ner.cfg --nlp.lang zh trained by `spacy train` on the Chinese
    docs (train = dev, to overfit), with the warnings it raised."""
    from spacy.cli.train import train

    folder = tmp_path_factory.mktemp("zh_train")
    DocBin(docs=zh_gold(spacy.blank("zh").vocab)).to_disk(folder / "train.spacy")
    overrides = {
        "nlp.lang": "zh", "paths.train": str(folder / "train.spacy"), "paths.dev": str(folder / "train.spacy"),
        "vars.transformer_name": zh_bert_dir, "vars.window": 16, "vars.stride": 12, "vars.predict_stride": 16,
        "training.max_steps": 120, "training.eval_frequency": 40, "training.optimizer.learn_rate.warmup_steps": 5,
        "training.optimizer.learn_rate.initial_rate": 0.002, "training.logger.progress_bar": False,
    }
    fix_random_seed(0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train(ROOT / "configs" / "ner.cfg", folder / "out", overrides=overrides)
    return folder / "out", _language_warnings(record)


def test_chinese_trains_from_the_shipped_config(zh_trained):
    output, raised = zh_trained
    assert raised == []
    meta = json.loads((output / "model-best" / "meta.json").read_text(encoding="utf8"))
    assert meta["lang"] == "zh" and meta["performance"]["ents_f"] == 1.0
    nlp = spacy.load(output / "model-best")
    assert nlp.tokenizer.segmenter == "char"
    for doc, (text, gold) in zip(nlp.pipe(text for text, _ in ZH_DATA), ZH_DATA):
        assert _ents(doc) == gold


def test_chinese_pipeline_saves_and_reloads(zh_trained, tmp_path):
    nlp = spacy.load(zh_trained[0] / "model-best")
    before = [_ents(doc) for doc in nlp.pipe(text for text, _ in ZH_DATA)]
    nlp.to_disk(tmp_path / "saved")
    reloaded = spacy.load(tmp_path / "saved")
    assert [_ents(doc) for doc in reloaded.pipe(text for text, _ in ZH_DATA)] == before
    assert any(before)


# -- initialize-time warnings -------------------------------------------------


def test_english_tokenizer_on_chinese_gold_warns(zh_bert_dir):
    nlp = _build("ner", zh_bert_dir)  # the setup: lang stays "en"
    raised = _initialize(nlp, zh_gold(nlp.vocab))
    assert len(raised) == 1 and TOKENIZER_WARNING in raised[0]
    assert "6 of 6 sampled training docs (100%)" in raised[0]
    assert "'苹果公司'" in raised[0] and "苹果公司的CEO是蒂姆·库克" in raised[0]
    assert "--nlp.lang zh" in raised[0] and "[nlp.tokenizer]" in raised[0]


def test_backbone_without_the_characters_warns(tiny_bert_dir):
    nlp = _build("ner", tiny_bert_dir, **{"nlp.lang": "zh"})
    raised = _initialize(nlp, zh_gold(nlp.vocab))
    assert len(raised) == 1 and UNKNOWN_WARNING in raised[0]
    assert "'[UNK]'" in raised[0] and "'库'" in raised[0] and "(95%)" in raised[0] and "more than 5%" in raised[0]
    assert "bert-base-chinese" in raised[0] and "--vars.transformer_name" in raised[0]


def test_fitting_setups_do_not_warn(zh_bert_dir, tiny_bert_dir):
    nlp = _build("ner", zh_bert_dir, **{"nlp.lang": "zh"})
    assert _initialize(nlp, zh_gold(nlp.vocab)) == []
    nlp = _build("ner", tiny_bert_dir)
    docs = list(read_jsonl(ROOT / "assets" / "demo_train.jsonl", nlp=nlp))
    assert _initialize(nlp, docs) == []


def test_unknown_share_is_measured_on_word_pieces(zh_bert_dir):
    from transformers import AutoTokenizer

    from spacy_llm_ner.pipeline.language_checks import unknown_word_pieces

    tokenizer = AutoTokenizer.from_pretrained(zh_bert_dir)
    # 1 unknown character of 21 pieces (under 5%), then 2 of 22 (over).
    assert unknown_word_pieces(["苹果公司的CEO是蒂姆·库克。华为在深圳", "猫"], tokenizer=tokenizer, name="ner") is None
    message = unknown_word_pieces(["苹果公司的CEO是蒂姆·库克。华为在深圳", "猫狗"], tokenizer=tokenizer, name="ner")
    assert message is not None and "2 of 22 word pieces" in message and "'猫'" in message


# -- abbreviations on other scripts -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "北京大学 (北大) 的学生去了北大西洋。",  # uses would match inside 北大西洋
        "北方的北京大学 (北大)",  # the long form would run back to the last space
        "世界卫生组织 (世卫组织) 说",
        "タイ王国 (タイ) は",
    ],
)
def test_no_definitions_in_scripts_without_word_spaces(text):
    from spacy_llm_ner.kb import find_abbreviation_definitions

    assert find_abbreviation_definitions(text) == []


@pytest.mark.parametrize(
    "text,long",
    [
        ("Chronic kidney disease（CKD）is common.", "Chronic kidney disease"),
        ("患者患有 chronic kidney disease（CKD）。", "chronic kidney disease"),
        ("Chronic kidney disease (CKD) is common.", "Chronic kidney disease"),
    ],
)
def test_full_width_parentheses_define_latin_short_forms(text, long):
    from spacy_llm_ner.kb import find_abbreviation_definitions

    (found,) = find_abbreviation_definitions(text)
    assert (found.short, found.long) == ("CKD", long)
    assert text[found.start : found.start + 3] == "CKD" and text[found.long_start :].startswith(long)


def test_document_rule_on_chinese_docs():
    from spacy_llm_ner.pipeline.abbreviations import propagate_abbreviations

    nlp = spacy.blank("zh")
    doc = nlp.make_doc("北京大学 (北大) 的学生去了北大西洋。")
    org = ((0, 4, 0), 0.9)  # 北京大学
    assert propagate_abbreviations(doc, [org], remove_unsupported=True) == [org]
    # A Latin definition in full-width parentheses still reaches its uses.
    doc = nlp.make_doc("患者患有 chronic kidney disease（CKD）。CKD很常见。")
    assert [t.text for t in doc[25:28]] == [t.text for t in doc[30:33]] == ["C", "K", "D"]
    disease = ((4, 24, 1), 0.8)  # one token per character
    assert propagate_abbreviations(doc, [disease]) == [disease, ((25, 28, 1), 0.8), ((30, 33, 1), 0.8)]


# -- the KB on Chinese names --------------------------------------------------

ZH_KB = [
    {"id": "Q312", "name": "苹果公司", "aliases": ["苹果", "Apple Inc."], "type": "ORG"},
    {"id": "Q265852", "name": "蒂姆·库克", "aliases": ["库克"], "type": "PER"},
    {"id": "Q160120", "name": "华为技术有限公司", "aliases": ["华为"], "type": "ORG"},
    {"id": "Q15174", "name": "深圳市", "aliases": ["深圳"], "type": "LOC"},
    {"id": "Q1094", "name": "阿里巴巴集团", "aliases": ["阿里巴巴"], "type": "ORG"},
]


@pytest.fixture(scope="module")
def zh_kb_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zh_kb") / "kb.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ZH_KB), encoding="utf8")
    return path


def _load_kb(path: Path):
    from spacy.util import registry

    return registry.misc.get("spacy_llm_ner.load_kb.v1")(path=str(path))(spacy.blank("zh").vocab)


@pytest.mark.parametrize(
    "mention,entity_id,source",
    [
        ("苹果公司", "Q312", "exact"),
        ("深圳", "Q15174", "exact"),
        ("蒂姆•库克", "Q265852", "normalized"),  # another middle dot
        ("蒂姆库克", "Q265852", "normalized"),  # the name written without one
        ("Ａｐｐｌｅ Ｉｎｃ．", "Q312", "normalized"),  # full-width Latin
        ("华为技术公司", "Q160120", "ngram"),
        ("阿里巴巴公司", "Q1094", "ngram"),
    ],
)
def test_chinese_candidates(zh_kb_file, mention, entity_id, source):
    best = _load_kb(zh_kb_file).candidates(mention)[0]
    assert (best.entity_id, best.source) == (entity_id, source)
    assert best.score == 1.0 if source != "ngram" else 0.3 < best.score < 1.0


def test_chinese_kb_saves_and_links_spans(zh_kb_file, tmp_path):
    _load_kb(zh_kb_file).to_disk(tmp_path / "kb")
    kb = _load_kb(tmp_path / "kb")
    assert kb.entity("Q265852").name == "蒂姆·库克"
    doc = spacy.blank("zh").make_doc("蒂姆·库克在深圳访问了华为。")
    spans = [doc.char_span(0, 5), doc.char_span(6, 8), doc.char_span(11, 13)]
    found = [[c.entity_ for c in candidates][:1] for candidates in kb.get_candidates_batch(spans)]
    assert found == [["Q265852"], ["Q15174"], ["Q160120"]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("蒂姆库克苹果タイ王国ไทยAbc1 ·•-（）")), max_size=12).map("".join))
def test_normalised_cjk_names_have_no_inner_spaces(text):
    from spacy_llm_ner.kb.normalize import UNSPACED_SCRIPT, normalize

    out = normalize(text)
    assert normalize(out) == out
    inner = [i for i in range(1, len(out) - 1) if out[i] == " "]
    assert not any(UNSPACED_SCRIPT.match(out[i - 1]) and UNSPACED_SCRIPT.match(out[i + 1]) for i in inner)


@pytest.mark.parametrize("n_cut,warns", [(0, False), (1, False), (2, False), (3, True)])
def test_tokenizer_warning_needs_more_than_one_percent_of_entities_cut(n_cut, warns):
    """A stray gold entity inside a token (a hyphenated compound) is no
    language mismatch: the warning needs more than 1% of them cut."""
    from spacy_llm_ner.pipeline.language_checks import tokenization_mismatch

    nlp = spacy.blank("en")
    references = []
    for i in range(200):
        words, spaces = (["IL", "2R", "rose"], [False, True, False]) if i < n_cut else (["IL2R", "rose"], [True, False])
        doc = Doc(nlp.vocab, words=words, spaces=spaces)
        doc.ents = [doc.char_span(0, 2 if i < n_cut else 4, label="GENE")]
        references.append(doc)
    message = tokenization_mismatch(references, make_doc=nlp.make_doc, lang="en", name="ner")
    assert (message is not None) == warns
    if warns:
        assert f"splits {n_cut} of 200 sampled training docs" in message and f"{n_cut} of 200 gold entities" in message
        assert "entity 'IL', gold tokens IL, pipeline tokens IL2R" in message
