"""For mypy only: inside the jail, coderunner/_jail/python_runner.py is the top-level
module `python_runner` (see [tool.mypy] in pyproject.toml)."""

from coderunner._jail.python_runner import *  # noqa: F403
