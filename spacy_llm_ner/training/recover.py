"""Recovery fine-tune of a pruned pipeline: a short training run on docs
that carry the unpruned teacher's tag distributions (`training/distill.py`),
so that the student learns back what pruning took, from gold and teacher
together (the component's distill_weight x KL plus its gold loss).

The docs are labelled by the teacher before it is pruned
(`distill.distill_corpus`); `distillation_loss` measures how far a pipeline
is from them.
"""
import random
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from .distill import soft_targets


def teacher_examples(nlp: Language, docs: Iterable[Doc]) -> List[Example]:
    """Training examples whose reference docs carry teacher distributions.

    nlp (Language): The student (its tokenizer makes the predicted docs).
    docs (Iterable[Doc]): Docs from `distill_corpus`.
    RETURNS (List[Example]): One example per doc.
    """
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def recover(
    nlp: Language,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int = 8,
    learn_rate: float = 5e-5,
    component: str = "transformer_ner",
    distill_weight: float = 1.0,
    seed: int = 0,
) -> List[float]:
    """Fine-tune a (pruned) pipeline in place on teacher-labelled examples:
    `steps` updates of `batch_size` examples, shuffled, with Adam at a
    constant `learn_rate` and the component's distill_weight set to
    `distill_weight` for the run (restored after).

    nlp (Language): The pruned pipeline.
    examples (Sequence[Example]): From `teacher_examples`.
    steps (int): Updates.
    batch_size (int): Examples per update.
    learn_rate (float): Adam's rate (the NER head gets its head_lr_scale).
    component (str): The transformer_ner whose loss distils.
    distill_weight (float): Weight of KL(teacher || student) beside the gold
        loss during the run.
    seed (int): Shuffling seed.
    RETURNS (List[float]): The component's loss at every step.
    """
    from thinc.api import Adam

    if steps < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps} and {batch_size}.")
    if steps and not examples:
        raise ValueError("[recover] No examples to fine-tune on.")
    ner = nlp.get_pipe(component)
    before = ner.cfg.get("distill_weight", 1.0)
    ner.cfg["distill_weight"] = float(distill_weight)
    optimizer = Adam(learn_rate, grad_clip=1.0)
    rng = random.Random(seed)
    order: List[int] = []
    losses: List[float] = []
    try:
        for _ in range(steps):
            if len(order) < batch_size:
                # Each pass over the data in a new order, without repeats
                # inside a batch.
                more = list(range(len(examples)))
                rng.shuffle(more)
                order += more
            batch, order = [examples[i] for i in order[:batch_size]], order[batch_size:]
            step = nlp.update(batch, sgd=optimizer, losses={})
            losses.append(float(step.get(component, 0.0)))
    finally:
        ner.cfg["distill_weight"] = before
    return losses


def distillation_loss(
    nlp: Language, examples: Sequence[Example], *, component: str = "transformer_ner", batch_size: int = 32
) -> float:
    """KL(teacher || pipeline) per token with a teacher target, at
    prediction time (no dropout).

    nlp (Language): The pipeline.
    examples (Sequence[Example]): Examples whose references carry teacher
        distributions.
    component (str): The transformer_ner.
    batch_size (int): Docs per batch.
    RETURNS (float): The mean KL over target tokens.
    """
    ner = nlp.get_pipe(component)
    before = nlp.pipe_names[: nlp.pipe_names.index(component)]
    total, n_tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = [eg for eg in examples[start : start + batch_size] if len(eg.reference)]
        docs = [nlp.make_doc(eg.reference.text) for eg in batch]
        for name in before:
            docs = list(nlp.get_pipe(name).pipe(docs))
        if not docs:
            continue
        targets = [soft_targets(Example(doc, eg.reference), ner.tagset.tags) for doc, eg in zip(docs, batch)]
        loss, _ = ner.decoder.get_soft_loss(ner.model.predict(docs), targets)
        total += float(loss)
        n_tokens += sum(int((~numpy.isnan(t).any(axis=1)).sum()) for t in targets if t is not None)
    return total / max(n_tokens, 1)


def prune_and_recover(
    nlp: Language,
    docs: Iterable[Doc],
    *,
    steps: int,
    teacher: Optional[Language] = None,
    heads_per_layer: Optional[int] = None,
    keep_fraction: Optional[float] = None,
    layers: Optional[int] = None,
    layer_strategy: str = "top",
    importance_docs: int = 512,
    batch_size: int = 8,
    learn_rate: float = 5e-5,
    distill_weight: float = 1.0,
    transformer: str = "transformer",
    component: str = "transformer_ner",
) -> Dict[str, Any]:
    """Label `docs` with the teacher (by default the pipeline itself, before
    it is pruned), prune the pipeline (`ml.rewrite.prune_pipeline`, head
    importance on the first `importance_docs`), then fine-tune it on the
    labelled docs (`recover`). What `python -m spacy_llm_ner prune` runs.

    nlp (Language): The trained pipeline, pruned in place.
    docs (Iterable[Doc]): Annotated training docs.
    steps (int): Recovery updates (0: none).
    teacher (Optional[Language]): The unpruned teacher, when `nlp` is already
        a pruned student (iterative pruning: 6 -> 4 -> 3 layers).
    heads_per_layer, keep_fraction, layers, layer_strategy: As in
        `prune_pipeline`.
    importance_docs (int): Docs for head importance.
    batch_size (int): Docs per importance and recovery batch.
    learn_rate (float): Recovery learning rate.
    distill_weight (float): Weight of the teacher's KL in recovery.
    transformer (str): The transformer component.
    component (str): The transformer_ner the teacher labels for.
    RETURNS (Dict[str, Any]): The prune record, with the recovery losses and
        the distillation loss before and after recovery.
    """
    from ..ml.rewrite import prune_pipeline
    from .distill import distill_corpus

    labelled = list(distill_corpus(teacher if teacher is not None else nlp, docs=docs, component=component))
    examples = teacher_examples(nlp, labelled)
    record = prune_pipeline(
        nlp, examples[:importance_docs], heads_per_layer=heads_per_layer, keep_fraction=keep_fraction,
        layers=layers, layer_strategy=layer_strategy, component=transformer, batch_size=batch_size,
    )
    held = examples[:importance_docs]
    record["kl_pruned"] = distillation_loss(nlp, held, component=component)
    losses = recover(
        nlp, examples, steps=steps, batch_size=batch_size, learn_rate=learn_rate, component=component,
        distill_weight=distill_weight,
    )
    record["kl_recovered"] = distillation_loss(nlp, held, component=component)
    record["recovery"] = {"steps": steps, "learn_rate": learn_rate, "first_loss": losses[:1], "last_loss": losses[-1:]}
    return record
