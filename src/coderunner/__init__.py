"""Code Runner: run short untrusted Python and JavaScript snippets in a jail, get JSON back.

>>> import coderunner
>>> coderunner.run("def main(x, y):\n    return x * y", inputs={"x": 6, "y": 7}).result
42
"""

from ._agent import AgentNotConfigured, AgentRequest, AgentResult, LLMConfig, run_agent
from ._api import arun, run
from ._engine import Engine
from ._errors import (
    CodeRunnerError,
    ExamplesFailed,
    InvalidRequest,
    NotFound,
    SandboxUnavailable,
    Saturated,
    StoreUnavailable,
)
from ._library import Library
from ._models import (
    ErrorDetail,
    ErrorType,
    Example,
    ExecutionRecord,
    ExecutionRequest,
    ExecutionResult,
    ExecutionSummary,
    Language,
    Snippet,
    SnippetRef,
    SnippetSpec,
    SnippetSummary,
)
from ._settings import Settings
from ._version import __version__

__all__ = [
    "AgentNotConfigured",
    "AgentRequest",
    "AgentResult",
    "CodeRunnerError",
    "Engine",
    "ErrorDetail",
    "ErrorType",
    "Example",
    "ExamplesFailed",
    "ExecutionRecord",
    "ExecutionRequest",
    "ExecutionResult",
    "ExecutionSummary",
    "InvalidRequest",
    "LLMConfig",
    "Language",
    "Library",
    "NotFound",
    "SandboxUnavailable",
    "Saturated",
    "Settings",
    "Snippet",
    "SnippetRef",
    "SnippetSpec",
    "SnippetSummary",
    "StoreUnavailable",
    "__version__",
    "arun",
    "run",
    "run_agent",
]
