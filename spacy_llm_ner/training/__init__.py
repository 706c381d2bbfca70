"""Training helpers: knowledge distillation, data augmentation, silver data."""
from .augment import (
    EntitySwapAugmenter,
    NoiseAugmenter,
    chain_augmenters,
    create_combined_augmenter,
    create_entity_swap_augmenter,
    create_noise_augmenter,
)
from .distill import SOFT_TAGS_KEY, distill_corpus, get_soft_tags, set_soft_tags, soft_targets, teacher_distributions
from .rehearsal import RehearsalCorpus, create_rehearsal_corpus, rehearsal_corpus
from .silver import SilverCorpus, create_silver_corpus, is_silver

__all__ = [
    "SOFT_TAGS_KEY",
    "EntitySwapAugmenter",
    "NoiseAugmenter",
    "RehearsalCorpus",
    "SilverCorpus",
    "chain_augmenters",
    "create_combined_augmenter",
    "create_entity_swap_augmenter",
    "create_noise_augmenter",
    "create_rehearsal_corpus",
    "create_silver_corpus",
    "distill_corpus",
    "get_soft_tags",
    "is_silver",
    "rehearsal_corpus",
    "set_soft_tags",
    "soft_targets",
    "teacher_distributions",
]
