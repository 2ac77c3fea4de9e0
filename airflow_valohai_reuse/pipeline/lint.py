"""valohai-yaml's linter as the last check of a file: what it calls an error, Valohai refuses too.

Parsing with schema validation accepts files the linter rejects (an override of an input the step
lacks, a pipeline parameter aimed at a parameter the step lacks, duplicate node names, an invalid
``stop-condition``…). Valohai refuses such files, so the DAG builder does too, with the linter's words
(which name the place) and the likely fix. The package's own checks run first: their messages are
more precise where both apply. Linting a 100-node pipeline costs about 2 ms.
"""

from __future__ import annotations

from pathlib import Path

from valohai_yaml.objs import Config

from airflow_valohai_reuse.errors import PipelineFileError

#: words of a lint error → the likely fix
_FIXES = (
    (
        "does not exist in step",
        "an override or a pipeline parameter can only name what the step declares: "
        "declare it in the step, or correct the name",
    ),
    ("nodes with the same name", "node names must be unique within a pipeline"),
    ("is not a valid expression", "write the condition as an expression such as `metadata.loss < 0.1`"),
    ('missing "environment"', "name the environment the preset belongs to"),
)


def _fix(message: str) -> str:
    for words, fix in _FIXES:
        if words in message:
            return f" ({fix})"
    return ""


def lint(config: Config, path: Path) -> tuple[PipelineFileError | None, list[str]]:
    """The first error valohai-yaml's linter finds in ``config`` as a PipelineFileError, and its
    warnings in words for the DAG's documentation."""
    messages = config.lint().messages
    errors = [m["message"] for m in messages if m["type"] == "error"]
    warnings = [
        f"valohai-yaml's linter warns: {m['message']}"
        for m in messages
        if m["type"] == "warning" and "'require-approval'" not in m["message"]  # applied here: see actions.py
    ]
    if not errors:
        return None, warnings
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return PipelineFileError(
        str(path), f"valohai-yaml's linter: {errors[0]}{_fix(errors[0])}{more}"
    ), warnings
