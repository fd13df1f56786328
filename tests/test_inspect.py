"""inspect_snippet: main's inputs and their JSON Schema, read from the source, never run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema.validators import Draft202012Validator

from coderunner._inspect import Inspection, Parameter, inspect_snippet
from coderunner._models import ErrorDetail, ErrorType, Language

PY = Language.PYTHON
JS = Language.JAVASCRIPT


def inspect(code: str, language: Language) -> Inspection:
    result = inspect_snippet(code, language)
    assert isinstance(result, Inspection), result
    Draft202012Validator.check_schema(result.input_schema)
    json.dumps(result.model_dump(exclude_unset=True), allow_nan=False)  # all of it is JSON
    return result


def py(code: str) -> Inspection:
    return inspect(code, PY)


def js(code: str) -> Inspection:
    return inspect(code, JS)


def props(result: Inspection) -> dict[str, Any]:
    properties: dict[str, Any] = result.input_schema["properties"]
    return properties


def prop(result: Inspection, name: str) -> dict[str, Any]:
    return props(result)[name]


def names(result: Inspection) -> list[str]:
    return [p.name for p in result.parameters]


def required(result: Inspection) -> list[str]:
    return list(result.input_schema.get("required", []))


def error(code: str, language: Language) -> ErrorDetail:
    result = inspect_snippet(code, language)
    assert isinstance(result, ErrorDetail), result
    assert result.type is ErrorType.SYNTAX_ERROR
    assert result.traceback is None
    return result


def py_hint(hint: str) -> dict[str, Any]:
    return prop(py(f"def main(x: {hint}):\n    pass\n"), "x")


def js_doc_type(type_text: str) -> dict[str, Any]:
    return prop(js(f"/** @param {{{type_text}}} x */\nfunction main(x) {{}}"), "x")


def js_default(text: str) -> Parameter:
    return js(f"function main(x = {text}) {{}}").parameters[0]


# ---- the examples of the brief, exactly ----------------------------------------------------


def test_python_example_exactly() -> None:
    result = py('def main(rows: list[dict], country: str = "US"):\n    return rows\n')
    assert result.has_main
    assert result.input_schema == {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"type": "object"}},
            "country": {"type": "string", "default": "US"},
        },
        "required": ["rows"],
        "additionalProperties": False,
    }
    assert [p.model_dump(exclude_unset=True) for p in result.parameters] == [
        {"name": "rows", "required": True, "annotation": "list[dict]"},
        {"name": "country", "required": False, "default": "US", "annotation": "str"},
    ]


EXPECTED_ORDERS_RATE = {
    "type": "object",
    "properties": {"orders": {}, "rate": {"type": "number", "default": 1}},
    "required": ["orders"],
    "additionalProperties": False,
}


def test_javascript_example_exactly() -> None:
    result = js("function main(orders, rate = 1) {\n  return orders.length * rate;\n}")
    assert result.input_schema == EXPECTED_ORDERS_RATE
    assert [(p.name, p.required, p.has_default, p.default) for p in result.parameters] == [
        ("orders", True, False, None),
        ("rate", False, True, 1),
    ]


def test_javascript_destructured_example_exactly() -> None:
    result = js("function main({ orders, rate = 1 }) {\n  return orders.length * rate;\n}")
    assert result.input_schema == EXPECTED_ORDERS_RATE
    assert names(result) == ["orders", "rate"]


def test_language_as_a_plain_string() -> None:
    result = inspect_snippet("def main(a):\n    pass", "python")  # type: ignore[arg-type]
    assert isinstance(result, Inspection) and names(result) == ["a"]


def test_the_readme_examples() -> None:
    python = py(
        "def main(orders, rate=1.0):\n"
        '    return {"total": round(sum(o["amount"] for o in orders) * rate, 2)}\n'
    )
    assert python.input_schema == {
        "type": "object",
        "properties": {"orders": {}, "rate": {"type": "number", "default": 1.0}},
        "required": ["orders"],
        "additionalProperties": False,
    }
    javascript = js(
        "function main(orders, rate = 1) {  // or async function, or const main = (...) =>\n"
        "  return { total: orders.reduce((s, o) => s + o.amount, 0) * rate };\n"
        "}\n"
    )
    assert javascript.input_schema == EXPECTED_ORDERS_RATE


# ---- script style ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "",
        "1 + 1",
        "x = inputs['a']\nx * 2",
        "def helper(a):\n    return a\nhelper(1)",
        "if True:\n    def main(a):\n        return a\n",  # only module-level defs count
        "class A:\n    def main(self, a):\n        pass\n",
        "def outer():\n    def main(a):\n        pass\n",
        "main = 3",  # not callable: the runner runs it as a script
        "main = [1, 2]",
        "main = None",
        "def main(a):\n    pass\nmain = 'shadowed'",
        "'def main(a): pass'",
        "# def main(a):\n1",
    ],
)
def test_python_script_style(code: str) -> None:
    result = py(code)
    assert result == Inspection(has_main=False, parameters=[], input_schema={"type": "object"})


@pytest.mark.parametrize(
    "code",
    [
        "",
        "return inputs.a + inputs.b",
        "// function main(a) {}\nreturn 1",
        "/* function main(a) {} */ return 1",
        "const s = 'function main(a) {}'; return s",
        'const s = "const main = (a) => a"; return s',
        "const s = `function main(a) {}`; return s",
        "const s = `${'x'} function main(a) {}`; return s",
        "const r = /function main\\(/; return r.source",
        "function outer() { function main(a) {} }",
        "class A { main(a) { return a } }",
        "const o = { main(a) { return a } }; return o",
        "const o = { main: (a) => a }; return o",
        "if (x) { const main = (a) => a }",
        "function* main(a) { yield a }",  # generators are not recognised
        "helper.main = function (a) {}",
        "const mainly = (a) => a",
        "const x = function main(a) {}",  # a named function expression binds no main
        "let main2 = 1",
    ],
)
def test_javascript_script_style(code: str) -> None:
    result = js(code)
    assert result == Inspection(has_main=False, parameters=[], input_schema={"type": "object"})


# ---- Python: finding main --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("def main(a, b):\n    pass", ["a", "b"]),
        ("async def main(a, b=1):\n    pass", ["a", "b"]),
        ("def main(a):\n    pass\ndef main(b, c):\n    pass", ["b", "c"]),  # the last wins
        ("def main(a):\n    pass\nasync def main(z):\n    pass", ["z"]),
        ("main = lambda x, y=2: x + y", ["x", "y"]),
        ("main: object = lambda q: q", ["q"]),
        ("def helper(h1, h2=0):\n    pass\nmain = helper", ["h1", "h2"]),
        ("helper = lambda w: w\nmain = helper", ["w"]),
        ("import functools\n@functools.lru_cache\ndef main(d):\n    pass", ["d"]),
        ("x = 1\nif x:\n    pass\ndef main():\n    pass", []),
        ("main = 3\ndef main(late):\n    pass", ["late"]),
        ("from __future__ import annotations\ndef main(a: Later) -> None:\n    pass", ["a"]),
    ],
)
def test_python_main_is_found(code: str, expected: list[str]) -> None:
    result = py(code)
    assert result.has_main and names(result) == expected


@pytest.mark.parametrize(
    "code",
    [
        "import functools\nmain = functools.partial(print, 1)",
        "from helpers import main",
        "import main",
        "class main:\n    def __init__(self, a):\n        pass",
        "main, other = (lambda a: a), 1",
        "def f(a):\n    pass\nmain = f if True else f",
    ],
)
def test_python_main_with_unknown_parameters(code: str) -> None:
    result = py(code)
    assert result == Inspection(has_main=True, parameters=[], input_schema={"type": "object"})


@pytest.mark.parametrize(
    "code",
    [
        "def main(a, b=1, *args, c, d=None, **kw):\n    pass",
        "def main(p, /, q, *, r=2):\n    pass",
        "async def main(x=[1], y=(2, 3), z={'k': 'v'}):\n    pass",
        "main = lambda a, b=DEFAULT: a",
        "DEFAULT = 3\ndef helper(a, b=DEFAULT):\n    pass\nmain = helper",
        "def main():\n    pass",
    ],
)
def test_python_parameters_agree_with_the_runner(code: str) -> None:
    """What inspect says is required is exactly what the runner's bind_inputs demands."""
    from coderunner._jail.python_runner import InputProblem, bind_inputs

    result = py(code)
    namespace: dict[str, Any] = {"DEFAULT": 0}
    exec(compile(code, "<fixture>", "exec"), namespace)  # the test's own fixture, not inspect
    main = namespace["main"]
    everything = {p.name: 0 for p in result.parameters}
    bind_inputs(main, everything)
    for p in result.parameters:
        without = {k: v for k, v in everything.items() if k != p.name}
        if p.required:
            with pytest.raises(InputProblem, match=repr(p.name)):
                bind_inputs(main, without)
        else:
            bind_inputs(main, without)


