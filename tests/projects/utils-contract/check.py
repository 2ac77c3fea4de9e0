"""Write down everything valohai-utils sees, for the test to compare with what the node was given."""

import json
from pathlib import Path

import valohai

valohai.prepare(
    step="check",
    default_parameters={"epochs": 1, "rate": 0.1, "label": "default", "verbose": False},
    default_inputs={"shards": [], "notes": "data/notes.txt"},
)

seen = {
    "parameters": {
        name: [valohai.parameters(name).value, type(valohai.parameters(name).value).__name__]
        for name in ("epochs", "rate", "label", "verbose")
    },
    "shards": sorted(valohai.inputs("shards").paths()),
    "notes": valohai.inputs("notes").path(),
    "notes_text": Path(valohai.inputs("notes").path()).read_text(),
    "output": valohai.outputs().path("seen.json"),
    "execution_id": valohai.execution().config.id,
}
with open(valohai.outputs().path("seen.json"), "w") as f:
    json.dump(seen, f)
with valohai.metadata.logger() as logger:
    logger.log("epochs", seen["parameters"]["epochs"][0])
    logger.log("shards", len(seen["shards"]))
