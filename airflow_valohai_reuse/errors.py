"""Error classes that carry their data and say how to fix the problem."""

from __future__ import annotations

from typing import Any


def first_line(exc: BaseException) -> str:
    """An error's cause in one line, for a warning or a report: its message's first line, or its class."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ValohaiReuseError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ValohaiReuseError):
    """A setting of the ``[valohai_reuse]`` section is wrong; the run stops."""


class PipelineFileError(ValohaiReuseError):
    """A valohai.yaml that cannot become DAGs: names the file, the place and the problem."""

    def __init__(self, path: str, problem: str, where: str | None = None) -> None:
        self.path, self.problem, self.where = path, problem, where
        place = f" at {where}" if where else ""
        super().__init__(f"{path}{place}: {problem}")


class ParameterError(ValohaiReuseError):
    def __init__(self, name: str, value: Any, problem: str, *, shown: bool = True) -> None:
        self.name, self.value, self.problem = name, value, problem
        what = f"= {value!r}" if shown else "(its value not shown: a secret)"
        super().__init__(f"parameter {name!r} {what} {problem}")

    def hidden(self) -> ParameterError:
        """The same error for a parameter named like a secret: neither the value nor a problem that
        quotes it is shown."""
        problem = "is refused by its declaration" if str(self.value) in self.problem else self.problem
        return ParameterError(self.name, None, problem, shown=False)


class InputError(ValohaiReuseError):
    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__(f"input {name!r}: {problem}")


class ManualReuseError(ValohaiReuseError):
    """``reuse_nodes`` or ``reuse_from_run`` names an execution that cannot stand in for a node.

    ``problems``: node → what is wrong with its pin (``""``: the option itself is malformed);
    ``accepted``: the pins that were good, node → execution.
    """

    def __init__(self, problems: dict[str, str], accepted: dict[str, Any] | None = None) -> None:
        self.problems = dict(problems)
        self.accepted = dict(accepted or {})
        super().__init__("; ".join(self.problems.values()))

    def stops(self, node: str) -> bool:
        """Whether ``node`` cannot even decide: its own pin, or the whole option, is refused."""
        return node in self.problems or "" in self.problems

    def concerning(self, node: str) -> str:
        """One line for the task of ``node``: its own problem, or the others' that stop it too."""
        if node in self.problems:
            return self.problems[node]
        return f"not run: a pin of this run is refused: {self}"


class StoreError(ValohaiReuseError):
    """The artifact store cannot keep or give back an output."""


class OutputError(ValohaiReuseError):
    """A node's outputs cannot be recorded and published as they are; nothing was recorded."""
