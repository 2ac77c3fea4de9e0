"""Preprocess: scikit-learn's handwritten digits, split, augmented and turned into feature tables.

The slow step of the pipeline (each augmented image is redrawn on a finer grid): its outputs are
reused as long as this file, features.py and the parameters stay the same.
"""

import time

import numpy as np
import pandas as pd
import valohai
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from features import augmented, features

valohai.prepare(
    step="preprocess",
    default_parameters={"augment_copies": 4, "test_size": 0.25, "seed": 42},
)


def table(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(np.array([features(image) for image in images]))
    frame.columns = [f"f{column}" for column in frame.columns]
    frame["label"] = labels
    return frame


def main() -> None:
    started = time.monotonic()
    digits = load_digits()
    train_images, test_images, train_labels, test_labels = train_test_split(
        digits.images,
        digits.target,
        test_size=valohai.parameters("test_size").value,
        random_state=valohai.parameters("seed").value,
        stratify=digits.target,
    )
    rng = np.random.default_rng(valohai.parameters("seed").value)
    copies = valohai.parameters("augment_copies").value
    extra = [augmented(image, rng) for _ in range(copies) for image in train_images]
    images = np.concatenate([train_images, np.array(extra).reshape(-1, 8, 8)])
    train = table(images, np.tile(train_labels, copies + 1))
    test = table(test_images, test_labels)
    with valohai.output_properties() as properties:
        for name, frame in (("dataset/train.csv", train), ("dataset/test.csv", test)):
            frame.to_csv(valohai.outputs().path(name), index=False, float_format="%.5g")
            properties.add(file=name, properties={"rows": len(frame), "columns": frame.shape[1]})
    with valohai.metadata.logger() as logger:
        logger.log("train_rows", len(train))
        logger.log("test_rows", len(test))
        logger.log("features", train.shape[1] - 1)
        logger.log("seconds", round(time.monotonic() - started, 1))


if __name__ == "__main__":
    main()
