"""``valohai-reuse.yaml`` beside a valohai.yaml: per-project reuse settings valohai.yaml has no room for.

```yaml
code-scope: auto          # or "repository": every project file belongs to every step
ttl: 30d                  # optional: entries older than this are not reused
step-dags: true           # also one DAG per step (or a list of step names), for standalone executions
pipelines:
  nightly-training:
    ttl: 7d
steps:
  train:
    include: ["configs/*.json", "models/**"]   # widen a step's code scope by hand
    ttl: 2d
  report:
    code-scope: repository
  sign:
    fingerprint-secrets: [SIGNING_KEY]        # its output depends on this secret's value
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from valohai_yaml.utils.duration import parse_duration

from airflow_valohai_reuse.errors import PipelineFileError
from airflow_valohai_reuse.fingerprint.scope import CodeScope, ScopeMode

FILENAME = "valohai-reuse.yaml"
_STEP_KEYS = {"code-scope", "include", "ttl", "fingerprint-secrets"}


@dataclass(frozen=True)
class ProjectConfig:
    default_scope: CodeScope = field(default_factory=CodeScope)
    step_scopes: dict[str, CodeScope] = field(default_factory=dict)
    default_ttl: timedelta | None = None
    pipeline_ttls: dict[str, timedelta] = field(default_factory=dict)
    step_ttls: dict[str, timedelta] = field(default_factory=dict)
    step_secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: one DAG per step: every step (True), none (False), these steps, or None (``[valohai_reuse] step_dags``)
    step_dags: bool | tuple[str, ...] | None = None

    def scope_for(self, step: str) -> CodeScope:
        return self.step_scopes.get(step, self.default_scope)

    def ttl_for(self, pipeline: str, step: str) -> timedelta | None:
        """How long an entry stays reusable: the step's, else the pipeline's, else the file's."""
        return self.step_ttls.get(step) or self.pipeline_ttls.get(pipeline) or self.default_ttl


def _mode(path: Path, where: str, value: Any) -> ScopeMode:
    try:
        return ScopeMode(value)
    except ValueError:
        choices = ", ".join(m.value for m in ScopeMode)
        raise PipelineFileError(str(path), f"code-scope {value!r} is not one of {choices}", where) from None


def _include(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineFileError(str(path), f"include must be a list of glob strings, got {value!r}", where)
    return tuple(value)


def _names(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problem = f"fingerprint-secrets must be a list of environment variable names, got {value!r}"
        raise PipelineFileError(str(path), problem, where)
    return tuple(value)


def _ttl(path: Path, where: str, value: Any) -> timedelta | None:
    if value is None:
        return None
    try:
        ttl = parse_duration(value)
    except (ValueError, TypeError):
        ttl = None
    if not ttl:
        raise PipelineFileError(str(path), f"ttl {value!r} is not a duration such as 7d, 12h or 3600", where)
    return ttl


def _pipeline_ttls(path: Path, data: Any) -> dict[str, timedelta]:
    ttls: dict[str, timedelta] = {}
    for name, item in (data or {}).items():
        if not isinstance(item, dict) or set(item) - {"ttl"}:
            raise PipelineFileError(str(path), "expected a mapping with only ttl", f"pipelines/{name}")
        if (ttl := _ttl(path, f"pipelines/{name}/ttl", item.get("ttl"))) is not None:
            ttls[name] = ttl
    return ttls


def _step_dags(path: Path, value: Any) -> bool | tuple[str, ...] | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise PipelineFileError(
        str(path), f"step-dags must be true, false or a list of step names, got {value!r}", "step-dags"
    )


def load_project_config(valohai_yaml: Path, base_mode: ScopeMode = ScopeMode.AUTO) -> ProjectConfig:
    """The settings file beside ``valohai_yaml``, or the defaults when there is none; ``base_mode``:
    the ``[valohai_reuse] code_scope`` option, which settings.py has checked."""
    path = valohai_yaml.parent / FILENAME
    if not path.exists():
        return ProjectConfig(CodeScope(base_mode))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PipelineFileError(str(path), f"YAML syntax: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"code-scope", "steps", "ttl", "pipelines", "step-dags"}:
        raise PipelineFileError(
            str(path), "expected a mapping with only code-scope, ttl, pipelines, steps and step-dags"
        )
    default = CodeScope(_mode(path, "code-scope", data.get("code-scope", base_mode.value)))
    steps: dict[str, CodeScope] = {}
    step_ttls: dict[str, timedelta] = {}
    step_secrets: dict[str, tuple[str, ...]] = {}
    for name, item in (data.get("steps") or {}).items():
        where = f"steps/{name}"
        if not isinstance(item, dict) or set(item) - _STEP_KEYS:
            keys = "code-scope, include, ttl and fingerprint-secrets"
            raise PipelineFileError(str(path), f"expected a mapping with only {keys}", where)
        if "fingerprint-secrets" in item:
            step_secrets[name] = _names(path, f"{where}/fingerprint-secrets", item["fingerprint-secrets"])
        mode = _mode(path, f"{where}/code-scope", item.get("code-scope", default.mode.value))
        steps[name] = CodeScope(mode, _include(path, f"{where}/include", item.get("include", [])))
        if (ttl := _ttl(path, f"{where}/ttl", item.get("ttl"))) is not None:
            step_ttls[name] = ttl
    return ProjectConfig(
        default,
        steps,
        _ttl(path, "ttl", data.get("ttl")),
        _pipeline_ttls(path, data.get("pipelines")),
        step_ttls,
        step_secrets,
        _step_dags(path, data.get("step-dags")),
    )
