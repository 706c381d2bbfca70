"""Command-line interface: ``spacy-llm-ner COMMAND`` or ``python -m spacy_llm_ner COMMAND``."""
import typer

app = typer.Typer(name="spacy-llm-ner", add_completion=False, no_args_is_help=True)


@app.callback()
def main() -> None:
    """spacy-llm-ner: convert data, inspect pipelines, build knowledge bases."""


# Commands register themselves on `app` when their module is imported. Every
# command module is light to import (no spaCy, torch or numpy at its top):
# each command imports what it needs when it runs, so that `--help`,
# `build-kb` and `convert` do not wait for the others' libraries
# (tests/test_startup.py checks which modules a command imports).
from . import align, annotate, convert, distill, kb, lora, onnx, prune, quantize, show, weak  # noqa: E402,F401

__all__ = ["app"]
