"""Training helpers: knowledge distillation."""
from .distill import SOFT_TAGS_KEY, distill_corpus, get_soft_tags, set_soft_tags, soft_targets, teacher_distributions

__all__ = ["SOFT_TAGS_KEY", "distill_corpus", "get_soft_tags", "set_soft_tags", "soft_targets", "teacher_distributions"]
