"""How `transformer_entity_linker` learns and is evaluated: the update from
gold links (`ml/linker_batch.linker_loss`), the optimizer step with the
head's learning-rate scale, and the scores on gold mentions.

Kept apart from the component so that `entity_linker.py` reads as the
pipe's prediction path; the component class mixes this in.
"""
from typing import Any, Dict, Iterable, List, Optional, Tuple

from spacy.tokens import Span
from spacy.training import Example, validate_examples
from thinc.api import Optimizer

from ..ml.linker import LinkerScores
from ..ml.linker_batch import linker_loss, training_candidates
from ..ml.optim import finish_update_with_head_scale
from .link_annotations import COMPONENT, Link
from .link_scoring import score_gold_mentions


class LinkerTraining:
    """update / finish_update / score of the linker (which provides cfg,
    model, name, scorer, kb, _candidates, _batch, _link, _links_label,
    _require_kb and clear_cache)."""

    def _gold_mentions(self, eg: Example) -> List[Tuple[Span, str]]:
        """Gold entities with a kb_id, aligned to the predicted tokens."""
        out = []
        for ent in eg.reference.ents:
            if not ent.kb_id_ or not self._links_label(ent.label_):
                continue
            aligned = eg.get_aligned_spans_y2x([ent], allow_overlap=True)
            if aligned:
                out.append((aligned[0], ent.kb_id_))
        return out

    def _target(self, gold: str) -> Optional[str]:
        if gold == self.cfg["nil_id"]:
            return None
        found = self._require_kb().resolve_id(gold)
        return found[0] if found else None

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from the gold links (ent.kb_id_ of the reference docs): a
        softmax over each mention's candidates plus NIL (the gold entity is
        added when the cascade missed it), and, weighted by negatives_weight,
        a softmax of each in-KB gold mention over all entities of the batch.

        examples (Iterable[Example]): The batch.
        drop (float): Unused (the model's own dropout applies).
        sgd (Optional[Optimizer]): Optimizer to step with.
        losses (Optional[Dict[str, float]]): Running losses, updated.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "TransformerEntityLinker.update")
        self._require_kb()
        self.clear_cache()
        gold = [self._gold_mentions(eg) for eg in examples]
        flat = [(span, self._target(kb_id)) for mentions in gold for span, kb_id in mentions]
        if not flat:
            return losses
        gold_ids = [t for _, t in flat]
        candidates, targets = training_candidates(self._candidates([span for span, _ in flat]), gold_ids)
        spans = [[(s.start, s.end) for s, _ in mentions] for mentions in gold]
        in_kb = [t for t in gold_ids if t is not None]
        batch = self._batch([eg.predicted for eg in examples], spans, candidates, in_kb, use_cache=False)
        scores, backprop = self.model.begin_update(batch.X)
        loss, d_scores = linker_loss(
            scores, batch, targets, gold_ids, negatives_weight=self.cfg["negatives_weight"], ops=self.model.ops
        )
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: LinkerScores):
        raise NotImplementedError(f"[{COMPONENT}] The loss is computed inside update().")

    def rehearse(self, examples, *, sgd=None, losses=None, **config):
        raise NotImplementedError

    def add_label(self, label: str) -> int:
        raise NotImplementedError

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the optimizer, scaling the learning rate of the scorer's own
        parameters by head_lr_scale (the tok2vec keeps the optimizer's rate),
        and drop the cached entity encodings (the backbone has changed).

        sgd (Optimizer): The optimizer.
        """
        finish_update_with_head_scale(self.model, sgd, head_lr_scale=self.cfg.get("head_lr_scale", 1.0))
        self.clear_cache()

    # -- evaluation ---------------------------------------------------------------

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """nel_micro_p/r/f (spaCy's Scorer.score_links, on predicted entities
        that match a gold entity) plus, on the gold mentions themselves:
        nel_candidate_recall (gold entity among the top_k candidates) and
        nel_inkb_accuracy (the linker's output on the gold mention equals
        the gold entity), both over gold mentions whose entity is in the KB.

        examples (Iterable[Example]): Examples processed by the pipeline.
        RETURNS (Dict[str, Any]): The scores.
        """
        examples = list(examples)
        validate_examples(examples, "TransformerEntityLinker.score")
        scores: Dict[str, Any] = {}
        if self.scorer is not None:
            scores.update(self.scorer(examples, nil_id=self.cfg["nil_id"], labels=self.cfg["labels"], **kwargs))
        if self.kb is None:
            return scores
        docs, mentions, targets = [], [], []
        for eg in examples:
            pairs = [(s, self._target(k)) for s, k in self._gold_mentions(eg)]
            pairs = [(s, t) for s, t in pairs if t is not None]
            docs.append(eg.predicted)
            mentions.append([s for s, _ in pairs])
            targets.extend(t for _, t in pairs)
        links: List[Link] = []
        for i in range(0, len(docs), 32):  # bounded similarity matrices
            for doc_links in self._link(docs[i : i + 32], mentions[i : i + 32]):
                links.extend(doc_links)
        scores.update(score_gold_mentions(links, targets))
        return scores
