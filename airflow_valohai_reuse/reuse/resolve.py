"""Everything that determines a node's result, gathered into a fingerprint.

The operator and the planner both call :func:`resolve` and then :func:`~.decide.decide`, so a plan
predicts with the very code a run decides with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_valohai_reuse.contracts import SourceKind, StatSource, Upstream
from airflow_valohai_reuse.fingerprint.checksums import StatCache
from airflow_valohai_reuse.fingerprint.codesnap import code_component, list_files, listed_component
from airflow_valohai_reuse.fingerprint.components import Fingerprint
from airflow_valohai_reuse.fingerprint.scope import Scoped, scope_of
from airflow_valohai_reuse.pipeline.masked import SECRET_VARIANT, is_reference
from airflow_valohai_reuse.pipeline.spec import EdgeIn, NodeSpec
from airflow_valohai_reuse.pipeline.stepdef import (
    environment_component,
    environment_values,
    parameters_component,
    public_values,
    resolve_parameters,
    step_component,
)
from airflow_valohai_reuse.runtime.commitcode import commit_files
from airflow_valohai_reuse.runtime.inputs import FileRef, default_refs, edge_refs, glob_match, identify_input
from airflow_valohai_reuse.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Resolved:
    """A node's fingerprint and the values behind it, before any decision."""

    fingerprint: Fingerprint
    parameters: dict[str, Any]
    inputs: dict[str, list[FileRef]]
    variables: dict[str, str]
    #: where the fingerprinted code is read from when the node runs: the project, or another commit's files
    code_root: Path | None = None

    @property
    def code(self) -> dict[str, Any]:
        return dict(self.fingerprint.components["code"])

    def details(self, secret_patterns: tuple[str, ...]) -> dict[str, Any]:
        """What downstream edges read from this node besides its outputs."""
        return {
            "parameters": public_values(self.parameters, secret_patterns),
            "inputs": {name: [r.as_dict() for r in refs] for name, refs in self.inputs.items()},
            "environment": public_values(self.variables, secret_patterns),
        }


def given_parameters(
    node: NodeSpec,
    params: Mapping[str, Any],
    upstream: Mapping[str, Upstream],
    variant: Mapping[str, Any],
    logger: logging.Logger = log,
) -> dict[str, Any]:
    """Parameter values set from outside the step: pipeline parameters (null: their valohai.yaml
    default), edges, then the variant."""
    given: dict[str, Any] = {}
    for pipeline_param, targets in node.pipeline_parameters.items():
        value = params.get(pipeline_param)
        value = node.pipeline_defaults.get(pipeline_param) if value is None else value
        if value is not None:
            given.update(dict.fromkeys(targets, value))
    for edge in node.parameters_from_edges:
        source = upstream[edge.source_task]
        from_parameter = edge.source_kind is SourceKind.PARAMETER
        pool = source.parameters if from_parameter else source.metadata
        if edge.source_key in pool:
            given[edge.target_key] = pool[edge.source_key]
        else:
            logger.warning(
                "edge %s.%s.%s → %s: no such value upstream; the step default applies",
                edge.source_node,
                edge.source_kind,
                edge.source_key,
                edge.target_key,
            )
    for name, value in variant.items():
        if is_reference(value):  # a secret: its value is the node's, its reference the expand input's
            given[name] = node.secret_variants[value[SECRET_VARIANT]][name]
            continue
        if name in given and given[name] != value:
            logger.info("variant sets parameter %s = %r instead of %r", name, value, given[name])
        given[name] = value
    return given


def given_environment(node: NodeSpec, upstream: Mapping[str, Upstream]) -> dict[str, str | None]:
    edges = node.environment_from_edges
    return {e.target_key: upstream[e.source_task].environment.get(e.source_key) for e in edges}


def edge_files(edge: EdgeIn, upstream: Mapping[str, Upstream]) -> list[dict[str, Any]]:
    """The files an edge passes, as the input side reads them (runtime/inputs.py, ``edge_refs``)."""
    source = upstream[edge.source_task]
    if edge.source_kind is SourceKind.OUTPUT:
        return [o.as_dict() for o in source.outputs]
    return [f for name, refs in source.inputs.items() if glob_match(name, edge.source_key) for f in refs]