def test_python_main_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = (
        f"open({str(marker)!r}, 'w').write('x')\n"
        "raise SystemExit(3)\n"
        f"def main(a=open({str(marker)!r}, 'w')):\n"
        "    import os\n"
        "    os._exit(1)\n"
    )
    result = py(code)
    assert names(result) == ["a"] and not result.parameters[0].required
    assert not marker.exists()


# ---- Python: parameter kinds -----------------------------------------------------------------


def test_python_parameter_kinds() -> None:
    result = py("def main(p, /, q=1, *args, k, kd=2, **kwargs):\n    pass")
    assert names(result) == ["p", "q", "k", "kd"]
    assert [p.required for p in result.parameters] == [True, False, True, False]
    assert required(result) == ["p", "k"]
    assert result.input_schema["additionalProperties"] is True


def test_python_positional_only_defaults_line_up() -> None:
    result = py("def main(a, b=1, /, c=2):\n    pass")
    assert [(p.name, p.required, p.default) for p in result.parameters] == [
        ("a", True, None),
        ("b", False, 1),
        ("c", False, 2),
    ]


@pytest.mark.parametrize(
    ("signature", "open_"),
    [("a", False), ("*args", False), ("a, *args", False), ("**kw", True), ("*a, **kw", True)],
)
def test_python_additional_properties(signature: str, open_: bool) -> None:
    schema = py(f"def main({signature}):\n    pass").input_schema
    assert schema["additionalProperties"] is open_


def test_python_main_without_parameters_takes_no_inputs() -> None:
    result = py("def main():\n    return 1")
    assert result.has_main and result.parameters == []
    assert result.input_schema == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    assert not Draft202012Validator(result.input_schema).is_valid({"x": 1})


# ---- Python: defaults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("default", "value", "schema"),
    [
        ("1", 1, {"type": "number"}),
        ("-1.5", -1.5, {"type": "number"}),
        ("'US'", "US", {"type": "string"}),
        ("True", True, {"type": "boolean"}),
        ("None", None, {}),
        ("[]", [], {"type": "array"}),
        ("[1, 'a', None]", [1, "a", None], {"type": "array"}),
        ("(1, 2)", [1, 2], {"type": "array"}),  # a tuple is a JSON array
        ("{'a': {'b': [1]}}", {"a": {"b": [1]}}, {"type": "object"}),
        ("{}", {}, {"type": "object"}),
    ],
)
def test_python_json_defaults(default: str, value: Any, schema: dict[str, Any]) -> None:
    result = py(f"def main(x={default}):\n    pass")
    p = result.parameters[0]
    assert p.has_default and p.default == value and not p.required
    assert prop(result, "x") == {**schema, "default": value}


@pytest.mark.parametrize(
    "default",
    [
        "DEFAULT",
        "len('abc')",
        "datetime.now()",
        "{1, 2}",  # a set
        "b'x'",  # bytes
        "1j",
        "1e999",  # infinity
        "{1: 'a'}",  # a non-string key
        "[1, {2}]",
        "lambda: 1",
        "'\\ud800'",  # a lone surrogate
    ],
)
def test_python_non_json_defaults(default: str) -> None:
    result = py(f"def main(x={default}):\n    pass")
    p = result.parameters[0]
    assert not p.required and not p.has_default and p.default is None
    assert "default" not in p.model_dump(exclude_unset=True)
    assert prop(result, "x") == {}
    assert required(result) == []


def test_python_none_default_widens_the_hint() -> None:
    result = py("def main(a: int = None, b: int | None = None, c: 'str' = None):\n    pass")
    assert prop(result, "a") == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert prop(result, "b") == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert prop(result, "c") == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    dumped = result.parameters[0].model_dump(exclude_unset=True)
    assert dumped == {"name": "a", "required": False, "default": None, "annotation": "int"}


def test_python_hint_wins_over_the_default_type() -> None:
    assert prop(py("def main(x: float = 1):\n    pass"), "x") == {"type": "number", "default": 1}
    assert prop(py("def main(x: Any = 'a'):\n    pass"), "x") == {"default": "a"}


# ---- Python: type hints ----------------------------------------------------------------------

