"""ReusableDockerOperator: a DockerOperator that reuses an identical past execution instead of running."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator
from sqlalchemy.exc import SQLAlchemyError

from airflow_valohai_reuse.cache import BatchStatCache, Execution, ExecutionCache, NullCache
from airflow_valohai_reuse.checksums import NoStatCache, StatCache
from airflow_valohai_reuse.codesnap import code_component, list_files, stage_code
from airflow_valohai_reuse.fingerprint import Fingerprint, describe, diff
from airflow_valohai_reuse.inputs import FileRef, default_refs, edge_refs, stage_input, temporary_dir
from airflow_valohai_reuse.manual import check_pins
from airflow_valohai_reuse.outputs import collect_outputs, parse_metadata
from airflow_valohai_reuse.runtime import WorkTree, container_environment
from airflow_valohai_reuse.scope import scoped_files
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.spec import EdgeIn, NodeSpec, PipelineSpec
from airflow_valohai_reuse.stepdef import (
    environment_component,
    environment_values,
    is_secret,
    render_script,
    resolve_parameters,
    step_component,
)
from airflow_valohai_reuse.stores import ArtifactStore, open_store

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_KEY = "valohai_execution"


class ReusableDockerOperator(DockerOperator):
    """Runs one valohai.yaml pipeline node in Docker, or reuses the outputs of an identical past run.

    With reuse off (and no pin) it behaves as a DockerOperator with the Valohai runtime contract,
    and still records its execution so later runs can reuse it.
    """

    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        node: NodeSpec,
        pipeline: PipelineSpec,
        variant: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("image", node.step.image)
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("working_dir", "/valohai/repository")
        kwargs.setdefault("entrypoint", ["/bin/sh", "-c"])
        kwargs.setdefault("xcom_all", True)
        super().__init__(**kwargs)
        self.node = node
        self.pipeline = pipeline
        #: a task node's variant: parameter values that win over pipeline parameters and edges
        self.variant = dict(variant or {})

    # -- the decision ---------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        settings = load_settings()
        if settings.docker_url and self.docker_url is None:
            self.docker_url = settings.docker_url
        params = context["params"]
        cache = self._open_cache(settings)
        pins = check_pins(params.get("reuse_nodes") or {}, self.pipeline, cache)
        if self.node.node in pins:
            execution = pins[self.node.node]
            self.log.info("node pinned by reuse_nodes to execution %s", execution.id)
            return self._publish(context, execution, reused=True, details=execution.metadata)
        upstream = self._upstream(context)
        work = WorkTree(temporary_dir(settings.work_dir, f"{self.dag_id}.{self.task_id}.")).create()
        try:
            return self._run_or_reuse(
                context, settings, cache, upstream, work, bool(params["reuse_executions"])
            )
        finally:
            if not settings.keep_work_dirs:
                shutil.rmtree(work.root, ignore_errors=True)

    def _run_or_reuse(
        self,
        context: Context,
        settings: Settings,
        cache: ExecutionCache | NullCache,
        upstream: dict[str, dict[str, Any]],
        work: WorkTree,
        reuse: bool,
    ) -> dict[str, Any]:
        store = open_store(settings.artifact_store)
        stat_cache = self._stat_cache(cache)
        step = self.node.step
        parameters = resolve_parameters(step, self._given_parameters(context["params"], upstream))
        variables = environment_values(step, self._given_environment(upstream))
        files = scoped_files(
            self.node.repository, list_files(self.node.repository), step, self.node.code_scope
        )
        code = code_component(self.node.repository, files, stat_cache, self.node.code_scope.mode.value)
        inputs = self._stage_inputs(upstream, work, store, stat_cache)
        if isinstance(stat_cache, BatchStatCache):
            stat_cache.flush()
        fingerprint = Fingerprint(
            {
                "step": step_component(step),
                "code": code,
                "parameters": parameters,
                "inputs": {
                    name: {r.name: {"sha256": r.sha256} for r in refs} for name, refs in inputs.items()
                },
                "image": {"id": self._image_id()},
                "environment": environment_component(step, variables, settings.secret_env_patterns),
            }
        )
        details = self._details(parameters, inputs, variables, settings)
        if reuse:
            hit = self._find(cache, store, fingerprint)
            if hit is not None:
                return self._publish(context, hit, reused=True, details={**hit.metadata, **details})
        self._explain_miss(cache, fingerprint, reuse)
        stage_code(self.node.repository, code, work.repository)
        execution = self._run(context, fingerprint, parameters, inputs, variables, work, store, settings)
        execution.metadata = {**details, "metadata": execution.metadata.get("metadata", {})}
        try:
            cache.record(execution)
        except SQLAlchemyError as exc:
            self.log.warning(
                "could not record execution %s in the cache (%s); outputs are kept", execution.id, exc
            )
        return self._publish(context, execution, reused=False, details=execution.metadata)

    # -- gathering what determines the result -----------------------------------------------------
    def _upstream(self, context: Context) -> dict[str, dict[str, Any]]:
        sources = {e.source_task for e in (*self.node.inputs_from_edges, *self.node.parameters_from_edges)}
        sources |= {e.source_task for e in self.node.environment_from_edges}
        ti = context["ti"]
        found = {}
        for task_id in sorted(sources):
            value = ti.xcom_pull(task_ids=task_id, key=XCOM_KEY)
            if isinstance(value, (list, tuple)):
                from airflow_valohai_reuse.variants import merge_executions

                value = merge_executions(task_id, list(value))  # a task node: one value per variant
            if not isinstance(value, dict):
                raise RuntimeError(f"upstream task {task_id!r} left no {XCOM_KEY!r} XCom; was it cleared?")
            found[task_id] = value
        return found

    def _given_parameters(
        self, params: Mapping[str, Any], upstream: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for pipeline_param, targets in self.node.pipeline_parameters.items():
            if params.get(pipeline_param) is not None:
                given.update(dict.fromkeys(targets, params[pipeline_param]))
        for edge in self.node.parameters_from_edges:
            source = upstream[edge.source_task]
            pool = (
                source.get("parameters", {})
                if edge.source_kind == "parameter"
                else source.get("metadata", {})
            )
            if edge.source_key in pool:
                given[edge.target_key] = pool[edge.source_key]
            else:
                self.log.warning(
                    "edge %s.%s.%s → %s: no such value upstream; the step default applies",
                    edge.source_node,
                    edge.source_kind,
                    edge.source_key,
                    edge.target_key,
                )
        for name, value in self.variant.items():
            if name in given and given[name] != value:
                self.log.info("variant sets parameter %s = %r instead of %r", name, value, given[name])
            given[name] = value
        return given

    def _given_environment(self, upstream: dict[str, dict[str, Any]]) -> dict[str, str | None]:
        return {
            e.target_key: upstream[e.source_task].get("environment", {}).get(e.source_key)
            for e in self.node.environment_from_edges
        }

    def _edge_files(self, edge: EdgeIn, upstream: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        source = upstream[edge.source_task]
        if edge.source_kind == "output":
            return list(source.get("outputs", []))
        return [
            f for name, refs in source.get("inputs", {}).items() if _input_match(name, edge) for f in refs
        ]

    def _stage_inputs(
        self,
        upstream: dict[str, dict[str, Any]],
        work: WorkTree,
        store: ArtifactStore,
        stat_cache: StatCache,
    ) -> dict[str, list[FileRef]]:
        staged: dict[str, list[FileRef]] = {}
        for name, spec in self.node.step.inputs.items():
            edges = [e for e in self.node.inputs_from_edges if e.target_key == name]
            refs: list[FileRef] = []
            if not edges or self.node.append_edges_to_defaults:
                defaults = spec.default if isinstance(spec.default, list) else [spec.default]
                refs += default_refs(spec, [d for d in defaults if d], self.node.repository)
            for edge in edges:
                refs += edge_refs(spec, self._edge_files(edge, upstream), edge.source_key)
            staged[name] = stage_input(spec, refs, work.inputs, {store.scheme: store}, stat_cache)
        return staged

    def _image_id(self) -> str:
        from docker.errors import ImageNotFound

        try:
            return self.cli.inspect_image(self.image)["Id"]
        except ImageNotFound:
            self.log.info("pulling %s to learn its content identity", self.image)
            self.cli.pull(self.image)
            return self.cli.inspect_image(self.image)["Id"]

    def _details(
        self,
        parameters: dict[str, Any],
        inputs: dict[str, list[FileRef]],
        variables: dict[str, str],
        settings: Settings,
    ) -> dict[str, Any]:
        return {
            "parameters": parameters,
            "inputs": {name: [r.as_dict() for r in refs] for name, refs in inputs.items()},
            "environment": {
                k: v for k, v in variables.items() if not is_secret(k, settings.secret_env_patterns)
            },
        }

    # -- cache ----------------------------------------------------------------------------------
    def _open_cache(self, settings: Settings) -> ExecutionCache | NullCache:
        try:
            return ExecutionCache(settings.sql_alchemy_conn)
        except SQLAlchemyError as exc:
            self.log.warning("execution cache unavailable (%s): the node runs and nothing is recorded", exc)
            return NullCache()

    def _stat_cache(self, cache: ExecutionCache | NullCache) -> StatCache:
        if isinstance(cache, NullCache):
            return NoStatCache()
        try:
            return BatchStatCache(cache, [str(self.node.repository.resolve())])
        except SQLAlchemyError:
            return NoStatCache()

    def _find(
        self, cache: ExecutionCache | NullCache, store: ArtifactStore, fp: Fingerprint
    ) -> Execution | None:
        try:
            hit = cache.lookup(fp.digest)
        except SQLAlchemyError as exc:
            self.log.warning("execution cache lookup failed (%s); the node runs", exc)
            return None
        if hit is None:
            return None
        missing = [o["name"] for o in hit.outputs if not store.exists(o["uri"], o["size"])]
        if missing:
            self.log.warning(
                "not reusing execution %s: outputs missing or changed in the store: %s; running again",
                hit.id,
                ", ".join(missing),
            )
            return None
        return hit

    def _explain_miss(self, cache: ExecutionCache | NullCache, fp: Fingerprint, reuse: bool) -> None:
        if not reuse:
            self.log.info("reuse_executions is off: running")
            return
        try:
            nearest = cache.nearest(self.node.step.name)
        except SQLAlchemyError:
            nearest = None
        if nearest is None:
            self.log.info("not reused: no earlier successful execution of step %r", self.node.step.name)
        else:
            changes = describe(diff(nearest.components, dict(fp.components)))
            self.log.info("not reused: %s (compared with execution %s)", changes, nearest.id)

    # -- running ----------------------------------------------------------------------------------
    def _run(
        self,
        context: Context,
        fingerprint: Fingerprint,
        parameters: dict[str, Any],
        inputs: dict[str, list[FileRef]],
        variables: dict[str, str],
        work: WorkTree,
        store: ArtifactStore,
        settings: Settings,
    ) -> Execution:
        execution_id = str(uuid.uuid4())
        started = datetime.now(UTC)
        work.write_config(parameters, inputs, self._execution_json(context, execution_id))
        secret = {k: v for k, v in variables.items() if is_secret(k, settings.secret_env_patterns)}
        self.environment = {
            **{k: v for k, v in variables.items() if k not in secret},
            **container_environment(execution_id),
        }
        self._private_environment = {**getattr(self, "_private_environment", {}), **secret}
        self.mounts = [*work.mounts()]
        self.labels = {
            **(self.labels if isinstance(self.labels, dict) else {}),
            "io.valohai-reuse.dag-id": self.dag_id,
            "io.valohai-reuse.run-id": context["run_id"],
            "io.valohai-reuse.task-id": self.task_id,
            "io.valohai-reuse.execution-id": execution_id,
        }
        self.command = [render_script(self.node.step, parameters)]
        clock = time.monotonic()
        lines = super().execute(context)
        duration = time.monotonic() - clock
        outputs = collect_outputs(work.outputs, store)
        return Execution(
            id=execution_id,
            fingerprint=fingerprint.digest,
            fingerprint_version=fingerprint.version,
            step=self.node.step.name,
            components=dict(fingerprint.components),
            outputs=outputs,
            metadata={"metadata": parse_metadata(lines if isinstance(lines, list) else [lines or ""])},
            pipeline=self.node.pipeline,
            node=self.node.node,
            dag_id=self.dag_id,
            run_id=context["run_id"],
            task_id=self.task_id,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_s=duration,
        )

    def _execution_json(self, context: Context, execution_id: str) -> dict[str, Any]:
        return {
            "valohai.execution-id": execution_id,
            "valohai.execution-step": self.node.step.name,
            "valohai.execution-image": self.image,
            "valohai.pipeline-title": self.node.pipeline,
            "valohai.pipeline-node-name": self.node.node,
            "airflow.dag-id": self.dag_id,
            "airflow.run-id": context["run_id"],
        }

    # -- publishing -------------------------------------------------------------------------------
    def _publish(
        self, context: Context, execution: Execution, *, reused: bool, details: Mapping[str, Any]
    ) -> dict[str, Any]:
        if reused:
            saved = f"{execution.duration_s:.1f}" if execution.duration_s is not None else "?"
            self.log.info(
                "reused execution %s from %s/%s (saved %s s)",
                execution.id,
                execution.dag_id,
                execution.run_id,
                saved,
            )
        value = {
            "execution_id": execution.id,
            "reused": reused,
            "reused_from": execution.id if reused else None,
            "fingerprint": execution.fingerprint,
            "outputs": execution.outputs,
            "parameters": details.get("parameters", execution.components.get("parameters", {})),
            "inputs": details.get("inputs", {}),
            "environment": details.get("environment", {}),
            "metadata": details.get("metadata", execution.metadata.get("metadata", {})),
            "step": execution.step,
            "node": self.node.node,
        }
        context["ti"].xcom_push(key=XCOM_KEY, value=value)
        return value


def _input_match(name: str, edge: EdgeIn) -> bool:
    from airflow_valohai_reuse.inputs import glob_match

    return glob_match(name, edge.source_key)