def identify_inputs(
    node: NodeSpec,
    upstream: Mapping[str, Upstream],
    inputs_dir: Path,
    stat_cache: StatCache,
    conn_id: str = "aws_default",
) -> dict[str, list[FileRef]]:
    """Each input's files with their checksums; placed for the container only if the node runs
    (staging.py), so a reused node copies and links nothing."""
    staged: dict[str, list[FileRef]] = {}
    for name, spec in node.step.inputs.items():
        edges = [e for e in node.inputs_from_edges if e.target_key == name]
        refs: list[FileRef] = []
        if not edges or node.append_edges_to_defaults:
            defaults = spec.default if isinstance(spec.default, list) else [spec.default]
            refs += default_refs(spec, [d for d in defaults if d], node.repository)
        for edge in edges:
            # an input → input edge's key names the upstream's inputs (edge_files): all their files pass
            pattern = edge.source_key if edge.source_kind is SourceKind.OUTPUT else None
            refs += edge_refs(spec, edge_files(edge, upstream), pattern, f"node {edge.source_node!r}")
        staged[name] = identify_input(spec, refs, inputs_dir, stat_cache, conn_id)
    return staged


def resolve(
    node: NodeSpec,
    *,
    params: Mapping[str, Any],
    variant: Mapping[str, Any],
    upstream: Mapping[str, Upstream],
    inputs_dir: Path,
    cache: StatSource,
    settings: Settings,
    image_id: Callable[[], str],
    logger: logging.Logger = log,
) -> Resolved:
    """Compute the node's fingerprint. An http(s) input is identified by its server's validators where
    they pass the rule (runtime/web.py) and fetched only if the node runs; one without them is
    downloaded under ``inputs_dir`` to be hashed.
    ``image_id`` is asked last, so a slow answer from the Docker daemon overlaps the rest."""
    step = node.step
    stat_cache = cache.project_stats(str(node.repository.resolve()))
    given = given_parameters(node, params, upstream, variant, logger)
    parameters = resolve_parameters(step, given, settings.secret_env_patterns)
    variables = environment_values(step, given_environment(node, upstream))
    code_root, code = _code(node, stat_cache, settings)
    if code.get("widened"):
        logger.info("code scope of step %r widened: %s", step.name, code["widened"])
    inputs = identify_inputs(node, upstream, inputs_dir, stat_cache, settings.aws_conn_id)
    stat_cache.flush()
    fingerprint = Fingerprint(
        {
            "step": step_component(step),
            "code": code,
            "parameters": parameters_component(parameters, settings.secret_env_patterns),
            "inputs": {name: {r.name: r.identity for r in refs} for name, refs in inputs.items()},
            "image": {"id": image_id()},
            "environment": environment_component(
                step, variables, settings.secret_env_patterns, node.fingerprint_secrets
            ),
        }
    )
    return Resolved(fingerprint, parameters, inputs, variables, code_root)


def _code(node: NodeSpec, stat_cache: StatCache, settings: Settings) -> tuple[Path, dict[str, Any]]:
    """Where the node's code is, and its ``code`` component: the project's files in the step's scope,
    or, for a node with ``commit:``, that commit's files in the same scope. A widened scope says why
    in the component, so ``explain`` and the diff of a miss show it."""
    scope = node.code_scope
    if node.commit is None:
        scoped = scope_of(node.repository, list_files(node.repository), node.step, scope)
        code = code_component(node.repository, scoped.files, stat_cache, scope.mode.value)
        return node.repository, _with_reason(code, scoped)
    tree = commit_files(node.commit, settings.work_dir)
    scoped = scope_of(tree.root, sorted(tree.files), node.step, scope)
    return tree.root, _with_reason(listed_component(tree.files, scoped.files, scope.mode.value), scoped)


def _with_reason(code: dict[str, Any], scoped: Scoped) -> dict[str, Any]:
    return {**code, "widened": scoped.widened} if scoped.widened else code