OBJ = {"type": "object"}
STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
NULL = {"type": "null"}


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        ("int", INT),
        ("float", NUM),
        ("str", STR),
        ("bool", {"type": "boolean"}),
        ("None", NULL),
        ("list", {"type": "array"}),
        ("list[int]", {"type": "array", "items": INT}),
        ("List[str]", {"type": "array", "items": STR}),
        ("typing.List[str]", {"type": "array", "items": STR}),
        ("t.Sequence[float]", {"type": "array", "items": NUM}),
        ("collections.abc.Sequence[int]", {"type": "array", "items": INT}),
        ("Iterable[str]", {"type": "array", "items": STR}),
        ("set[str]", {"type": "array", "items": STR}),
        ("list[Any]", {"type": "array"}),
        ("list[list[int]]", {"type": "array", "items": {"type": "array", "items": INT}}),
        ("tuple", {"type": "array"}),
        ("tuple[int, ...]", {"type": "array", "items": INT}),
        (
            "tuple[int, str]",
            {"type": "array", "prefixItems": [INT, STR], "minItems": 2, "maxItems": 2},
        ),
        ("tuple[()]", {"type": "array", "maxItems": 0}),
        ("dict", OBJ),
        ("Dict", OBJ),
        ("dict[str, int]", {"type": "object", "additionalProperties": INT}),
        (
            "Mapping[str, list[str]]",
            {"type": "object", "additionalProperties": {"type": "array", "items": STR}},
        ),
        ("typing.Dict[str, Any]", OBJ),
        ("int | None", {"anyOf": [INT, NULL]}),
        ("Optional[str]", {"anyOf": [STR, NULL]}),
        ("typing.Optional[str]", {"anyOf": [STR, NULL]}),
        ("Union[int, str]", {"anyOf": [INT, STR]}),
        ("Union[int, str, None]", {"anyOf": [INT, STR, NULL]}),
        ("int | str | None", {"anyOf": [INT, STR, NULL]}),
        ("Optional[Union[int, str]]", {"anyOf": [INT, STR, NULL]}),
        ("int | int", INT),
        ("int | Any", {}),
        ("Literal['a', 1]", {"enum": ["a", 1]}),
        ("Literal['only']", {"const": "only"}),
        ("Literal['a'] | Literal['b']", {"enum": ["a", "b"]}),
        ("Literal[True, None, -1]", {"enum": [True, None, -1]}),
        ("Literal['a'] | None", {"anyOf": [{"const": "a"}, NULL]}),
        ("Literal['a', None]", {"enum": ["a", None]}),
        ("Literal[Color.RED]", {}),
        ("Any", {}),
        ("typing.Any", {}),
        ("object", {}),
        ("bytes", {}),
        ("datetime.datetime", {}),
        ("np.ndarray", {}),
        ("Unknown", {}),
        ("Callable[[int], int]", {}),
        ("'int'", INT),
        ("'list[str] | None'", {"anyOf": [{"type": "array", "items": STR}, NULL]}),
        ("list['int']", {"type": "array", "items": INT}),
        ("'not a ( type'", {}),
        ("Annotated[int, 'the count']", INT),
        ("typing_extensions.Annotated[str, 1]", STR),
    ],
)
def test_python_hints(hint: str, schema: dict[str, Any]) -> None:
    assert py_hint(hint) == schema


def test_python_annotation_text_is_the_source() -> None:
    result = py("def main(a: 'list[int]', b: typing.Optional[ int ], c=1):\n    pass")
    assert [p.annotation for p in result.parameters] == [
        "list[int]",
        "typing.Optional[ int ]",
        None,
    ]


def test_python_typed_dict() -> None:
    code = """
from typing import TypedDict, NotRequired, Required
import typing as t

class Address(TypedDict):
    city: str
    zip: NotRequired[str]

class Person(TypedDict, total=False):
    name: Required[str]
    age: int
    address: Address
    tags: "list[str]"

def main(person: Person, people: list[Person]):
    pass
"""
    result = py(code)
    person = {
        "type": "object",
        "properties": {
            "name": STR,
            "age": INT,
            "address": {
                "type": "object",
                "properties": {"city": STR, "zip": STR},
                "required": ["city"],
            },
            "tags": {"type": "array", "items": STR},
        },
        "required": ["name"],
    }
    assert prop(result, "person") == person
    assert prop(result, "people") == {"type": "array", "items": person}
    validator = Draft202012Validator(result.input_schema)
    assert validator.is_valid({"person": {"name": "Ada"}, "people": []})
    assert validator.is_valid(
        {"person": {"name": "Ada", "address": {"city": "X"}}, "people": [{"name": "B"}]}
    )
    assert not validator.is_valid({"person": {"age": 3}, "people": []})  # no name
    assert not validator.is_valid({"person": {"name": "A", "address": {}}, "people": []})
    assert not validator.is_valid({"person": {"name": 1}, "people": []})


def test_python_typed_dict_inheritance_functional_and_prefixes() -> None:
    code = """
import typing
import typing_extensions as te
Base = typing.TypedDict("Base", {"id": int, "note": str}, total=False)
class Child(Base):
    name: str
class Loose(te.TypedDict, total=False):
    a: int
    b: "te.Required[int]"
def main(c: Child, l: Loose):
    pass
"""
    result = py(code)
    assert prop(result, "c") == {
        "type": "object",
        "properties": {"id": INT, "note": STR, "name": STR},
        "required": ["name"],
    }
    assert prop(result, "l") == {
        "type": "object",
        "properties": {"a": INT, "b": INT},
        "required": ["b"],
    }


def test_python_recursive_typed_dict_stops() -> None:
    code = """
from typing import TypedDict, Optional
class Node(TypedDict):
    value: int
    next: Optional["Node"]
def main(head: Node):
    pass
"""
    head = prop(py(code), "head")
    assert head["properties"]["value"] == INT
    assert head["properties"]["next"] == {}  # the recursion is not followed


def test_python_aliases_newtype_and_classes() -> None:
    code = """
from dataclasses import dataclass
from enum import Enum
from typing import NewType, TypeAlias
Row = dict[str, int]
Rows: TypeAlias = "list[Row]"
UserId = NewType("UserId", int)
@dataclass
class Point:
    x: int
class Color(str, Enum):
    RED = "red"
def main(r: Row, rs: Rows, u: UserId, p: Point, c: Color, ps: list[Point]):
    pass
"""
    result = py(code)
    row = {"type": "object", "additionalProperties": INT}
    assert prop(result, "r") == row
    assert prop(result, "rs") == {"type": "array", "items": row}
    assert prop(result, "u") == INT
    assert prop(result, "p") == {}  # the runner passes a plain dict, not a Point
    assert prop(result, "c") == {}
    assert prop(result, "ps") == {"type": "array"}


def test_python_typing_imported_under_other_names() -> None:
    code = """
import typing as tp
import collections.abc as cabc
from typing import List as L, Optional as Opt
def main(a: tp.List[int], b: L[str], c: Opt[bool], d: cabc.Mapping[str, int], e: other.List):
    pass
"""
    assert props(py(code)) == {
        "a": {"type": "array", "items": INT},
        "b": {"type": "array", "items": STR},
        "c": {"anyOf": [{"type": "boolean"}, NULL]},
        "d": {"type": "object", "additionalProperties": INT},
        "e": {},
    }


def test_python_shadowed_builtin_class_is_unknown() -> None:
    assert prop(py("class str:\n    pass\ndef main(a: str):\n    pass"), "a") == {}


def test_python_self_referential_alias_stops() -> None:
    result = py("Json = dict[str, 'Json'] | list['Json'] | str\ndef main(j: Json):\n    pass")
    assert prop(result, "j")["anyOf"][-1] == STR


