"""ReusableDockerOperator: a DockerOperator that reuses an identical past execution instead of running."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator

from airflow_valohai_reuse.background import in_background
from airflow_valohai_reuse.cache.failopen import open_cache
from airflow_valohai_reuse.cache.lease import Flight, owner_info
from airflow_valohai_reuse.contracts import (
    XCOM_KEY,
    Cache,
    Execution,
    Kind,
    LeaseOwner,
    Published,
    TaskKey,
    map_index_of,
)
from airflow_valohai_reuse.errors import ManualReuseError, OutputError
from airflow_valohai_reuse.fingerprint.codesnap import stage_code
from airflow_valohai_reuse.fingerprint.scopehint import failure_hint
from airflow_valohai_reuse.internals import add_private_environment
from airflow_valohai_reuse.operators import container
from airflow_valohai_reuse.operators.handoffs import NodeHandoffs
from airflow_valohai_reuse.operators.nodeactions import fire
from airflow_valohai_reuse.operators.orphans import stop_orphans
from airflow_valohai_reuse.operators.publishing import Publisher
from airflow_valohai_reuse.operators.runcontrol import check_start
from airflow_valohai_reuse.operators.runpins import refuse, run_pins
from airflow_valohai_reuse.pipeline.actions import When
from airflow_valohai_reuse.pipeline.failures import RunRules
from airflow_valohai_reuse.pipeline.options import reuse_on
from airflow_valohai_reuse.pipeline.spec import NodeSpec, PipelineSpec
from airflow_valohai_reuse.pipeline.stepdef import SHELL_ENTRYPOINT, render_script
from airflow_valohai_reuse.reuse.decide import Hit, Miss, Wait, decide, pinned
from airflow_valohai_reuse.reuse.image import image_id, image_id_with, pin, unpin
from airflow_valohai_reuse.reuse.resolve import Resolved, resolve
from airflow_valohai_reuse.reuse.upstream import read_upstream
from airflow_valohai_reuse.runtime.inputs import temporary_dir
from airflow_valohai_reuse.runtime.outputs import collect_outputs, parse_metadata, read_metadata
from airflow_valohai_reuse.runtime.staging import changed_inputs, fetch_deferred, place_inputs, stamp_inputs
from airflow_valohai_reuse.runtime.worktree import WorkTree, container_environment
from airflow_valohai_reuse.settings import Settings, load_settings
from airflow_valohai_reuse.stores.base import ArtifactStore
from airflow_valohai_reuse.stores.registry import open_store

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["XCOM_KEY", "ReusableDockerOperator"]


@dataclass(frozen=True)
class _Job:
    """One node run's parts, from resolving to publishing; ``run``: its public parameters, inputs
    and environment; ``refused``: another node's refused pin, which stops this one before its container."""

    context: Context
    settings: Settings
    cache: Cache
    store: ArtifactStore
    resolved: Resolved
    work: WorkTree
    run: dict[str, Any]
    refused: ManualReuseError | None = None


