"""Trigger-time refusal of a conf that a pipeline DAG's run would ignore or its nodes would refuse.

Airflow validates a trigger's conf against each Param's schema and keeps any other key, which the run
then ignores: ``{"reuse_execution": false}`` (a typo) would reuse everything. This ASGI middleware,
added to the API server by the plugin (``fastapi_root_middlewares``), answers such a trigger with HTTP
400 and one line (:func:`~airflow_valohai_reuse.pipeline.options.refusal`: the unknown key with a
did-you-mean, a value the schema refuses, or one a node would refuse) before Airflow creates the run.
It sees every trigger of a DAG made from a valohai.yaml: ``POST /api/v2/dags/{dag_id}/dagRuns``, from
REST clients and from the UI's trigger form alike, and every backfill of one: ``POST /api/v2/backfills``
(and its ``/dry_run``) with a ``dag_run_conf``, which Airflow validates against the Params as a trigger's
conf and then gives to each of the backfill's runs.

It reads the DAG's Params from the serialized DAG, through the API server's own DAG bag (cached) and
metadata database; the DAG is one of ours when its Params include every run option. It speaks only to
a caller Airflow would let trigger the DAG: any other request (no token, no permission, another DAG, a
body that is not JSON) passes untouched, so Airflow answers it as it always does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from airflow_valohai_reuse.pipeline.options import NAMES, refusal
from airflow_valohai_reuse.settings import load_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TRIGGER = re.compile(r"/api/v2/dags/([^/]+)/dagRuns/?$")
_BACKFILL = re.compile(r"/api/v2/backfills(/dry_run)?/?$")
#: a trigger body larger than this is passed on unread (Airflow answers it)
_MAX_BODY = 1 << 20


class ConfCheck:
    """The middleware: every other request goes straight to ``app``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        trigger, backfill = _TRIGGER.search(path), _BACKFILL.search(path)
        if (trigger is None and backfill is None) or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body, replay = await _buffered(receive)
        refused = await _refusal(scope, unquote(trigger.group(1)) if trigger else None, body)
        if refused is None:
            await self.app(scope, replay, send)
            return
        answer = json.dumps({"detail": refused}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request's body (None: larger than :data:`_MAX_BODY`) and a ``receive`` that gives the app
    the whole request again."""
    chunks: list[Message] = []
    size = 0
    while True:
        message = await receive()
        chunks.append(message)
        size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body") or size > _MAX_BODY:
            break
    body = b"".join(m.get("body", b"") for m in chunks) if size <= _MAX_BODY else None

    async def replay() -> Message:
        return chunks.pop(0) if chunks else await receive()

    return body, replay


def _request(dag_id: str | None, body: bytes | None) -> tuple[str, dict[str, Any]] | None:
    """The DAG and the conf its runs would get: a trigger's ``conf`` (``dag_id`` from the path), or a
    backfill's ``dag_run_conf`` (``dag_id`` None: the body names it). None: nothing a run could ignore,
    or a body Airflow's validation answers."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if dag_id is None:
        dag_id, conf = data.get("dag_id"), data.get("dag_run_conf")
    else:
        conf = data.get("conf")
    if not isinstance(dag_id, str) or not conf or not isinstance(conf, dict):
        return None
    return dag_id, conf


async def _refusal(scope: Scope, dag_id: str | None, body: bytes | None) -> str | None:
    found = _request(dag_id, body)
    if found is None:
        return None
    dag_id, conf = found
    user = await _user(scope)
    if user is None:
        return None
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_refused, scope, dag_id, conf, user)


async def _user(scope: Scope) -> Any:
    """The caller as Airflow's own ``get_user`` finds it (bearer token, else the UI's cookie); None
    where it finds nobody."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from fastapi import HTTPException
    from starlette.requests import Request

    request = Request(scope)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        token = request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    try:
        return await resolve_user_from_token(token or None)
    except HTTPException:
        return None


def _refused(scope: Scope, dag_id: str, conf: dict[str, Any], user: Any) -> str | None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id, session=session))
        allowed = get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=details, user=user
        )
        dag = _dag_bag(scope).get_latest_version_of_dag(dag_id, session=session) if allowed else None
    if dag is None or not set(NAMES) <= set(dag.params):
        return None  # not ours, or not the caller's to trigger: Airflow answers
    schemas = {name: dag.params.get_param(name).schema for name in dag.params}
    return refusal(conf, schemas, load_settings().secret_env_patterns)


def _dag_bag(scope: Scope) -> Any:
    """The API server's DAG bag (its cache of deserialized DAGs), or a new one outside it."""
    bag = getattr(getattr(scope.get("app"), "state", None), "dag_bag", None)
    if bag is None:
        from airflow.api_fastapi.common.dagbag import create_dag_bag

        bag = create_dag_bag()
    return bag