# ---- Python: docstrings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "docstring",
    [
        # Google
        """Total the orders.

        Args:
            orders (list[dict]): The orders
                to total.
            rate: A rate.

        Returns:
            The total.
        """,
        # Google, "Arguments:" and no types
        """Arguments:
            orders: The orders to total.
            rate: A rate.
        """,
        # Sphinx
        """Total the orders.

        :param list orders: The orders
            to total.
        :param rate: A rate.
        :returns: The total.
        """,
        # NumPy
        """Total the orders.

        Parameters
        ----------
        orders : list of dict
            The orders to total.
        rate : float, optional
            A rate.

        Returns
        -------
        float
        """,
    ],
)
def test_python_docstring_descriptions(docstring: str) -> None:
    code = f'def main(orders, rate=1.0, other=None):\n    """{docstring}"""\n    return 1\n'
    result = py(code)
    assert prop(result, "orders")["description"] == "The orders to total."
    assert prop(result, "rate") == {"type": "number", "default": 1.0, "description": "A rate."}
    assert "description" not in prop(result, "other")


def test_python_docstring_kwargs_and_unknown_names_are_ignored() -> None:
    code = '''def main(a, **kwargs):
    """Do.

    Args:
        a: first
        missing: not a parameter
        **kwargs: the rest
    """
'''
    result = py(code)
    assert prop(result, "a") == {"description": "first"}
    assert set(props(result)) == {"a"}


# ---- Python: syntax errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line", "name"),
    [
        ("def main(:\n    pass", 1, "SyntaxError"),
        ("x = 1\ny = (\n", 2, "SyntaxError"),
        ("x = 1\n\ndef main(a)\n    pass", 3, "SyntaxError"),
        ("def main(a):\nreturn a", 2, "IndentationError"),
        ("x = 'abc", 1, "SyntaxError"),
        ("a = 1\nb = 2\n  c = 3", 3, "IndentationError"),
        ("def main(a, b=1, c):\n    pass", 1, "SyntaxError"),
    ],
)
def test_python_syntax_errors(code: str, line: int, name: str) -> None:
    detail = error(code, PY)
    assert detail.line == line
    assert detail.name == name
    assert detail.message


def test_python_null_byte_is_a_syntax_error() -> None:
    detail = error("x = 1\0", PY)
    assert detail.message


def test_python_syntax_error_matches_the_runner() -> None:
    from coderunner._jail import python_runner

    code = "x = 1\ndef main(a\n"
    detail = error(code, PY)
    header = python_runner.run_snippet(code, {})
    assert header["error"]["type"] == "syntax_error"
    assert header["error"]["line"] == detail.line
    assert header["error"]["message"] == detail.message
    assert header["error"]["name"] == detail.name


# ---- JavaScript: finding main ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("function main(a, b) { return a + b }", ["a", "b"]),
        ("async function main(a, b) {}", ["a", "b"]),
        ("async  function\tmain (a) {}", ["a"]),
        ("function main() { return 1 }", []),
        ("const main = (a, b) => a + b", ["a", "b"]),
        ("let main = (a) => { return a }", ["a"]),
        ("var main = a => a", ["a"]),
        ("const main = async (a, b) => a", ["a", "b"]),
        ("const main = async a => a", ["a"]),
        ("const main = function (a, b) {}", ["a", "b"]),
        ("const main = async function named(a) {}", ["a"]),
        ("const main = () => 1", []),
        ("export function main(a) {}", ["a"]),
        ("export default async function main(a) {}", ["a"]),
        ("export const main = (a) => a", ["a"]),
        ("function main(a) {}\nfunction main(b) {}", ["b"]),  # the last one wins
        ("const x = 1\nfunction main(a) {}", ["a"]),
        ("const x = 1;function main(a) {}", ["a"]),
        ("if (x) {}\nconst main = (a) => a", ["a"]),
        ("#!/usr/bin/env node\nfunction main(a) {}", ["a"]),
        ("/* c */ function main(a) {} // c", ["a"]),
        ("function helper(h) {}\n\nfunction main(m) { return helper(m) }", ["m"]),
        ("function main(\n  a, // the a\n  b /* the b */\n) {}", ["a", "b"]),
        ("const main = (a,) => a", ["a"]),
        ("function main(a, b,) {}", ["a", "b"]),
    ],
)
def test_javascript_main_is_found(code: str, expected: list[str]) -> None:
    result = js(code)
    assert result.has_main and names(result) == expected


@pytest.mark.parametrize(
    "code",
    [
        "const main = makeMain()",
        "const main = helpers.main",
        "let main = 5",
        "const main = (foo)",
        "const main = function* (a) {}",
        "function main([a, b]) {}",  # one destructured array: it would get the inputs object
        "const main = ([a]) => a",
    ],
)
def test_javascript_main_with_unknown_parameters(code: str) -> None:
    result = js(code)
    assert result == Inspection(has_main=True, parameters=[], input_schema={"type": "object"})


@pytest.mark.parametrize(
    "code",
    [
        "// function main(wrong) {}\nfunction main(right) {}",
        "/* function main(wrong) {} */\nfunction main(right) {}",
        "/** @param wrong\n function main(wrong) {} */\nfunction main(right) {}",
        "const a = 'function main(wrong) {'\nfunction main(right) {}",
        'const a = "function main(wrong) {"\nfunction main(right) {}',
        "const a = `function main(wrong) {`\nfunction main(right) {}",
        "const a = `${`function main(wrong) {`}`\nfunction main(right) {}",
        "const a = `${ {b: '}'}.b } function main(wrong) {`\nfunction main(right) {}",
        "const r = /function main\\(wrong\\) {/\nfunction main(right) {}",
        "const r = /[/]function main(wrong) {/g\nfunction main(right) {}",
        "function main(right) {}\nclass A { main(wrong) {} }",
        "function main(right) {}\nconst o = { main: function (wrong) {} }",
        "function main(right) { function main(wrong) {} }",
        "function main(right) {}\nfoo(function main(wrong) {})",
        "function main(right) {}\nconst x = function main(wrong) {}",
    ],
)
def test_javascript_main_outside_code_is_ignored(code: str) -> None:
    assert names(js(code)) == ["right"]


