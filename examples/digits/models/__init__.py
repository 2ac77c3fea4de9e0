"""The project's model classes; train.py pickles them, evaluate.py loads them back."""

from models.classifier import DigitsClassifier

__all__ = ["DigitsClassifier"]
