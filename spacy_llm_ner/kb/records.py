"""The entity record that loaders produce and the knowledge base stores.

One record is one entity (concept): an id, a preferred name, further names
(aliases), and optional description, type, alternative ids and priors.

Priors. ``prior`` is the entity's frequency P(entity) in [0, 1] (how often it
is mentioned at all). ``alias_priors`` maps some of the entity's names to
P(alias | entity), how the entity is usually written; the values are in [0, 1]
and sum to at most 1 per entity (the rest of the mass is spread evenly over
the names not listed). The knowledge base turns these into spaCy's
``Candidate.prior_prob`` = P(entity | alias) by Bayes' rule over the entities
that share the alias; where nothing is given every reading is equally likely.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional


class KBFormatError(ValueError):
    """A knowledge-base file or record is malformed. The message names the
    file, the line and the field where they are known."""

    def __init__(self, message: str, *, path: str = "", line: Optional[int] = None, field: str = "") -> None:
        where = []
        if path:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message


@dataclass
class EntityRecord:
    """One knowledge-base entity.

    id (str): Unique entity id (e.g. "D003920" after prefix stripping).
    name (str): Preferred name; always also an alias.
    aliases (List[str]): Further names (synonyms). Duplicates of the name or
        of each other are dropped by `all_names`.
    description (str): Free-text definition.
    type (str): Entity type / semantic group (e.g. "Disease").
    prior (Optional[float]): Entity frequency P(entity) in [0, 1].
    alias_priors (Dict[str, float]): P(alias | entity) for some of its names.
    alt_ids (List[str]): Alternative ids (same normalisation as `id`); a gold
        id may equal one of them.
    """

    id: str
    name: str
    aliases: List[str] = field(default_factory=list)
    description: str = ""
    type: str = ""
    prior: Optional[float] = None
    alias_priors: Dict[str, float] = field(default_factory=dict)
    alt_ids: List[str] = field(default_factory=list)

    def all_names(self) -> List[str]:
        """The name followed by the aliases, without duplicates or empties,
        in first-seen order.

        RETURNS (List[str]): The entity's distinct names.
        """
        seen: Dict[str, None] = {}
        for name in [self.name, *self.aliases]:
            if name and name not in seen:
                seen[name] = None
        return list(seen)

    def validate(self) -> None:
        """Check types and value ranges.

        RAISES (KBFormatError): With `field` set to the offending field.
        """
        for name in ("id", "name"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise KBFormatError(f"{name} must be a string (got {value!r})", field=name)
            if not value.strip():
                raise KBFormatError(f"missing or empty {name}", field=name)
        if not isinstance(self.aliases, list) or not all(isinstance(a, str) for a in self.aliases):
            raise KBFormatError(f"aliases must be a list of strings (got {self.aliases!r})", field="aliases")
        if not isinstance(self.alt_ids, list) or not all(isinstance(a, str) for a in self.alt_ids):
            raise KBFormatError(f"alt_ids must be a list of strings (got {self.alt_ids!r})", field="alt_ids")
        for name in ("description", "type"):
            if not isinstance(getattr(self, name), str):
                raise KBFormatError(f"{name} must be a string (got {getattr(self, name)!r})", field=name)
        if self.prior is not None:
            _check_probability(self.prior, "prior")
        if not isinstance(self.alias_priors, dict):
            raise KBFormatError(
                f"alias_priors must be an object {{alias: prior}} (got {self.alias_priors!r})", field="alias_priors"
            )
        names = set(self.all_names())
        total = 0.0
        for alias, p in self.alias_priors.items():
            if not isinstance(alias, str) or alias not in names:
                raise KBFormatError(f"alias_priors names {alias!r}, which is not a name of this entity", field="alias_priors")
            total += _check_probability(p, "alias_priors")
        # P(alias | entity) is a distribution over the entity's names.
        if total > 1.0 + 1e-6:
            raise KBFormatError(f"alias priors sum to {total:.4f} > 1", field="alias_priors")

    def alias_probabilities(self) -> Dict[str, float]:
        """P(alias | entity) for every name: the listed `alias_priors`, the
        remaining mass split evenly over the names not listed.

        RETURNS (Dict[str, float]): Name to probability.
        """
        names = self.all_names()
        given = {a: float(p) for a, p in self.alias_priors.items() if a in names}
        rest = [a for a in names if a not in given]
        left = max(0.0, 1.0 - sum(given.values()))
        share = left / len(rest) if rest else 0.0
        return {a: given.get(a, share) for a in names}


def _check_probability(value: object, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KBFormatError(f"{field_name} must be a number (got {value!r})", field=field_name)
    p = float(value)
    if math.isnan(p) or not 0.0 <= p <= 1.0:
        raise KBFormatError(f"{field_name} must be within [0, 1] (got {value!r})", field=field_name)
    return p
