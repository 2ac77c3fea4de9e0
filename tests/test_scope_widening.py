"""The automatic code scope widens where code loads modules it never names, and a step starved by
its scope is told which file was left out and the include that adds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from valohai_yaml import parse

from airflow_valohai_reuse.fingerprint.loaders import loader_calls
from airflow_valohai_reuse.fingerprint.scope import CodeScope, scope_of
from airflow_valohai_reuse.fingerprint.scopehint import hint, outside_scope

PROJECT = {
    "prepare.py": "import pandas as pd\npd.read_csv('data/raw.csv')\n",
    "fit.py": "import pickle\nfrom utils.model import Model\npickle.dump(Model(), open('m', 'wb'))\n",
    "score.py": "import pickle\nmodel = pickle.load(open('/valohai/inputs/model/m', 'rb'))\n",
    "utils/__init__.py": "",
    "utils/model.py": "class Model: ...\n",
    "utils/thresholds.py": "import json\nLIMITS = json.load(open('configs/limits.json'))\n",
    "configs/limits.json": "{}",
    "data/raw.csv": "a\n1\n",
    "README.md": "",
    "requirements.txt": "pandas\n",
}


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path, sorted(PROJECT)


def _step(command: str):
    return parse([{"step": {"name": "s", "image": "x", "command": command}}]).steps["s"]


def _calls(source: str) -> list[str]:
    import ast

    return [name for _, name in loader_calls(ast.parse(source))]


def test_a_step_that_unpickles_takes_the_project_s_python_code_and_says_why(project):
    root, files = project
    scored = scope_of(root, files, _step("python score.py"), CodeScope())
    assert "utils/model.py" in scored.files  # the pickled class's module, which no import names
    assert "configs/limits.json" in scored.files  # named by code the widened scope brought in
    assert "data/raw.csv" in scored.files  # named by prepare.py, Python code of the project
    assert "README.md" not in scored.files
    assert "score.py calls pickle.load" in scored.widened
    assert "Python code (6 files)" in scored.widened


def test_a_step_that_loads_nothing_unnamed_keeps_its_narrow_scope(project):
    root, files = project
    prepared = scope_of(root, files, _step("python prepare.py"), CodeScope())
    assert prepared.files == ["data/raw.csv", "prepare.py", "requirements.txt"]
    assert prepared.widened == ""
    fitted = scope_of(root, files, _step("python fit.py"), CodeScope())  # dumps, never loads
    assert fitted.widened == ""
    assert "utils/thresholds.py" not in fitted.files


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import joblib\njoblib.load('m')", ["joblib.load"]),
        ("from joblib import load as restore\nrestore('m')", ["joblib.load"]),
        ("import pickle as pk\npk.Unpickler(f).load()", ["pickle.Unpickler"]),
        ("import torch\ntorch.load('m.pt')", ["torch.load"]),
        ("import pandas as pd\npd.read_pickle('f')", ["pandas.read_pickle"]),
        ("import importlib\nimportlib.import_module(name)", ["importlib.import_module"]),
        ("from importlib import import_module\nimport_module(name)", ["importlib.import_module"]),
        ("__import__(name)", ["__import__"]),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", ["numpy.load"]),
        ("import numpy as np\nnp.load('a.npy')", []),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=False)", []),
        ("import pickle\npickle.dumps(x)", []),
        ("import json\njson.load(f)", []),
    ],
)
def test_the_calls_that_load_modules_unnamed(source, expected):
    assert _calls(source) == expected


def test_a_path_joined_from_words_is_in_scope(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text("a: 1\n")
    (tmp_path / "train.py").write_text("import os\nopen(os.path.join('configs', 'train.yaml'))\n")
    files = ["configs/train.yaml", "train.py"]
    assert scope_of(tmp_path, files, _step("python train.py"), CodeScope()).files == files


def test_a_missing_module_of_the_project_is_named_with_its_include():
    log = [
        "Traceback (most recent call last):",
        '  File "/valohai/repository/score.py", line 2, in <module>',
        "ModuleNotFoundError: No module named 'utils'",
    ]
    missing = outside_scope(log, PROJECT, ["score.py", "requirements.txt"])
    assert missing == [("utils/", "utils/**")]
    words = hint("score", missing, ("configs/*.json",))
    assert "step 'score' failed on project files outside its code scope (utils/)" in words
    assert words.endswith('steps:\n  "score":\n    include: ["configs/*.json", "utils/**"]')


def test_a_missing_file_of_the_project_is_named_whatever_says_so():
    scoped = ["fit.py"]
    python = ["FileNotFoundError: [Errno 2] No such file or directory: 'configs/limits.json'"]
    absolute = ["python: can't open file '/valohai/repository/utils/model.py': [Errno 2] No such file"]
    shell = ["sh: 1: ./data/raw.csv: not found"]
    assert outside_scope(python, PROJECT, scoped) == [("configs/limits.json", "configs/limits.json")]
    assert outside_scope(absolute, PROJECT, scoped) == [("utils/model.py", "utils/model.py")]
    assert outside_scope(shell, PROJECT, scoped) == [("data/raw.csv", "data/raw.csv")]


def test_a_failure_that_is_not_the_scope_s_gets_no_hint():
    scoped = ["fit.py", "utils/__init__.py", "utils/model.py"]
    assert outside_scope(["ModuleNotFoundError: No module named 'torch'"], PROJECT, scoped) == []
    assert outside_scope(["ModuleNotFoundError: No module named 'utils'"], PROJECT, scoped) == []
    assert outside_scope(["No such file or directory: '/valohai/inputs/x/a.csv'"], PROJECT, scoped) == []
    assert outside_scope(["ValueError: bad input"], PROJECT, scoped) == []
