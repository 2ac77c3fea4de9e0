"""The Valohai runtime contract on the host: the staged /valohai tree and its config files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.types import Mount

from airflow_valohai_reuse.runtime.inputs import FileRef

VALOHAI = "/valohai"


@dataclass(frozen=True)
class WorkTree:
    """One node run's folder on the Docker host, laid out as the container sees /valohai."""

    root: Path

    @property
    def repository(self) -> Path:
        return self.root / "repository"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def config(self) -> Path:
        return self.root / "config"

    def create(self) -> WorkTree:
        for path in (self.repository, self.inputs, self.outputs, self.config):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def mounts(self) -> list[Mount]:
        # Inputs and config are read-only: inputs may be hard links into the artifact store.
        return [
            Mount(f"{VALOHAI}/repository", str(self.repository), type="bind"),
            Mount(f"{VALOHAI}/inputs", str(self.inputs), type="bind", read_only=True),
            Mount(f"{VALOHAI}/outputs", str(self.outputs), type="bind"),
            Mount(f"{VALOHAI}/config", str(self.config), type="bind", read_only=True),
        ]

    def write_config(
        self, parameters: Mapping[str, Any], inputs: Mapping[str, list[FileRef]], execution: Mapping[str, Any]
    ) -> None:
        """The config files valohai-utils reads (``valohai.inputs()``, ``valohai.parameters()``), in
        Valohai's shape: inputs.json maps each input to ``{"files": [{name, path, size, uri,
        checksums}]}``, parameters.json maps each parameter to its typed value."""
        inputs_json = {
            name: {"files": [self._input_file(name, ref) for ref in refs]} for name, refs in inputs.items()
        }
        for filename, value in (
            ("parameters.json", dict(parameters)),
            ("inputs.json", inputs_json),
            ("execution.json", dict(execution)),
        ):
            (self.config / filename).write_text(json.dumps(value, indent=2, sort_keys=True))

    def _input_file(self, name: str, ref: FileRef) -> dict[str, Any]:
        placed = self.inputs / name / ref.name
        size = ref.size if ref.size is not None else (placed.stat().st_size if placed.is_file() else None)
        # Valohai's checksums are named digests; an ETag or an http(s) validator is none of them.
        checksum = ref.checksum or ""
        sha256 = len(checksum) == 64 and all(c in "0123456789abcdef" for c in checksum)
        return {
            "name": ref.name,
            "path": f"{VALOHAI}/inputs/{name}/{ref.name}",
            "size": size,
            "uri": ref.uri,
            "checksums": {"sha256": checksum} if sha256 else {},
        }


def container_environment(execution_id: str) -> dict[str, str]:
    return {
        "VH_CONFIG_DIR": f"{VALOHAI}/config",
        "VH_INPUTS_DIR": f"{VALOHAI}/inputs",
        "VH_OUTPUTS_DIR": f"{VALOHAI}/outputs",
        "VH_REPOSITORY_DIR": f"{VALOHAI}/repository",
        "VH_EXECUTION_ID": execution_id,
        "VH_JOB_ID": f"exec-{execution_id}",
        "PYTHONUNBUFFERED": "1",
    }