class ReusableDockerOperator(NodeHandoffs, DockerOperator):
    """Runs one valohai.yaml pipeline node in Docker, or reuses the outputs of an identical past run.

    With reuse off (and no pin) it behaves as a DockerOperator with the Valohai runtime contract,
    and still records its execution so later runs can reuse it.
    """

    ui_color = "#d6eaf8"
    #: values are taken literally, as Valohai takes them: Jinja renders no field before execute() (a
    #: value holding ``{{`` or ending in ``.sh`` would be rendered, or read as a template file), and so
    #: Airflow makes no Execution API call for rendered fields before the node decides
    template_fields: Sequence[str] = ()
    #: execute() renders the command from the resolved parameters and then shows these fields; Airflow
    #: records them when the task ends, so the UI shows the command that ran, or that a reused
    #: execution ran
    shown_fields: Sequence[str] = DockerOperator.template_fields
    overwrite_rtif_after_execution = True

    def __init__(
        self,
        *,
        node: NodeSpec,
        pipeline: PipelineSpec,
        variant: dict[str, Any] | None = None,
        rules: RunRules | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("image", node.step.image)
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("working_dir", "/valohai/repository")
        kwargs.setdefault("entrypoint", list(SHELL_ENTRYPOINT))
        kwargs.setdefault("xcom_all", True)
        super().__init__(**kwargs)
        self.node = node
        self.pipeline = pipeline
        #: a task node's variant: parameter values that win over pipeline parameters and edges
        self.variant = dict(variant or {})
        #: the DAG's failure handling (on-error, on-child-error, actions); None: Airflow's defaults
        self.rules = rules

    # -- the decision ---------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any] | None:
        if self.rules is not None and self.rules.check_start:
            check_start(self.rules, self.task_id, context)  # skipped when the pipeline has stopped
        settings = load_settings()
        if settings.docker_url and self.docker_url is None:
            self.docker_url = settings.docker_url
        params = context["params"]
        cache = open_cache(settings.sql_alchemy_conn, self.log)
        if getattr(context["ti"], "try_number", None) != 1:
            cache.forget(self._key(context))  # no reader may take the previous try's row for this one's
        pins, refused = run_pins(context, self.pipeline, self.node.node, cache, self.log)
        pin = pinned(self.node.node, pins)
        if pin is not None:
            self.log.info("node pinned to execution %s", pin.execution.id)
            fire(self.node, When.STARTING, context, self.log, parameters=pin.execution.parameters)
            return self._publisher(context, cache).reuse(pin.execution, Kind.PINNED)
        image_id = in_background(self._image_id, "image-identity")  # answered while the ledger is read
        upstream = read_upstream(
            self.node,
            cache=cache,
            dag_id=self.dag_id,
            run_id=context["run_id"],
            mapped={n.task_id for n in self.pipeline.nodes.values() if n.mapped},
            pull=lambda task_id: context["ti"].xcom_pull(task_ids=task_id, key=XCOM_KEY),
            tolerated=self.rules.tolerated_upstream(self.task_id) if self.rules else (),
        )
        # the /valohai tree is laid out only for a node that runs (http inputs are fetched into it)
        work = WorkTree(temporary_dir(settings.work_dir, f"{self.dag_id}.{self.task_id}."))
        keep = settings.keep_work_dirs
        try:
            store = open_store(settings.artifact_store, settings.aws_conn_id, cache.blob_digests())
            resolved = resolve(
                self.node,
                params=params,
                variant=self.variant,
                upstream=upstream,
                inputs_dir=work.inputs,
                cache=cache,
                settings=settings,
                image_id=image_id,
                logger=self.log,
            )
            self._show_command(resolved, settings)
            fire(self.node, When.STARTING, context, self.log, parameters=resolved.parameters)
            run = resolved.details(settings.secret_env_patterns)
            job = _Job(context, settings, cache, store, resolved, work, run, refused)
            return self._act(job, reuse_on(params, self.pipeline.reuse_executions))
        except OutputError:
            keep = True  # the outputs of a run that cannot be recorded stay for the user to rescue
            raise
        finally:
            if not keep:
                shutil.rmtree(work.root, ignore_errors=True)

    def _show_command(self, resolved: Resolved, settings: Settings) -> None:
        """The command as the UI's rendered fields show it; secret parameter values masked there."""
        container.mask_secrets({}, resolved.parameters, settings.secret_env_patterns)
        self.command = [render_script(self.node.step, resolved.parameters)]
        self.template_fields = self.shown_fields

    def _act(self, job: _Job, reuse: bool) -> dict[str, Any] | None:
        context, settings, cache, resolved = job.context, job.settings, job.cache, job.resolved
        flight = Flight(
            cache.leases(settings.lease_seconds), resolved.fingerprint.digest, self.log, self._owner(context)
        )
        found = decide(
            resolved,
            step=self.node.step.name,
            reuse=reuse,
            cache=cache,
            store=job.store,
            flight=flight,
            logger=self.log,
        )
        if isinstance(found, Hit):
            return self._publisher(context, cache).reuse(found.execution, Kind.REUSED, job.run)
        if isinstance(found, Wait):
            self._wait(found, resolved, settings)
        assert isinstance(found, Miss)
        against = f" (compared with execution {found.nearest.id})" if found.nearest else ""
        self.log.info("not reused: %s%s", found.reason, against)
        with flight:
            if job.refused is not None:  # another node's pin is refused: no container starts
                refuse(job.refused, self.node.node, self.log)
            if flight.taken_over is not None:
                # the dead holder's container may still run here: stop it before ours starts
                stop_orphans(self.cli, flight.fingerprint, flight.taken_over, self.log)
            return self._run_and_record(job, flight.lease_holder, found.reason)

    def _image_id(self) -> str:
        if self.tls_ca_cert or self.tls_client_cert or self.tls_client_key:  # the hook knows TLS
            return image_id_with(self.cli, self.image, self.log)
        return image_id(self.docker_url, self.image, lambda: self.cli, self.log)

    def _run_pinned(self, context: Context, image_id: str, execution_id: str) -> Any:
        """The container, started from the image ID the fingerprint holds, never from the step's
        name looked up again; the step's image as written stays what execution.json and the UI show."""
        written, self.image = self.image, pin(self.cli, image_id, execution_id)
        try:
            return super().execute(context)
        finally:
            unpin(self.cli, self.image, self.log)
            self.image = written

    def _owner(self, context: Context) -> LeaseOwner:
        return owner_info(self._key(context), getattr(context["ti"], "hostname", None))

    def _key(self, context: Context) -> TaskKey:
        map_index = getattr(context["ti"], "map_index", -1)
        return TaskKey(self.dag_id, context["run_id"], self.task_id, map_index_of(map_index))

    def _publisher(self, context: Context, cache: Cache) -> Publisher:
        maps_onward = next(self.iter_mapped_dependants(), None) is not None
        return Publisher(
            self.node, context, cache, self._key(context), returns_value=maps_onward, logger=self.log
        )

    # -- running ----------------------------------------------------------------------------------
    def _run_and_record(self, job: _Job, holder: str, reason: str) -> dict[str, Any] | None:
        """``holder``: the lease holder labelling the container; ``reason``: why it was not reused."""
        context, cache, resolved, work = job.context, job.cache, job.resolved, job.work.create()
        stage_code(resolved.code_root or self.node.repository, resolved.code, work.repository)
        place_inputs(resolved.inputs, work.inputs, job.store)
        fetch_deferred(resolved.inputs, work.inputs, job.settings.aws_conn_id)
        stamps = stamp_inputs(work.inputs)
        try:
            execution = self._run(job, holder)
        except Exception as exc:  # the node failed: its node-error actions, then the failure itself
            lines = getattr(exc, "logs", None) or []
            self._hint_scope(lines, resolved)
            fire(
                self.node,
                When.ERROR,
                context,
                self.log,
                metadata=parse_metadata(lines),
                parameters=resolved.parameters,
            )
            raise
        published = Published.of(execution, Kind.RAN, self.node.node)
        published.check_publishable()
        changed = changed_inputs(work.inputs, stamps)
        if changed:
            self.log.warning(
                "input files were written while the container ran (%s): its outputs may come from other "
                "bytes than the fingerprint says, so execution %s is published but not recorded for reuse",
                ", ".join(changed),
                execution.id,
            )
            return self._publisher(context, cache).publish_unrecorded(published, reason=reason)
        return self._publisher(context, cache).record(execution, published, reason)

    def _hint_scope(self, lines: list[str], resolved: Resolved) -> None:
        scope = self.node.code_scope
        root = resolved.code_root or self.node.repository
        said = failure_hint(lines, root, resolved.code, self.node.step.name, scope.include)
        if said:
            self.log.error("%s", said)

    def _run(self, job: _Job, holder: str) -> Execution:
        context, settings, resolved, work = job.context, job.settings, job.resolved, job.work
        execution_id = str(uuid.uuid4())
        started = datetime.now(UTC)
        config = container.execution_json(self.node, self.image, self.dag_id, context["run_id"], execution_id)
        work.write_config(resolved.parameters, resolved.inputs, config)
        public, secret = container.split_secrets(resolved.variables, settings.secret_env_patterns)
        self.environment = {**public, **container_environment(execution_id)}
        add_private_environment(self, secret)
        container.mask_secrets(secret, {}, settings.secret_env_patterns)  # parameters: _show_command
        self.mounts = [*work.mounts()]
        where = (self.dag_id, context["run_id"], self.task_id)
        self.labels = {
            **(self.labels if isinstance(self.labels, dict) else {}),
            **container.labels(*where, execution_id, resolved.fingerprint.digest, holder),
        }
        clock = time.monotonic()  # self.command was rendered by _show_command
        lines = self._run_pinned(context, resolved.fingerprint.components["image"]["id"], execution_id)
        duration = time.monotonic() - clock
        printed = read_metadata(lines if isinstance(lines, list) else [lines or ""])
        return container.execution_record(
            self.node,
            resolved,
            job.run,
            execution_id=execution_id,
            where=where,
            started=started,
            duration_s=duration,
            outputs=collect_outputs(work.outputs, job.store),
            metadata=printed.last,
            metadata_series=printed.series,
        )
