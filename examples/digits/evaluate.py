"""Evaluate: the trained model's metrics on the held-out test split, as Valohai metadata."""

import json

import joblib
import pandas as pd
import valohai
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

valohai.prepare(step="evaluate", default_inputs={"model": "model/model.pkl", "test": "dataset/test.csv"})


def main() -> None:
    model = joblib.load(valohai.inputs("model").path())
    data = pd.read_csv(valohai.inputs("test").path())
    labels = data["label"].to_numpy()
    predicted = model.predict(data.drop(columns="label").to_numpy())
    metrics = {
        "test_accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "test_f1_macro": round(float(f1_score(labels, predicted, average="macro")), 4),
        "test_rows": len(labels),
    }
    with valohai.metadata.logger() as logger:
        logger.log(**metrics)
    with open(valohai.outputs().path("report/metrics.json"), "w") as report:
        json.dump(metrics, report, indent=2)
    pd.DataFrame(confusion_matrix(labels, predicted)).to_csv(valohai.outputs().path("report/confusion.csv"))


if __name__ == "__main__":
    main()