# ---- JavaScript: tricky parameter lists ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('function main(a, b = "x)") {}', [("a", True), ("b", False)]),
        ("function main(a, b = 'x,y', c) {}", [("a", True), ("b", False), ("c", True)]),
        ("function main(a = `)${ {x: '}'}.x })`, b) {}", [("a", False), ("b", True)]),
        ("function main(a = `${`${'('}`}`, b) {}", [("a", False), ("b", True)]),
        ("function main(cb = (x) => x, b) {}", [("cb", False), ("b", True)]),
        ("function main(cb = (x, y) => { return [x, y] }, b) {}", [("cb", False), ("b", True)]),
        ("function main(cb = x => x, b) {}", [("cb", False), ("b", True)]),
        ("function main(a = f(1, g(2, 3)), b) {}", [("a", False), ("b", True)]),
        ("function main(a = [1, [2, 3]], b = {c: {d: 1}}) {}", [("a", False), ("b", False)]),
        ("function main(a /* = 1 */, b) {}", [("a", True), ("b", True)]),
        ("function main(a = 1 // ), c\n, b) {}", [("a", False), ("b", True)]),
        ("function main(a = /[)]/g, b) {}", [("a", False), ("b", True)]),
        ("function main(a = x / 2, b) {}", [("a", False), ("b", True)]),
        ("function main(a = (1 + 2) / 3, b) {}", [("a", False), ("b", True)]),
        ("function main(a = b == c, d) {}", [("a", False), ("d", True)]),
        ("function main(a = b ? c : d, e) {}", [("a", False), ("e", True)]),
        ("function main(a = new Date(), e) {}", [("a", False), ("e", True)]),
        ("const main = async ({ a }, b = 'x') => a", [("a", True), ("b", False)]),
    ],
)
def test_javascript_tricky_parameter_lists(code: str, expected: list[tuple[str, bool]]) -> None:
    assert [(p.name, p.required) for p in js(code).parameters] == expected


def test_javascript_rest_parameter_opens_the_schema() -> None:
    result = js("function main(a, ...rest) {}")
    assert names(result) == ["a"]
    assert result.input_schema["additionalProperties"] is True


# ---- JavaScript: default literals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "schema"),
    [
        ("1", 1, NUM),
        ("-1", -1, NUM),
        ("+2", 2, NUM),
        ("1.5", 1.5, NUM),
        ("-0.25", -0.25, NUM),
        (".5", 0.5, NUM),
        ("1e3", 1000, NUM),
        ("1.0", 1, NUM),
        ("0x1F", 31, NUM),
        ("0o17", 15, NUM),
        ("0b101", 5, NUM),
        ("1_000", 1000, NUM),
        ('"US"', "US", STR),
        ("'US'", "US", STR),
        ("''", "", STR),
        ('"a\\"b\\n\\u0041\\x41\\u{1F600}"', 'a"b\nAA\U0001f600', STR),
        ("'\\uD83D\\uDE00'", "\U0001f600", STR),
        ("`plain`", "plain", STR),
        ("`two\nlines`", "two\nlines", STR),
        ("true", True, {"type": "boolean"}),
        ("false", False, {"type": "boolean"}),
        ("null", None, {}),
        ("[]", [], {"type": "array"}),
        ("[1, 'a', [true, null],]", [1, "a", [True, None]], {"type": "array"}),
        ("{}", {}, OBJ),
        (
            "{a: 1, 'b': [2], \"c\": {d: null}, 3: 'x',}",
            {"a": 1, "b": [2], "c": {"d": None}, "3": "x"},
            OBJ,
        ),
        ('{ "if": -1 }', {"if": -1}, OBJ),
    ],
)
def test_javascript_json_defaults(text: str, value: Any, schema: dict[str, Any]) -> None:
    result = js(f"function main(x = {text}) {{}}")
    p = result.parameters[0]
    assert p.has_default and p.default == value and not p.required
    assert type(p.default) is type(value)
    assert prop(result, "x") == {**schema, "default": value}


@pytest.mark.parametrize(
    "text",
    [
        "undefined",
        "DEFAULT",
        "NaN",
        "Infinity",
        "-Infinity",
        "10n",
        "1e400",
        "017",
        "`${x}`",
        "[1,,2]",
        "[...xs]",
        "{a}",
        "{[k]: 1}",
        "{...o}",
        "{a: b}",
        "f()",
        "-'a'",
        "--1",
        "1 + 1",
        "(1)",
        "'\\uD800'",
        "() => 1",
        "/re/",
        "new Map()",
    ],
)
def test_javascript_non_json_defaults(text: str) -> None:
    result = js(f"function main(x = {text}) {{}}")
    p = result.parameters[0]
    assert not p.required and not p.has_default
    assert prop(result, "x") == {}


# ---- JavaScript: destructuring ---------------------------------------------------------------


def test_javascript_destructured_object() -> None:
    code = "function main({ a, b = 2, c: renamed, 'd-e': de, f: { g } = {}, h: [i], [k]: v }) {}"
    result = js(code)
    assert names(result) == ["a", "b", "c", "d-e", "f", "h"]
    assert required(result) == ["a", "c", "d-e", "h"]
    assert props(result) == {
        "a": {},
        "b": {"type": "number", "default": 2},
        "c": {},
        "d-e": {},
        "f": {"type": "object", "default": {}},
        "h": {"type": "array"},
    }
    assert result.input_schema["additionalProperties"] is False


def test_javascript_destructured_object_with_rest_is_open() -> None:
    result = js("const main = ({ a, ...others }) => others")
    assert names(result) == ["a"] and result.input_schema["additionalProperties"] is True


def test_javascript_destructured_pattern_default_makes_keys_optional() -> None:
    result = js("function main({ a, b } = {}) {}")
    assert names(result) == ["a", "b"] and required(result) == []


def test_javascript_destructured_beside_plain_parameters() -> None:
    # The runner gives a destructured parameter the whole inputs object.
    result = js("function main(first, { second, third = 'x' }, [ignored]) {}")
    assert names(result) == ["first", "second", "third"]
    assert required(result) == ["first", "second"]


def test_javascript_empty_destructured_object() -> None:
    result = js("function main({}) {}")
    assert result.has_main and result.parameters == []
    assert result.input_schema["additionalProperties"] is False


# ---- JavaScript: JSDoc -----------------------------------------------------------------------


def test_javascript_jsdoc_full() -> None:
    code = """
const helper = 1;

/**
 * Total the orders.
 *
 * @param {Array<{amount: number, note?: string}>} orders - The orders
 *   to total.
 * @param {number} [rate=1] A rate.
 * @param {string=} currency
 * @param {?string} note A note.
 * @param {"fast"|"slow"} mode
 * @param {*} extra anything
 * @returns {number} the total
 */
function main(orders, rate = 1, currency = "EUR", note, mode = "fast", extra) {}
"""
    result = js(code)
    assert props(result) == {
        "orders": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"amount": NUM, "note": STR},
                "required": ["amount"],
            },
            "description": "The orders to total.",
        },
        "rate": {"type": "number", "default": 1, "description": "A rate."},
        "currency": {"type": "string", "default": "EUR"},
        "note": {"anyOf": [STR, NULL], "description": "A note."},
        "mode": {"enum": ["fast", "slow"], "default": "fast"},
        "extra": {"description": "anything"},
    }
    assert required(result) == ["orders", "note", "extra"]
    assert [p.annotation for p in result.parameters] == [
        "Array<{amount: number, note?: string}>",
        "number",
        "string=",
        "?string",
        '"fast"|"slow"',
        "*",
    ]


