"""Weak labelling with the CTD vocabulary: marisa-trie (what `WeakLabeler`
uses) against spaCy's PhraseMatcher(attr="LOWER"), build and match time.

Needs: <data>/kb/CTD_diseases.tsv.gz and <data>/bc5cdr/train.PubTator.txt
(or --kb / --text). No model, no training; prints its figures (nothing is
written). A single command: its options follow the script name.

    python benchmarks/weak_label_matchers.py [--data DIR] [--kb FILE] [--text FILE] [--docs 500]

Both find every name on token boundaries, case-insensitively; the script
also reports how far their raw matches (before stop-list and overlap
resolution) agree. Single process, single thread.
"""
import sys
import time
from pathlib import Path
from typing import Optional

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, data_option, typer_app  # noqa: E402

app = typer_app(data_callback=False)


def pubtator_texts(path: Path, limit: int):
    out = []
    for line in path.open(encoding="utf8"):
        parts = line.rstrip("\n").split("|", 2)
        if len(parts) == 3 and parts[1] in ("t", "a"):
            out.append(parts[2])
            if len(out) >= limit:
                break
    return out


def rss_mb() -> float:
    """Current resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@app.command()
def main(
    data: Path = data_option(),
    kb: Optional[Path] = typer.Option(
        None, help="CTD disease vocabulary", show_default="<data>/kb/CTD_diseases.tsv.gz"
    ),
    text: Optional[Path] = typer.Option(
        None, help="PubTator file whose titles and abstracts are matched",
        show_default="<data>/bc5cdr/train.PubTator.txt",
    ),
    n_docs: int = typer.Option(500, "--docs", help="Titles and abstracts to match (each counts as one)"),
) -> None:
    """Build time, memory and match speed of the marisa-trie matcher and of
    spaCy's PhraseMatcher over the CTD names, and how far their matches
    agree."""
    import spacy
    from spacy.matcher import PhraseMatcher

    from spacy_llm_ner.kb import read_ctd
    from spacy_llm_ner.training.weak import WeakLabeler

    DATA.set_root(data)
    kb, text = kb or DATA.ctd, text or DATA.bc5cdr / "train.PubTator.txt"
    DATA.need(kb, text)
    nlp = spacy.blank("en")
    records = list(read_ctd(kb, strip_prefix="MESH:"))
    start = time.perf_counter()
    docs = list(nlp.tokenizer.pipe(pubtator_texts(text, n_docs)))
    tokenize = time.perf_counter() - start
    n_tokens = sum(len(d) for d in docs)
    print(f"{len(records)} entities, {sum(len(r.all_names()) for r in records)} names; "
          f"{len(docs)} docs, {n_tokens} tokens")

    base = rss_mb()
    start = time.perf_counter()
    labeler = WeakLabeler(records, min_length=1, stoplist=())
    trie_build = time.perf_counter() - start
    trie_mb = rss_mb() - base
    start = time.perf_counter()
    trie_found = [{(s, e) for s, e, _ in labeler._candidates(doc)} for doc in docs]
    trie_match = time.perf_counter() - start

    base = rss_mb()
    start = time.perf_counter()
    names = sorted({" ".join(n.split()) for r in records for n in r.all_names()})
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    matcher.add("NAME", list(nlp.tokenizer.pipe(names)))
    phrase_build = time.perf_counter() - start
    phrase_mb = rss_mb() - base
    start = time.perf_counter()
    phrase_found = [{(s, e) for _, s, e in matcher(doc)} for doc in docs]
    phrase_match = time.perf_counter() - start

    both = sum(len(a & b) for a, b in zip(trie_found, phrase_found))
    only_trie = sum(len(a - b) for a, b in zip(trie_found, phrase_found))
    only_phrase = sum(len(b - a) for a, b in zip(trie_found, phrase_found))
    for name, build, mb, match in (
        ("trie", trie_build, trie_mb, trie_match), ("PhraseMatcher", phrase_build, phrase_mb, phrase_match)
    ):
        speed = f"{n_tokens / match:,.0f} tokens/s"
        print(f"{name + ':':14} build {build:6.2f}s (+{mb:.0f} MB)  match {match:6.3f}s ({speed})")
    print(f"(tokenizing the docs: {tokenize:.3f}s, {n_tokens / tokenize:,.0f} tokens/s)")
    print(f"raw matches: {both} both, {only_trie} trie only, {only_phrase} PhraseMatcher only")
    shown = 0
    for doc, a, b in zip(docs, trie_found, phrase_found):
        for s, e in sorted(a ^ b):
            if shown < 8:
                print(f"  {'trie' if (s, e) in a else 'phrase'} only: {doc[s:e].text!r}")
                shown += 1


if __name__ == "__main__":
    app()
