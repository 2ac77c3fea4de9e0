import os
import pickle

import pandas as pd
import valohai

from utils.model import TumorClassifier

valohai.prepare(
    step="fit",
    default_parameters={"C": 1.0, "max_iter": 500},
    default_inputs={"train": "data/train.csv"},
)

data = pd.read_csv(valohai.inputs("train").path())
features, labels = data.drop(columns="target"), data["target"]
model = TumorClassifier(C=valohai.parameters("C").value, max_iter=valohai.parameters("max_iter").value)
model.fit(features, labels)

with valohai.metadata.logger() as logger:
    logger.log("train_accuracy", float((model.predict(features) == labels).mean()))
    logger.log("C", valohai.parameters("C").value)

execution = os.environ.get("VH_EXECUTION_ID", "local")
with open(valohai.outputs().path(f"model/model-{execution}.pkl"), "wb") as f:
    pickle.dump(model, f)