@pytest.mark.parametrize(
    ("type_text", "schema"),
    [
        ("string", STR),
        ("String", STR),
        ("number", NUM),
        ("integer", INT),
        ("boolean", {"type": "boolean"}),
        ("null", NULL),
        ("undefined", {}),
        ("*", {}),
        ("any", {}),
        ("?", {}),
        ("Date", {}),
        ("Array", {"type": "array"}),
        ("array", {"type": "array"}),
        ("Array<string>", {"type": "array", "items": STR}),
        ("Array.<number>", {"type": "array", "items": NUM}),
        ("string[]", {"type": "array", "items": STR}),
        ("number[][]", {"type": "array", "items": {"type": "array", "items": NUM}}),
        ("Object", OBJ),
        ("object", OBJ),
        ("Object<string, number>", {"type": "object", "additionalProperties": NUM}),
        (
            "Object.<string, string[]>",
            {"type": "object", "additionalProperties": {"type": "array", "items": STR}},
        ),
        (
            "Record<string, boolean>",
            {"type": "object", "additionalProperties": {"type": "boolean"}},
        ),
        (
            "{a: string, b: number}",
            {"type": "object", "properties": {"a": STR, "b": NUM}, "required": ["a", "b"]},
        ),
        (
            "{a: string, b?: number, c: (string|undefined)}",
            {"type": "object", "properties": {"a": STR, "b": NUM, "c": STR}, "required": ["a"]},
        ),
        ("{}", {"type": "object", "properties": {}}),
        ("string|number", {"anyOf": [STR, NUM]}),
        ("(string|number)", {"anyOf": [STR, NUM]}),
        ("string | number | null", {"anyOf": [STR, NUM, NULL]}),
        ("(string|number)[]", {"type": "array", "items": {"anyOf": [STR, NUM]}}),
        ("string|undefined", STR),
        ("?number", {"anyOf": [NUM, NULL]}),
        ("!number", NUM),
        ("number=", NUM),
        ("...number", NUM),
        ('"a"|"b"', {"enum": ["a", "b"]}),
        ("'a'|'b'|'c'", {"enum": ["a", "b", "c"]}),
        ("'only'", {"const": "only"}),
        ("1|2|3", {"enum": [1, 2, 3]}),
        ("true", {"const": True}),
        ('"a"|number', {"anyOf": [{"const": "a"}, NUM]}),
        ("string|*", {}),
        ("function(string): number", {}),
        ("Promise<string>", {}),
        ("Array<", {}),  # unreadable: no constraint
        ("string number", {}),
    ],
)
def test_javascript_jsdoc_types(type_text: str, schema: dict[str, Any]) -> None:
    assert js_doc_type(type_text) == schema


@pytest.mark.parametrize(
    ("doc", "required_", "default"),
    [
        ("@param {string} opts.x", True, None),
        ("@param {string} [opts.x]", False, None),
        ("@param {string} [opts.x='a b']", False, "a b"),
        ("@param {number} [ opts.x = 2 ]", False, 2),
        ("@param {string=} opts.x", False, None),
        ("@param {string|undefined} opts.x", False, None),
        ("@param {(undefined|string)} opts.x", False, None),
        ("@param {Array<number>} [opts.x=[1, 2]]", False, [1, 2]),
        ("@param {number} [opts.x=computed()]", False, None),
    ],
)
def test_javascript_jsdoc_optional_destructured_keys(
    doc: str, required_: bool, default: Any
) -> None:
    result = js(f"/**\n * @param {{Object}} opts\n * {doc}\n */\nfunction main({{ x }}) {{}}")
    p = result.parameters[0]
    assert (p.name, p.required, p.default) == ("x", required_, default)
    assert p.has_default is (default is not None)


def test_javascript_jsdoc_optional_plain_parameter_without_default_stays_required() -> None:
    # The runner refuses main(orders, rate) without rate, whatever the JSDoc says.
    result = js("/** @param {number} [rate=1] */\nfunction main(rate) {}")
    assert required(result) == ["rate"]
    assert not result.parameters[0].has_default


def test_javascript_jsdoc_default_when_the_code_default_is_not_literal() -> None:
    result = js("/** @param {number} [rate=1] */\nfunction main(rate = DEFAULT_RATE) {}")
    p = result.parameters[0]
    assert (p.required, p.default, p.has_default) == (False, 1, True)
    assert prop(result, "rate") == {"type": "number", "default": 1}


def test_javascript_jsdoc_for_destructured_keys() -> None:
    code = """
/**
 * @param {Object} input - everything
 * @param {string} input.name The name.
 * @param {number} [input.age] - The age.
 * @param {Object} input.address.city deeper: ignored
 */
export function main({ name, age, address }) {}
"""
    result = js(code)
    assert props(result) == {
        "name": {"type": "string", "description": "The name."},
        "age": {"type": "number", "description": "The age."},
        "address": {},
    }
    assert required(result) == ["name", "address"]


def test_javascript_jsdoc_record_type_on_the_destructured_parameter() -> None:
    code = "/** @param {{a: string, b?: integer}} p */\nconst main = ({ a, b, c }) => a"
    result = js(code)
    assert props(result) == {"a": STR, "b": INT, "c": {}}
    assert required(result) == ["a", "c"]


def test_javascript_jsdoc_names_the_destructured_root_anything() -> None:
    code = "/**\n * @param {string} $0.a\n * @param {number} x\n */\nfunction main({ a }, x) {}"
    result = js(code)
    assert props(result) == {"a": STR, "x": NUM}


def test_javascript_jsdoc_on_const_and_export() -> None:
    for code in (
        "/** @param {integer} n */\nconst main = (n) => n",
        "/** @param {integer} n */\nexport default function main(n) {}",
        "/** @param {integer} n */\n// eslint-disable-next-line\nasync function main(n) {}",
    ):
        assert prop(js(code), "n") == INT, code


@pytest.mark.parametrize(
    "code",
    [
        "/** @param {integer} n */\nconst x = 1;\nfunction main(n) {}",  # not right before
        "/* @param {integer} n */\nfunction main(n) {}",  # not a JSDoc block
        "/** @param {integer} m */\nfunction main(n) {}",  # another name
        "/** @returns {integer} n */\nfunction main(n) {}",
    ],
)
def test_javascript_jsdoc_that_does_not_apply(code: str) -> None:
    result = js(code)
    assert prop(result, "n") == {} and result.parameters[0].annotation is None


def test_javascript_jsdoc_one_line_and_alias_tags() -> None:
    result = js("/** @arg {string} a first @argument {boolean} b */ function main(a, b) {}")
    assert prop(result, "a") == {"type": "string", "description": "first"}
    assert prop(result, "b") == {"type": "boolean"}


def test_javascript_default_type_without_jsdoc() -> None:
    result = js("function main(a = 1, b = 'US', c = true, d = [], e = {}, f = null, g = x) {}")
    assert {k: v.get("type") for k, v in props(result).items()} == {
        "a": "number",
        "b": "string",
        "c": "boolean",
        "d": "array",
        "e": "object",
        "f": None,
        "g": None,
    }


