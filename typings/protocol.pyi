"""For mypy only: inside the jail, coderunner/_jail/protocol.py is the top-level module
`protocol` (see [tool.mypy] in pyproject.toml)."""

from coderunner._jail.protocol import *  # noqa: F403
