"""A standardised multilayer perceptron for 8x8 digit features, trained one epoch at a time."""

from __future__ import annotations

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

CLASSES = np.arange(10)


class DigitsClassifier:
    def __init__(self, hidden_units: int, learning_rate: float, alpha: float, seed: int) -> None:
        self.scaler = StandardScaler()
        self.network = MLPClassifier(
            hidden_layer_sizes=(hidden_units,),
            activation="relu",
            learning_rate_init=learning_rate,
            alpha=alpha,
            random_state=seed,
        )
        self.epochs = 0

    def fit_epoch(self, features: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> float:
        """One pass over the training data in shuffled mini-batches; returns the last batch's loss."""
        if self.epochs == 0:
            self.scaler.fit(features)
        scaled = self.scaler.transform(features)
        order = np.random.default_rng(self.epochs).permutation(len(scaled))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            self.network.partial_fit(scaled[batch], labels[batch], classes=CLASSES)
        self.epochs += 1
        return float(self.network.loss_)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.network.predict(self.scaler.transform(features))

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))