def test_javascript_null_default_widens_a_jsdoc_type() -> None:
    result = js("/** @param {string} s */\nfunction main(s = null) {}")
    assert prop(result, "s") == {"anyOf": [STR, NULL], "default": None}


# ---- JavaScript: the scanner on valid code --------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "const r = /[\"'`({[]/g; const d = a / b / c;\nfunction main(x) {}",
        "const r = /\\/\\//; function main(x) {}",
        "const r = x.replace(/}/g, ''); function main(x) {}",
        "function f() { return /[)]/.test(s) }\nfunction main(x) {}",
        "const half = (a + b) / 2, third = arr[0] / 3; function main(x) {}",
        "let i = 0; i++ / 2; function main(x) {}",
        "if (a) {}\n/[(]/.test(s)\nfunction main(x) {}",
        "const t = `a ${ `b ${ `c ${'}'}` }` } d`; function main(x) {}",
        "const t = `$ {not} \\${not} $`; function main(x) {}",
        'const s = \'it\\\'s\'; const u = "say \\"(\\""; function main(x) {}',
        "const s = 'line \\\ncontinued'; function main(x) {}",
        "// it's a comment with a ' quote and a (\nfunction main(x) {}",
        "/* { ( [ ' \" ` */ function main(x) {}",
        "const x = a?.b ?? c?.[0] ?? d?.(1); function main(x) {}",
        "const big = 10n ** 2n; const n = 1_000.5e-3; function main(x) {}",
        "class A { #p = 1; get #q() { return this.#p } }\nfunction main(x) {}",
        "const ünïcode = 'é'; const $ = 1, _ = 2; function main(x) {}",
        "label: for (;;) { break label }\nfunction main(x) {}",
        "import { a } from 'b';\nimport * as c from \"d\";\nfunction main(x) {}",
        "const a = x => ({ y: x }); function main(x) {}",
        "return typeof /x/ === 'object'; function main(x) {}",
    ],
)
def test_javascript_scanner_accepts_valid_code(code: str) -> None:
    assert names(js(code)) == ["x"]


# ---- JavaScript: syntax errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "line", "message"),
    [
        (
            "const a = 1;\nconst b = 2;\nconst s = 'abc\nfunction main(x) {}",
            3,
            "unterminated string starting at line 3",
        ),
        ('const s = "abc', 1, "unterminated string starting at line 1"),
        ("x\n\nconst s = 'abc\\'", 3, "unterminated string starting at line 3"),
        ("const t = `abc\n\n", 1, "unterminated template literal starting at line 1"),
        ("a\nconst t = `abc ${ x", 2, "unterminated template literal starting at line 2"),
        ("a\nconst t = `abc ${ {", 2, "unterminated template literal starting at line 2"),
        ("const t = `a ${ `b", 1, "unterminated template literal starting at line 1"),
        ("a\n/* never\nclosed", 2, "unterminated comment starting at line 2"),
        ("function main(a, b {\n}\n", 1, "unclosed '(' starting at line 1"),
        ("x\nfunction main(a) {\n  return a\n", 2, "unclosed '{' starting at line 2"),
        ("const a = [1, 2\n", 1, "unclosed '[' starting at line 1"),
        ("function main(a) {}\n}", 2, "unmatched '}' at line 2"),
        ("x)", 1, "unmatched ')' at line 1"),
        ("function main(a]) {}", 1, "unexpected ']' at line 1: ')' from line 1 is still open"),
        (
            "const t = `${ ) }`",
            1,
            "unexpected ')' at line 1: '}' of '${' from line 1 is still open",
        ),
    ],
)
def test_javascript_syntax_errors(code: str, line: int, message: str) -> None:
    detail = error(code, JS)
    assert (detail.line, detail.message, detail.name) == (line, message, "SyntaxError")


# ---- schemas validate real inputs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "language", "good", "bad"),
    [
        (
            'def main(rows: list[dict], country: str = "US"):\n    pass',
            PY,
            [{"rows": [{"a": 1}]}, {"rows": [], "country": "FR"}],
            [{}, {"rows": {}}, {"rows": [1]}, {"rows": [], "country": 1}, {"rows": [], "x": 1}],
        ),
        (
            "def main(n: int, ratio: float = 0.5, *, tags: list[str] | None = None, **kw):\n"
            "    pass",
            PY,
            [{"n": 1}, {"n": 1, "ratio": 2}, {"n": 1, "tags": None, "anything": [1]}],
            [{"n": 1.5}, {"n": "1"}, {"n": 1, "ratio": "x"}, {"n": 1, "tags": [1]}],
        ),
        (
            "def main(mode: Literal['a', 'b'], pair: tuple[int, str]):\n    pass",
            PY,
            [{"mode": "a", "pair": [1, "x"]}],
            [{"mode": "c", "pair": [1, "x"]}, {"mode": "a", "pair": [1]}, {"mode": "a"}],
        ),
        (
            "function main(orders, rate = 1) {}",
            JS,
            [{"orders": 1}, {"orders": [], "rate": 2.5}, {"orders": None}],
            [{}, {"rate": 1}, {"orders": [], "rate": "1"}, {"orders": [], "other": 1}],
        ),
        (
            "/** @param {string[]} o.names\n @param {'x'|'y'} [o.kind] */\n"
            "const main = ({ names, kind, ...rest }) => names",
            JS,
            [{"names": ["a"]}, {"names": [], "kind": "y", "more": 1}],
            [{"names": "a"}, {"names": [1]}, {"names": [], "kind": "z"}, {"kind": "x"}],
        ),
    ],
)
def test_schemas_accept_good_inputs_and_reject_bad_ones(
    code: str, language: Language, good: list[dict[str, Any]], bad: list[dict[str, Any]]
) -> None:
    validator = Draft202012Validator(inspect(code, language).input_schema)
    for inputs in good:
        assert validator.is_valid(inputs), inputs
    for inputs in bad:
        assert not validator.is_valid(inputs), inputs


def test_script_style_schema_accepts_any_object() -> None:
    validator = Draft202012Validator(py("1").input_schema)
    assert validator.is_valid({"anything": [1, {"x": None}]})
    assert not validator.is_valid([1])


# ---- the models ------------------------------------------------------------------------------


def test_parameter_default_is_omitted_unless_there_is_one() -> None:
    result = py("def main(a, b=None, c=compute()):\n    pass")
    a, b, c = result.parameters
    assert not a.has_default and b.has_default and not c.has_default
    assert [p.model_dump(exclude_unset=True) for p in result.parameters] == [
        {"name": "a", "required": True, "annotation": None},
        {"name": "b", "required": False, "default": None, "annotation": None},
        {"name": "c", "required": False, "annotation": None},
    ]
    text = result.model_dump_json(exclude_unset=True)
    assert json.loads(text)["parameters"][2] == {"name": "c", "required": False, "annotation": None}


