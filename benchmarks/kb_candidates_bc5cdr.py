"""Candidate recall of the LinkerKB cascade on BC5CDR Disease mentions with
the CTD disease vocabulary, measured as the reference rows were (string and
embedding baselines, not re-run here).

Gold mentions; composite ids (``id|id``) and unlinked ``-1`` are left out.
A candidate is right when its entity's primary or alternative id (prefix
"MESH:" stripped) equals the gold MeSH id; recall@10 counts distinct
entities (the cascade never returns one twice). Each abstract's title +
abstract text gives the abbreviation map (Schwartz & Hearst).

Rows: cascade stages added one at a time, with the CTD dictionary, with
CTD plus the train split's gold Disease mentions added as aliases (every
name of an entity equally likely, the rule before count priors), and with
the package's `add_mention_aliases` (priors from mention counts, one
pseudo-count per entity); and both again with 5% of the train mentions
linked to a random other gold id (annotation slips).

Needs: <data>/bc5cdr/{train,<split>}.PubTator.txt and
<data>/kb/CTD_diseases.tsv.gz (or --ctd FILE). No model, no training. A
single command: its options follow the script name.

    python benchmarks/kb_candidates_bc5cdr.py [--split test] [--data DIR] [--ctd FILE] [--out PATH]

Writes benchmarks/results/kb_candidates_bc5cdr.json and .md.
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RESULTS, data_option, typer_app  # noqa: E402

if TYPE_CHECKING:
    from spacy_llm_ner.kb import LinkerKB
    from spacy_llm_ner.kb.records import EntityRecord

REFERENCE = [  # reference rows, measured the same way (not re-run here)
    ("exact alias (spaCy's stock candidate generator)", "CTD", 0.028, 0.030),
    ("case-folded alias", "CTD", 0.605, 0.608),
    ("TF-IDF char 3-grams, cosine NN (scispaCy's method)", "CTD", 0.748, 0.848),
    ("all-MiniLM-L6-v2 embedding, cosine, untrained", "CTD", 0.779, 0.871),
    ("exact alias", "CTD + train mentions", 0.631, 0.639),
    ("TF-IDF char 3-grams", "CTD + train mentions", 0.872, 0.934),
    ("all-MiniLM-L6-v2 embedding", "CTD + train mentions", 0.872, 0.936),
]
SETTINGS: List[Tuple[str, Tuple[str, ...]]] = [
    ("exact only", ("exact",)),
    ("+ normalised", ("exact", "normalized")),
    ("+ char 3-gram TF-IDF", ("exact", "normalized", "ngram")),
    ("+ abbreviations (full cascade)", ("exact", "normalized", "ngram", "abbreviation")),
]


class Split(str, Enum):
    train = "train"
    dev = "dev"
    test = "test"


@dataclass
class Mention:
    pmid: str
    text: str
    gold: str


def read_pubtator(path: Path) -> Tuple[Dict[str, str], List[Mention]]:
    """Documents (title + " " + abstract) and their linkable Disease mentions.

    path (Path): A PubTator file.
    RETURNS (Tuple[Dict[str, str], List[Mention]]): pmid -> text, mentions.
    """
    texts: Dict[str, str] = {}
    titles: Dict[str, str] = {}
    mentions: List[Mention] = []
    with path.open(encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if "|t|" in line[:20]:
                pmid, _, title = line.split("|", 2)
                titles[pmid] = title
                continue
            if "|a|" in line[:20]:
                pmid, _, abstract = line.split("|", 2)
                texts[pmid] = titles[pmid] + " " + abstract
                continue
            cols = line.split("\t")
            if len(cols) < 6 or cols[1] == "CID" or cols[4] != "Disease":
                continue
            pmid, start, end, mention, _, gold = cols[:6]
            if gold == "-1" or "|" in gold:
                continue
            assert texts[pmid][int(start) : int(end)] == mention, (pmid, start, mention)
            mentions.append(Mention(pmid, mention, gold))
    return texts, mentions


def with_train_aliases(records: List[EntityRecord], train: List[Mention]) -> List[EntityRecord]:
    """Add gold train mentions as aliases of their entity (found by primary
    or alternative id), each name of an entity equally likely: the rule
    before priors came from mention counts (`add_mention_aliases`), kept as
    the baseline row.

    records (List[EntityRecord]): The CTD records.
    train (List[Mention]): Train mentions.
    RETURNS (List[EntityRecord]): New records.
    """
    owner: Dict[str, int] = {}
    for i, rec in enumerate(records):
        for alt in rec.alt_ids:
            owner.setdefault(alt, i)
    for i, rec in enumerate(records):
        owner[rec.id] = i  # a primary id wins over an alternative one
    extra: Dict[int, List[str]] = defaultdict(list)
    for m in train:
        if m.gold in owner:
            extra[owner[m.gold]].append(m.text)
    return [replace(r, aliases=r.aliases + extra.get(i, [])) if i in extra else r for i, r in enumerate(records)]


def with_wrong_links(train: List[Mention], *, share: float, seed: int = 0) -> List[Mention]:
    """A copy of the train mentions with `share` of them linked to the gold
    id of another mention drawn at random: annotation slips, as in a real
    corpus, to show what priors from counts are robust to.

    train (List[Mention]): Train mentions.
    share (float): Share of mentions to re-link.
    seed (int): Random seed.
    RETURNS (List[Mention]): The mentions, the right ones kept alongside.
    """
    import random

    rng = random.Random(seed)
    golds = [m.gold for m in train]
    return [replace(m, gold=rng.choice(golds)) if rng.random() < share else m for m in train]


def evaluate(kb: LinkerKB, texts: Dict[str, str], mentions: List[Mention], stages: Sequence[str]) -> Dict[str, float]:
    """recall@1 and recall@10 of one cascade setting.

    kb (LinkerKB): The KB.
    texts (Dict[str, str]): Document texts (for abbreviations).
    mentions (List[Mention]): Gold mentions.
    stages (Sequence[str]): Cascade stages.
    RETURNS (Dict[str, float]): recall@1, recall@10, mentions/s.
    """
    from spacy_llm_ner.kb import find_abbreviations

    abbreviations = {pmid: find_abbreviations(text) for pmid, text in texts.items()}
    # Which KB entities count as right for each gold id: primary or alternative id.
    right = {gold: set(kb.resolve_id(gold)) for gold in {m.gold for m in mentions}}
    start = time.perf_counter()
    results = []
    for i in range(0, len(mentions), 256):
        batch = mentions[i : i + 256]
        results.extend(
            kb.candidates_batch(
                [m.text for m in batch], abbreviations=[abbreviations[m.pmid] for m in batch], top_k=10, stages=stages
            )
        )
    seconds = time.perf_counter() - start
    at1 = sum(bool(c) and c[0].entity_id in right[m.gold] for m, c in zip(mentions, results))
    at10 = sum(any(x.entity_id in right[m.gold] for x in c[:10]) for m, c in zip(mentions, results))
    n = len(mentions)
    return {"recall@1": round(at1 / n, 4), "recall@10": round(at10 / n, 4), "mentions_per_s": round(n / seconds, 1)}


# The n-gram stage's retrieval, full cascade: (label, ngram_retrieval, 3-gram budget, rescore); the
# default (words + 3-grams at 100,000 / 1,000) is the "full cascade" row above.
RETRIEVALS = [
    ("full cascade, n-gram candidates through words + 3-grams at budget 10,000 / rescore 200", "words+grams", 10000, 200),
    ("full cascade, n-gram candidates through words alone", "words", None, None),
    ("full cascade, through 3-grams alone (budget 100,000 / rescore 1,000, as before)", "grams", 100000, 1000),
]


def retrieval_rows(kb: LinkerKB, texts: Dict[str, str], mentions: List[Mention], dictionary: str) -> List[Dict]:
    """The full cascade with the n-gram stage's other retrievals.

    kb (LinkerKB): The KB (its config is restored afterwards).
    texts (Dict[str, str]): Document texts. mentions (List[Mention]): Gold mentions.
    dictionary (str): The dictionary's label.
    RETURNS (List[Dict]): One row per retrieval.
    """
    saved = (kb.config.ngram_retrieval, kb.config.ngram_budget, kb.config.rescore)
    rows = []
    for name, retrieval, budget, rescore in RETRIEVALS:
        kb.config.ngram_retrieval = retrieval
        kb.config.ngram_budget, kb.config.rescore = budget or saved[1], rescore or saved[2]
        scores = evaluate(kb, texts, mentions, SETTINGS[-1][1])
        rows.append({"setting": name, "dictionary": dictionary, "stages": list(SETTINGS[-1][1]), **scores})
        print(json.dumps(rows[-1]), flush=True)
    kb.config.ngram_retrieval, kb.config.ngram_budget, kb.config.rescore = saved
    return rows


NOISE = 0.05
app = typer_app(data_callback=False)


@app.command()
def main(
    split: Split = typer.Option(Split.test, help="The BC5CDR split whose Disease mentions are looked up"),
    data: Path = data_option(),
    ctd: Optional[Path] = typer.Option(
        None, help="CTD disease vocabulary", show_default="<data>/kb/CTD_diseases.tsv.gz"
    ),
    out: Path = typer.Option(
        RESULTS / "kb_candidates_bc5cdr", help="Results path, without .json / .md",
        show_default="benchmarks/results/kb_candidates_bc5cdr",
    ),
) -> None:
    """Candidate recall@1 and @10 of the LinkerKB cascade, stage by stage, on
    BC5CDR Disease mentions with the CTD vocabulary (with and without the
    train mentions as aliases)."""
    import spacy

    from spacy_llm_ner.kb import LinkerKB, add_mention_aliases, read_ctd

    DATA.set_root(data)
    split_name = split.value
    DATA.need(DATA.bc5cdr / f"{split_name}.PubTator.txt", DATA.bc5cdr / "train.PubTator.txt", ctd or DATA.ctd)
    vocab = spacy.blank("en").vocab
    texts, mentions = read_pubtator(DATA.bc5cdr / f"{split_name}.PubTator.txt")
    _, train = read_pubtator(DATA.bc5cdr / "train.PubTator.txt")
    records = list(read_ctd(ctd or DATA.ctd, strip_prefix="MESH:"))
    rows = []
    counted, _ = add_mention_aliases(records, [(m.text, m.gold) for m in train])
    noisy = with_wrong_links(train, share=NOISE)
    dictionaries = [
        ("CTD", records),
        ("CTD + train mentions", with_train_aliases(records, train)),
        ("CTD + train mentions, count priors", counted),
        (f"CTD + train mentions, {NOISE:.0%} wrong links", with_train_aliases(records, noisy)),
        (f"CTD + train mentions, {NOISE:.0%} wrong links, count priors",
         add_mention_aliases(records, [(m.text, m.gold) for m in noisy])[0]),
    ]
    for dictionary, recs in dictionaries:
        start = time.perf_counter()
        kb = LinkerKB.from_records(vocab, recs)
        build_s = time.perf_counter() - start
        for name, stages in SETTINGS:
            scores = evaluate(kb, texts, mentions, stages)
            rows.append({"setting": name, "dictionary": dictionary, "stages": list(stages), **scores, "kb_build_s": round(build_s, 2)})
            print(json.dumps(rows[-1]), flush=True)
        if dictionary in ("CTD", "CTD + train mentions"):
            rows.extend(retrieval_rows(kb, texts, mentions, dictionary))
    report = {
        "split": split_name,
        "n_mentions": len(mentions),
        "n_entities": len(records),
        "rows": rows,
        "reference": [dict(zip(("method", "dictionary", "acc@1", "recall@10"), r)) for r in REFERENCE],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    lines = [
        f"# Candidate recall, BC5CDR {split_name} Disease mentions, CTD vocabulary",
        "",
        f"{len(mentions):,} gold mentions (composite `id|id` and `-1` left out); {len(records):,} CTD entities.",
        "Right when the entity's primary or alternative id (\"MESH:\" stripped) equals the gold id;",
        "recall@10 counts distinct entities. Produced by `benchmarks/kb_candidates_bc5cdr.py`.",
        "",
        "## LinkerKB cascade (this run)",
        "",
        "| setting | dictionary | recall@1 | recall@10 | mentions/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['dictionary']} | {r['recall@1']:.3f} | {r['recall@10']:.3f} | {r['mentions_per_s']:,.0f} |")
    lines += ["", "## Reference (measured the same way elsewhere, not re-run)", "", "| method | dictionary | acc@1 | recall@10 |", "|---|---|---|---|"]
    lines += [f"| {m} | {d} | {a:.3f} | {b:.3f} |" for m, d, a, b in REFERENCE]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf8")


if __name__ == "__main__":
    app()
