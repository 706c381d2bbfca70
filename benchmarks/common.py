"""What the benchmark scripts share: where the repository, the results and
the scratch folder are, where the data is read from, and the `--data`
option that points them at another data folder.

The data folder holds the public corpora (see benchmarks/README.md):

    bc5cdr/{train,dev,test}.PubTator.txt   BioCreative V CDR, PubTator format
    kb/CTD_diseases.tsv.gz                 CTD's MEDIC disease vocabulary
    wnut17/{train,dev,test}.conll          WNUT-17, token TAB IOB2 tag

It is DEFAULT_DATA (the folder `shared/data` beside the repository, i.e.
`../shared/data` from its root) unless the environment variable
SPACY_LLM_NER_DATA or a script's `--data DIR` says otherwise. `--data` is an
option of the script itself, so it goes before the command name:

    python benchmarks/bc5cdr_ner.py --data DIR all --steps 500

Importing this module reads the environment and nothing else.
"""
import os
from pathlib import Path
from typing import Any, Optional

import typer

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
WORK_ROOT = BENCHMARKS / "work"
BC5CDR_WORK = WORK_ROOT / "bc5cdr"

DATA_ENV = "SPACY_LLM_NER_DATA"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATA_HELP = (
    "Data folder holding bc5cdr/, kb/CTD_diseases.tsv.gz and wnut17/; the default is relative to the "
    f"repository root (also read from ${DATA_ENV}; see benchmarks/README.md)"
)


class DataFolder:
    """The data folder and the files the benchmarks read from it. There is
    one (`DATA`), shared by every script a process imports: a script's
    `--data` sets it before its command runs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def set_root(self, root: Path) -> None:
        """Read the data from `root` from now on, in this process and in the
        processes it starts (through SPACY_LLM_NER_DATA).

        root (Path): The data folder (made absolute: the scripts run
            subprocesses from the repository root).
        """
        self.root = Path(root).expanduser().resolve()
        os.environ[DATA_ENV] = str(self.root)

    def need(self, *paths: Path) -> None:
        """Stop, naming the data folder and how to change it, when a file
        the command reads is missing."""
        missing = [str(path) for path in paths if not Path(path).exists()]
        if missing:
            raise SystemExit(
                f"Missing {', '.join(missing)} (data folder: {self.root}). Pass --data DIR (an option of the "
                f"script, before any command name) or set {DATA_ENV}; see benchmarks/README.md for the layout."
            )

    @property
    def bc5cdr(self) -> Path:
        """The BC5CDR folder: {train,dev,test}.PubTator.txt."""
        return self.root / "bc5cdr"

    @property
    def ctd(self) -> Path:
        """CTD's disease vocabulary (TSV, gzipped)."""
        return self.root / "kb" / "CTD_diseases.tsv.gz"

    @property
    def wnut17(self) -> Path:
        """The WNUT-17 folder: {train,dev,test}.conll."""
        return self.root / "wnut17"


DATA = DataFolder(Path(os.environ.get(DATA_ENV) or DEFAULT_DATA))


def relative(path: Path) -> str:
    """A path under the repository as --help shows it: relative to the
    repository root."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def data_option() -> Any:
    """The `--data` option, for a script's callback or, in a script with a
    single command, that command's signature."""
    return typer.Option(
        DEFAULT_DATA, "--data", envvar=DATA_ENV, show_envvar=False, file_okay=False, help=DATA_HELP,
        show_default="../shared/data",
    )


def typer_app(doc: Optional[str] = None, *, data_callback: bool = True) -> typer.Typer:
    """A script's typer app. With `data_callback`, its callback takes
    `--data` (before the command name) and sets DATA from it; a script with a
    single command (run without a command name) puts `data_option()` in that
    command's signature instead.

    doc (Optional[str]): The script's docstring; its first paragraph is the
        app's help.
    data_callback (bool): Whether the app takes `--data` in its callback.
    RETURNS (typer.Typer): The app, for @app.command().
    """
    help_text = doc.strip().split("\n\n")[0] if doc else None
    # Plain click help: docstrings are rewrapped rather than printed line by line.
    app = typer.Typer(add_completion=False, help=help_text, rich_markup_mode=None)
    if data_callback:

        @app.callback()
        def set_data(data: Path = data_option()) -> None:
            DATA.set_root(data)

    return app
