import glob
import json
import os

import pandas as pd

inputs = os.getenv("VH_INPUTS_DIR", "/valohai/inputs")
with open("/valohai/config/inputs.json") as f:
    files = json.load(f)["readings"]["files"]

frames = []
for path in sorted(glob.glob(os.path.join(inputs, "readings", "*.csv"))):
    frame = pd.read_csv(path, header=None, names=["value"])
    frame["sensor"] = os.path.basename(path).removesuffix(".csv")
    frames.append(frame)
readings = pd.concat(frames)
summary = readings.groupby("sensor")["value"].agg(["mean", "std", "count"]).round(3)

outputs = os.getenv("VH_OUTPUTS_DIR", "/valohai/outputs")
summary.to_csv(os.path.join(outputs, "summary.csv"))
with open(os.path.join(outputs, "summary.csv.metadata.json"), "w") as f:
    json.dump({"sensors": len(summary), "valohai.tags": ["summary"]}, f)
print(json.dumps({"files": len(files), "overall_mean": round(float(readings["value"].mean()), 3)}))
