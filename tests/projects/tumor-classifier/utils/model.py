import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class TumorClassifier:
    """Scaled logistic regression that answers with probabilities of a malignant tumour."""

    def __init__(self, C=1.0, max_iter=500):
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))

    def fit(self, features, labels):
        self.pipeline.fit(features, labels)
        return self

    def malignant_probability(self, features):
        return self.pipeline.predict_proba(features)[:, 0]

    def predict(self, features, threshold=0.5):
        return np.where(self.malignant_probability(features) >= threshold, 0, 1)
