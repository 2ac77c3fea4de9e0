"""Train: a multilayer perceptron (models/classifier.py) on the preprocessed digits.

Every epoch prints its loss and validation accuracy as Valohai metadata; the model is pickled to
model/model.pkl.
"""

import joblib
import pandas as pd
import valohai
from sklearn.model_selection import train_test_split

from models import DigitsClassifier

valohai.prepare(
    step="train",
    default_parameters={"epochs": 20, "hidden_units": 64, "learning_rate": 0.001, "alpha": 0.0001, "seed": 1},
    default_inputs={"dataset": "dataset/train.csv"},
)


def main() -> None:
    data = pd.read_csv(valohai.inputs("dataset").path())
    features, labels = data.drop(columns="label").to_numpy(), data["label"].to_numpy()
    seed = valohai.parameters("seed").value
    fit_x, val_x, fit_y, val_y = train_test_split(features, labels, test_size=0.1, random_state=seed)
    model = DigitsClassifier(
        hidden_units=valohai.parameters("hidden_units").value,
        learning_rate=valohai.parameters("learning_rate").value,
        alpha=valohai.parameters("alpha").value,
        seed=seed,
    )
    for epoch in range(1, valohai.parameters("epochs").value + 1):
        loss = model.fit_epoch(fit_x, fit_y)
        with valohai.metadata.logger() as logger:
            logger.log("epoch", epoch)
            logger.log("loss", round(loss, 4))
            logger.log("val_accuracy", round(model.accuracy(val_x, val_y), 4))
    path = valohai.outputs().path("model/model.pkl")
    joblib.dump(model, path)
    with valohai.output_properties() as properties:
        properties.add(file="model/model.pkl", properties={"epochs": model.epochs})


if __name__ == "__main__":
    main()