def test_models_forbid_extra_fields() -> None:
    with pytest.raises(ValueError):
        Parameter(name="a", required=True, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        Inspection(has_main=False, parameters=[], input_schema={}, extra=1)  # type: ignore[call-arg]


def test_inspection_round_trips_through_json() -> None:
    result = js("/** @param {number} [r=2] */ function main(o, r = 2) {}")
    again = Inspection.model_validate_json(result.model_dump_json(exclude_unset=True))
    assert again == result
    assert again.parameters[1].has_default and not again.parameters[0].has_default


# ---- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", [PY, JS])
def test_deep_nesting_does_not_crash(language: Language) -> None:
    deep = "[" * 5000 + "]" * 5000
    code = f"def main(x={deep}):\n    pass" if language is PY else f"function main(x = {deep}) {{}}"
    result = inspect_snippet(code, language)
    if isinstance(result, Inspection):  # Python's parser may refuse it: a syntax error
        assert result.parameters[0].name == "x" and not result.parameters[0].has_default
    else:
        assert result.type is ErrorType.SYNTAX_ERROR


def test_deep_python_hint_does_not_crash() -> None:
    hint = "list[" * 150 + "int" + "]" * 150
    result = inspect_snippet(f"def main(x: {hint}):\n    pass", PY)
    assert isinstance(result, Inspection | ErrorDetail)
    assert py_hint("'list[\"int\"]'") == {"type": "array", "items": INT}


def test_deep_jsdoc_type_does_not_crash() -> None:
    deep = "Array<" * 300 + "string" + ">" * 300
    assert js_doc_type(deep) == {}  # too deep to follow: no constraint
    assert js_doc_type("(" * 300 + "string" + ")" * 300) == {}


def test_many_templates_deep_do_not_crash() -> None:
    code = "const t = " + "`${" * 3000 + "1" + "}`" * 3000 + ";\nfunction main(x) {}"
    assert names(js(code)) == ["x"]


def test_large_snippets_are_quick() -> None:
    body = "\n".join(
        f"function f{i}(a, b = 'x') {{ return `${{a}}/${{b}}` + /re{i}/.source + a / {i}; }}"
        for i in range(5000)
    )
    started = time.perf_counter()
    assert names(js(body + "\nfunction main(last) {}")) == ["last"]
    py_body = "\n".join(f"def f{i}(a, b='x'):\n    return a / {i}" for i in range(5000))
    assert names(py(py_body + "\ndef main(last):\n    pass")) == ["last"]
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ('def main(a):\n    """Args:\n        a: bad \\ud800 text\n    """', PY),
        ('X = TypedDict("X", {"\\udc00": int})\ndef main(a: X):\n    pass', PY),
        ("/** @param {string} a bad \ud800 text */\nfunction main(a) {}", JS),
    ],
)
def test_lone_surrogates_never_reach_the_output(code: str, language: Language) -> None:
    result = inspect(code, language)
    text = result.model_dump_json(exclude_unset=True)
    text.encode("utf-8")  # no lone surrogate left
    assert "\ufffd" in json.dumps(json.loads(text)["input_schema"], ensure_ascii=False)


# ---- TypeScript: read as JavaScript, type annotations skipped or read --------------------

TS = Language.TYPESCRIPT


def ts(code: str) -> Inspection:
    return inspect(code, TS)


def test_typescript_simple_annotations_become_the_schema() -> None:
    result = ts(
        "function main(name: string, count: number = 1, on: boolean, tags: string[],\n"
        "              scores: Array<number>, m: Record<string, number>, x: any) {}"
    )
    assert names(result) == ["name", "count", "on", "tags", "scores", "m", "x"]
    assert required(result) == ["name", "on", "tags", "scores", "m", "x"]
    assert prop(result, "name") == {"type": "string"}
    assert prop(result, "count") == {"type": "number", "default": 1}
    assert prop(result, "on") == {"type": "boolean"}
    assert prop(result, "tags") == {"type": "array", "items": {"type": "string"}}
    assert prop(result, "scores") == {"type": "array", "items": {"type": "number"}}
    assert prop(result, "m") == {"type": "object", "additionalProperties": {"type": "number"}}
    assert prop(result, "x") == {}
    assert result.parameters[0].annotation == "string"
    assert result.parameters[5].annotation == "Record<string, number>"  # one parameter


def test_typescript_optional_parameter_is_not_required() -> None:
    result = ts("function main(a: number, b?: string | null) {}")
    assert required(result) == ["a"]
    assert prop(result, "b") == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_typescript_interfaces_and_type_aliases_are_substituted() -> None:
    code = (
        "interface Order {\n"
        "  amount: number\n"
        "  note?: string\n"
        "}\n"
        "type Mode = 'fast'\n"
        "  | 'slow';\n"
        "export function main(orders: Order[], mode: Mode = 'fast', when: Date) {}\n"
    )
    result = ts(code)
    assert prop(result, "orders") == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "note": {"type": "string"}},
            "required": ["amount"],
        },
    }
    assert prop(result, "mode") == {"enum": ["fast", "slow"], "default": "fast"}
    assert prop(result, "when") == {}  # a class: no constraint
    assert required(result) == ["orders", "when"]


def test_typescript_destructured_parameter_with_its_type() -> None:
    result = ts("type In = { a: number; b?: string };\nfunction main({ a, b }: In) {}")
    assert names(result) == ["a", "b"]
    assert required(result) == ["a"]
    assert prop(result, "a") == {"type": "number"}
    assert result.input_schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "code",
    [
        "function main<T>(this: void, x: T, y: number) {}",
        "const main = async <T,>(x: T, y: number): Promise<T> => x;",
        "const main = (x: number, y: number): { s: number } => ({ s: x + y });",
        "const main: (x: number, y: number) => number = (x, y) => x + y;",
        "export const main = function <T>(x: T, y: number): T { return x; };",
    ],
)
def test_typescript_main_forms(code: str) -> None:
    assert names(ts(code)) == ["x", "y"]


def test_typescript_recursive_alias_does_not_loop() -> None:
    result = ts("type Tree = { kids: Tree[] };\nfunction main(t: Tree) {}")
    assert prop(result, "t")["type"] == "object"


def test_typescript_script_style_and_errors() -> None:
    assert ts("const a: number = 1;\nreturn a;").has_main is False
    detail = error("function main(a: number {\n}", TS)
    assert detail.line == 1


def test_typescript_types_do_not_change_javascript() -> None:
    # JavaScript has no annotations: `a: number` there is not read as one.
    assert prop(js("/** @param {string} a */\nfunction main(a = 1) {}"), "a") == {
        "type": "string",
        "default": 1,
    }


@pytest.mark.parametrize("language", [JS, TS])
@pytest.mark.parametrize("code", ["²", "x = .²", "const \u0661 = 1;"])
def test_unicode_digits_do_not_crash_the_scanner(code: str, language: Language) -> None:
    # str.isdigit() is true of "²", which the number pattern's \d does not match.
    assert inspect_snippet(code, language) is not None
