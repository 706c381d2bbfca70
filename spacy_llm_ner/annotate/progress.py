"""The progress bar of `annotate`: docs done, words/s and the ETA (tqdm,
which spaCy already depends on), updated as each part is finished."""
import time
from typing import Any, List

from .inputs import Part
from .output import PartStats


class Progress:
    """A tqdm bar over the docs of the parts still to do.

    parts (List[Part]): The parts this run will do.
    """

    def __init__(self, parts: List[Part]) -> None:
        from tqdm import tqdm

        self.bar: Any = tqdm(total=sum(p.stop - p.start for p in parts), unit="doc", dynamic_ncols=True)
        self.start = time.perf_counter()
        self.words = 0

    def __call__(self, stats: PartStats) -> None:
        """Count a finished part.

        stats (PartStats): Its figures.
        """
        self.words += stats.words
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix({"words/s": f"{self.words / elapsed:,.0f}", "errors": stats.errors}, refresh=False)
        self.bar.update(stats.docs + stats.errors)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
