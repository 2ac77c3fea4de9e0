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

from airflow_valohai_reuse.cache.executions import Execution, NullCache
from airflow_valohai_reuse.cache.lease import Flight, Leases, owner_info
from airflow_valohai_reuse.errors import OutputError
from airflow_valohai_reuse.fingerprint.codesnap import stage_code
from airflow_valohai_reuse.operators.orphans import stop_orphans
from airflow_valohai_reuse.pipeline.spec import NodeSpec, PipelineSpec
from airflow_valohai_reuse.pipeline.stepdef import is_secret, render_script
from airflow_valohai_reuse.reuse.pins import check_pins
from airflow_valohai_reuse.reuse.resolve import (
    Cache,
    Resolved,
    check_publishable,
    find_reusable,
    merge_upstream,
    miss_reason,
    open_cache,
    publication,
    resolve,
    store_digests,
    upstream_tasks,
)
from airflow_valohai_reuse.runtime.inputs import temporary_dir
from airflow_valohai_reuse.runtime.outputs import collect_outputs, parse_metadata
from airflow_valohai_reuse.runtime.staging import changed_inputs, fetch_deferred, place_inputs, stamp_inputs
from airflow_valohai_reuse.runtime.worktree import WorkTree, container_environment
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.stores.base import ArtifactStore, open_store

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
    def execute(self, context: Context) -> dict[str, Any] | None:
        settings = load_settings()
        if settings.docker_url and self.docker_url is None:
            self.docker_url = settings.docker_url
        params = context["params"]
        cache = open_cache(settings, self.log)
        pins = check_pins(params.get("reuse_nodes") or {}, self.pipeline, cache)
        if self.node.node in pins:
            execution = pins[self.node.node]
            self.log.info("node pinned by reuse_nodes to execution %s", execution.id)
            return self._publish(context, execution, reused=True, details=execution.metadata)
        ti = context["ti"]
        upstream = {
            t: merge_upstream(t, ti.xcom_pull(task_ids=t, key=XCOM_KEY)) for t in upstream_tasks(self.node)
        }
        work = WorkTree(temporary_dir(settings.work_dir, f"{self.dag_id}.{self.task_id}.")).create()
        keep = settings.keep_work_dirs
        try:
            store = open_store(settings.artifact_store, settings.aws_conn_id, store_digests(cache))
            resolved = resolve(
                self.node,
                params=params,
                variant=self.variant,
                upstream=upstream,
                inputs_dir=work.inputs,
                cache=cache,
                settings=settings,
                image_id=self._image_id(),
                logger=self.log,
            )
            return self._decide(
                context, settings, cache, store, resolved, work, bool(params["reuse_executions"])
            )
        except OutputError:
            keep = True  # the outputs of a run that cannot be recorded stay for the user to rescue
            raise
        finally:
            if not keep:
                shutil.rmtree(work.root, ignore_errors=True)

    def _decide(
        self,
        context: Context,
        settings: Settings,
        cache: Cache,
        store: ArtifactStore,
        resolved: Resolved,
        work: WorkTree,
        reuse: bool,
    ) -> dict[str, Any] | None:
        details = resolved.details(settings.secret_env_patterns)
        if not reuse:
            self.log.info("reuse_executions is off: running")
            return self._run_and_record(context, settings, cache, store, resolved, work, details)
        hit = find_reusable(cache, store, resolved.fingerprint, self.log)
        if hit is not None:
            return self._publish(context, hit, reused=True, details={**hit.metadata, **details})
        reason, nearest = miss_reason(cache, self.node.step.name, resolved.fingerprint)
        against = f" (compared with execution {nearest.id})" if nearest else ""
        self.log.info("not reused: %s%s", reason, against)
        flight = self._flight(cache, settings, resolved.fingerprint.digest)
        held = flight.claim(self._owner(context))
        if held is not None:
            self.log.info(
                "an identical execution is running in %s; waiting for it (lease until %s)",
                held.describe(),
                f"{held.expires_at:%H:%M:%S}Z",
            )
            from airflow_valohai_reuse.triggers.execution_done import (
                ExecutionDoneTrigger,  # not needed to parse DAGs
            )

            self.defer(
                trigger=ExecutionDoneTrigger(resolved.fingerprint.digest, settings.lease_poll_seconds),
                method_name="resume_after_wait",
            )
        self._lease_holder = flight.lease_holder
        with flight:
            if flight.taken_over is not None:
                # the dead holder's container may still run here: stop it before ours starts
                stop_orphans(self.cli, flight.fingerprint, flight.taken_over, self.log)
            # it may have been recorded between the lookup and the claim
            hit = find_reusable(cache, store, resolved.fingerprint, self.log)
            if hit is not None:
                return self._publish(context, hit, reused=True, details={**hit.metadata, **details})
            return self._run_and_record(context, settings, cache, store, resolved, work, details)

    def resume_after_wait(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Back from waiting on an identical execution: decide again, now likely a hit."""
        event = event or {}
        if event.get("state") == "finished":
            self.log.info("the identical execution %s finished; looking it up", event.get("execution"))
        elif event.get("state") == "free":
            self.log.info("the identical execution ended without a result; deciding again")
        else:
            self.log.warning("waiting failed (%s); deciding again", event.get("error"))
        return self.execute(context)

    @staticmethod
    def _flight(cache: Cache, settings: Settings, fingerprint: str) -> Flight:
        if isinstance(cache, NullCache):
            return Flight.unguarded(fingerprint)
        return Flight(Leases(cache.engine, settings.lease_seconds), fingerprint)

    def _owner(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        return owner_info(
            dag_id=self.dag_id,
            run_id=context["run_id"],
            task_id=self.task_id,
            map_index=getattr(ti, "map_index", -1),
        )

    def _run_and_record(
        self,
        context: Context,
        settings: Settings,
        cache: Cache,
        store: ArtifactStore,
        resolved: Resolved,
        work: WorkTree,
        details: dict[str, Any],
    ) -> dict[str, Any] | None:
        stage_code(self.node.repository, resolved.code, work.repository)
        place_inputs(resolved.inputs, work.inputs, store)
        fetch_deferred(resolved.inputs, work.inputs, settings.aws_conn_id)
        stamps = stamp_inputs(work.inputs)
        execution = self._run(context, resolved, details, work, store, settings)
        value = publication(execution, reused=False, details=execution.metadata, node=self.node.node)
        check_publishable(value)
        self._record(cache, execution, changed_inputs(work.inputs, stamps))
        return self._publish(context, execution, reused=False, details=execution.metadata)

    def _record(self, cache: Cache, execution: Execution, changed_inputs: list[str]) -> None:
        if changed_inputs:
            self.log.warning(
                "input files were written while the container ran (%s): its outputs may come from other "
                "bytes than the fingerprint says, so execution %s is published but not recorded for reuse",
                ", ".join(changed_inputs),
                execution.id,
            )
            return
        try:
            cache.record(execution)
        except SQLAlchemyError as exc:
            self.log.warning(
                "could not record execution %s in the cache (%s); outputs are kept", execution.id, exc
            )

    def _image_id(self) -> str:
        from docker.errors import ImageNotFound

        try:
            return self.cli.inspect_image(self.image)["Id"]
        except ImageNotFound:
            self.log.info("pulling %s to learn its content identity", self.image)
            self.cli.pull(self.image)
            return self.cli.inspect_image(self.image)["Id"]

    # -- running ----------------------------------------------------------------------------------
    def _run(
        self,
        context: Context,
        resolved: Resolved,
        details: dict[str, Any],
        work: WorkTree,
        store: ArtifactStore,
        settings: Settings,
    ) -> Execution:
        execution_id = str(uuid.uuid4())
        started = datetime.now(UTC)
        fingerprint, variables = resolved.fingerprint, resolved.variables
        work.write_config(resolved.parameters, resolved.inputs, self._execution_json(context, execution_id))
        secret = {k: v for k, v in variables.items() if is_secret(k, settings.secret_env_patterns)}
        self.environment = {
            **{k: v for k, v in variables.items() if k not in secret},
            **container_environment(execution_id),
        }
        self._private_environment = {**getattr(self, "_private_environment", {}), **secret}
        _mask_secrets(secret, resolved.parameters, settings.secret_env_patterns)
        self.mounts = [*work.mounts()]
        self.labels = {
            **(self.labels if isinstance(self.labels, dict) else {}),
            "io.valohai-reuse.dag-id": self.dag_id,
            "io.valohai-reuse.run-id": context["run_id"],
            "io.valohai-reuse.task-id": self.task_id,
            "io.valohai-reuse.execution-id": execution_id,
            # what a takeover looks for to stop a dead worker's container (orphans.py)
            "io.valohai-reuse.fingerprint": fingerprint.digest,
            "io.valohai-reuse.lease-holder": getattr(self, "_lease_holder", ""),
        }
        self.command = [render_script(self.node.step, resolved.parameters)]
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
            metadata={
                **details,
                "metadata": parse_metadata(lines if isinstance(lines, list) else [lines or ""]),
            },
            pipeline=self.node.pipeline,
            node=self.node.node,
            dag_id=self.dag_id,
            run_id=context["run_id"],
            task_id=self.task_id,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_s=duration,
            expires_at=datetime.now(UTC) + self.node.ttl if self.node.ttl else None,
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
    ) -> dict[str, Any] | None:
        if reused:
            saved = f"{execution.duration_s:.1f}" if execution.duration_s is not None else "?"
            self.log.info(
                "reused execution %s from %s/%s (saved %s s)",
                execution.id,
                execution.dag_id,
                execution.run_id,
                saved,
            )
        value = publication(execution, reused=reused, details=details, node=self.node.node)
        context["ti"].xcom_push(key=XCOM_KEY, value=value)
        # The same value as the return value would cost a second XCom write per node; Airflow
        # needs one only where a task node maps over this node's output.
        return value if next(self.iter_mapped_dependants(), None) is not None else None


def _mask_secrets(
    variables: Mapping[str, str], parameters: Mapping[str, Any], patterns: tuple[str, ...]
) -> None:
    """Have Airflow's log redaction hide secret values the container might print."""
    from airflow.sdk.log import mask_secret

    # No name given: the value is masked whatever Airflow's own list of sensitive names says.
    for value in variables.values():
        mask_secret(value)
    for name, value in parameters.items():
        if is_secret(name, patterns):
            mask_secret(value)
