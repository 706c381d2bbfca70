"""Self-alignment of a name encoder on a knowledge base's own synonyms
(SapBERT's recipe, no annotated text needed): names of the same entity are
pulled together, names of other entities pushed apart, with hard negatives
in every batch: entities whose names look alike (the KB's character 3-gram
neighbours), which plain in-batch negatives would almost never contain.
"""
import random
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import torch

from ..kb.knowledge_base import LinkerKB
from ..kb.records import EntityRecord
from ..ml.name_encoder import NameEncoder, synonym_contrastive_loss


@dataclass
class AlignSettings:
    """How to align.

    steps (int): Optimizer steps.
    batch_entities (int): Entities per batch (two names each where they have two).
    neighbours (int): Hard-negative entities drawn from each seed's 3-gram neighbours.
    learning_rate (float): AdamW learning rate.
    temperature (float): Contrastive temperature.
    max_length (int): Word pieces per name.
    seed (int): Random seed (batches and dropout).
    """

    steps: int = 1000
    batch_entities: int = 64
    neighbours: int = 3
    learning_rate: float = 2e-5
    temperature: float = 0.05
    max_length: int = 25
    seed: int = 0


def synonym_groups(records: Sequence[EntityRecord]) -> List[List[str]]:
    """The distinct names of each entity (case-folded duplicates merged: the
    backbone may be uncased, and "Renal Failure"/"renal failure" teach nothing).

    records (Sequence[EntityRecord]): The KB records.
    RETURNS (List[List[str]]): Names per record, in record order.
    """
    groups = []
    for record in records:
        seen: Dict[str, str] = {}
        for name in record.all_names():
            seen.setdefault(" ".join(name.lower().split()), name)
        groups.append(list(seen.values()))
    return groups


def string_neighbours(kb: LinkerKB, records: Sequence[EntityRecord], *, k: int) -> List[List[int]]:
    """For each record, up to k other records whose names the KB's character
    3-gram stage finds for its preferred name: the confusable entities.

    kb (LinkerKB): A KB built from `records`.
    records (Sequence[EntityRecord]): The records, in KB order.
    k (int): Neighbours per record.
    RETURNS (List[List[int]]): Record indices per record.
    """
    row_of = {record.id: i for i, record in enumerate(records)}
    out: List[List[int]] = []
    names = [record.name for record in records]
    for start in range(0, len(names), 512):
        found = kb.candidates_batch(names[start : start + 512], stages=["ngram"], top_k=k + 1)
        for i, candidates in enumerate(found, start=start):
            rows = [row_of[c.entity_id] for c in candidates if c.entity_id in row_of]
            out.append([r for r in rows if r != i][:k])
    return out


def batches(
    groups: List[List[str]], neighbours: List[List[int]], *, settings: AlignSettings, rng: random.Random
) -> Iterator[List[tuple]]:
    """Endless batches of (name, entity index): seeds drawn among entities
    with two or more names, each followed by its string neighbours; two names
    drawn per entity where it has two.

    groups (List[List[str]]): Names per entity.
    neighbours (List[List[int]]): Hard negatives per entity.
    settings (AlignSettings): Batch sizes.
    rng (random.Random): Randomness.
    RETURNS (Iterator[List[tuple]]): Batches.
    """
    seeds = [i for i, names in enumerate(groups) if len(names) >= 2]
    if not seeds:
        raise ValueError("No entity has two distinct names: nothing to align (add synonyms or --aliases-from)")
    position = len(seeds)
    while True:
        chosen: Dict[int, None] = {}
        # At most one pass over the seeds per batch: a small KB fills less.
        for _ in range(len(seeds)):
            if len(chosen) >= settings.batch_entities:
                break
            if position == len(seeds):  # a new epoch over the seeds
                rng.shuffle(seeds)
                position = 0
            seed = seeds[position]
            position += 1
            for entity in [seed, *neighbours[seed][: settings.neighbours]]:
                chosen.setdefault(entity, None)
        yield [(name, e) for e in chosen for name in rng.sample(groups[e], min(2, len(groups[e])))]


def align_encoder(
    encoder: NameEncoder,
    records: Sequence[EntityRecord],
    *,
    settings: AlignSettings,
    on_step: Optional[Callable[[int, float], None]] = None,
) -> NameEncoder:
    """Train `encoder` on the records' synonyms, in place.

    encoder (NameEncoder): The encoder (e.g. the pipeline's backbone).
    records (Sequence[EntityRecord]): The KB records.
    settings (AlignSettings): Steps, batch, loss settings.
    on_step (Optional[Callable[[int, float], None]]): Called with (step, loss).
    RETURNS (NameEncoder): The encoder, aligned.
    """
    from spacy.vocab import Vocab

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    groups = synonym_groups(records)
    kb = LinkerKB.from_records(Vocab(), list(records))
    neighbours = string_neighbours(kb, records, k=settings.neighbours) if settings.neighbours else [[] for _ in records]
    encoder.max_length = settings.max_length
    optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=settings.learning_rate)
    encoder.model.train()
    stream = batches(groups, neighbours, settings=settings, rng=rng)
    for step in range(1, settings.steps + 1):
        batch = next(stream)
        entity = torch.tensor([e for _, e in batch])
        loss = synonym_contrastive_loss(encoder.forward([n for n, _ in batch]), entity, temperature=settings.temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, float(loss.detach()))
    encoder.model.eval()
    return encoder
