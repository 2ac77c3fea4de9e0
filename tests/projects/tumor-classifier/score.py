import json
import os
import pickle

import pandas as pd
import valohai

with open(valohai.inputs("model").path(), "rb") as f:
    model = pickle.load(f)
test = pd.read_csv(valohai.inputs("test").path())
threshold = float(os.environ["DECISION_THRESHOLD"])
predicted = model.predict(test.drop(columns="target"), threshold=threshold)
accuracy = float((predicted == test["target"]).mean())

os.makedirs(os.environ["REPORT_DIR"], exist_ok=True)
report = os.path.join(os.environ["REPORT_DIR"], "score.json")
with open(report, "w") as f:
    json.dump({"accuracy": accuracy, "threshold": threshold}, f)
with open(f"{report}.metadata.json", "w") as f:
    json.dump({"accuracy": accuracy}, f)

with valohai.metadata.logger() as logger:
    logger.log("test_accuracy", accuracy)
    logger.log("threshold", threshold)
