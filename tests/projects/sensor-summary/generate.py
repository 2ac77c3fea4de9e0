import json
import os

import numpy as np

with open("/valohai/config/parameters.json") as f:
    parameters = json.load(f)

outputs = os.getenv("VH_OUTPUTS_DIR", "/valohai/outputs")
os.makedirs(os.path.join(outputs, "readings"), exist_ok=True)
rng = np.random.default_rng(7)
for sensor in range(parameters["sensors"]):
    values = rng.normal(20 + sensor, 1.5, size=parameters["readings"])
    np.savetxt(os.path.join(outputs, "readings", f"sensor-{sensor}.csv"), values, fmt="%.3f")
    print(json.dumps({"sensor": sensor, "mean": round(float(values.mean()), 3)}))
