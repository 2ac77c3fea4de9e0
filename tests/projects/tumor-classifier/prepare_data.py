import json

import valohai
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

valohai.prepare(step="prepare-data", default_parameters={"test_fraction": 0.3})

frame = load_breast_cancer(as_frame=True).frame
train, test = train_test_split(
    frame, test_size=valohai.parameters("test_fraction").value, random_state=0, stratify=frame["target"]
)
for name, part in (("data/train.csv", train), ("data/test.csv", test)):
    path = valohai.outputs().path(name)
    part.to_csv(path, index=False)
    with open(f"{path}.metadata.json", "w") as sidecar:
        json.dump({"valohai.tags": ["tabular"], "rows": len(part)}, sidecar)

print(json.dumps({"train_rows": len(train), "test_rows": len(test)}))
