"""The DAG-folder drop-in: find valohai.yaml files and register their DAGs.

A broken valohai.yaml must show as an import error without hiding the DAGs of the other files.
Airflow marks every DAG of a Python file that has an import error as stale, so the DAGs are
registered by one DAG file and broken files are reported by a second one that defines no DAGs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.factory.yamllines import line_of
from airflow_valohai_reuse.pipeline.analysis import check_file
from airflow_valohai_reuse.settings import load_settings

log = logging.getLogger(__name__)

FILENAMES = ("valohai.yaml", "valohai.yml")
_SKIP = {".git", "__pycache__", ".venv", "node_modules"}


def find_pipeline_files(folder: str | Path) -> Iterator[Path]:
    """valohai.yaml files under ``folder``, in a stable order."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
        for name in sorted(files):
            if name in FILENAMES:
                yield Path(root, name)


def _folder(default: str | Path) -> Path:
    configured = load_settings().pipelines_folder
    return Path(configured) if configured else Path(default)


def register_pipelines(
    namespace: MutableMapping[str, Any], default_folder: str | Path
) -> list[PipelineFileError]:
    """Build every DAG of every valohai.yaml found and put them in ``namespace``.

    Returns the broken files' errors (logged, not raised). A worker that re-parses to run one
    task builds only that task's DAG.
    """
    from airflow.sdk import get_parsing_context

    # the check DAG file (valohai_pipelines_check.py) builds no DAG: it is spared the operators' imports
    from airflow_valohai_reuse.factory.factory import build_dags

    settings = load_settings()
    wanted = get_parsing_context().dag_id
    errors: list[PipelineFileError] = []
    for path in find_pipeline_files(_folder(default_folder)):
        try:
            dags = build_dags(
                path, dag_id_prefix=settings.dag_id_prefix, schedules=settings.schedules, only_dag_id=wanted
            )
        except PipelineFileError as exc:
            log.error("%s", exc)
            errors.append(exc)
            continue
        namespace.update(dags)
    return errors


class ValohaiYamlError(Exception):
    """The broken files' lines, one per file, as the first thing an import error shows.

    Airflow stores a failed import's traceback (``dagbag_import_error_tracebacks``), which puts the
    message under the frames. A cause that was never raised has no frames, and Python prints a cause
    first: so the lines come first, each ``path:line: problem``. Named as a builtin so that the line
    starts ``ValohaiYamlError:`` rather than this module's dotted path.
    """

    __module__ = "builtins"


def located(exc: PipelineFileError) -> str:
    """``path:line: problem`` where the line is known (a compiler's form, which editors follow)."""
    line = line_of(exc.path, exc.where, exc.problem)
    if line is None:
        return str(exc)
    place = f"at {exc.where}: " if exc.where and not exc.where.startswith("line ") else ""
    return f"{exc.path}:{line}: {place}{exc.problem}"


def check_pipelines(default_folder: str | Path) -> None:
    """Raise one error naming every broken valohai.yaml, so Airflow lists it as an import error."""
    problems = []
    for path in find_pipeline_files(_folder(default_folder)):
        try:
            check_file(path)
        except PipelineFileError as exc:
            problems.append(located(exc))
    if problems:
        lines = "\n".join(problems)
        error = PipelineFileError(
            str(_folder(default_folder)), f"{len(problems)} broken valohai.yaml file(s):\n{lines}"
        )
        raise error from ValohaiYamlError(lines)
