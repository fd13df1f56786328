"""Inspect a snippet without running it: does it define `main`, which inputs it takes, and
a JSON Schema (draft 2020-12) of the inputs object.

Nothing here executes the snippet.  Python is read with the `ast` module (parse only: no
compile, no exec, defaults through `ast.literal_eval`); JavaScript with the scanner below,
written in Python, which tokenizes just enough of the language (comments, strings,
template literals with nested `${...}`, regular expression literals, numbers, names,
punctuators, bracket nesting) to find `main` and read its parameter list and its JSDoc.

What is understood mirrors how the runners bind inputs (`_jail/python_runner.py`
`bind_inputs`, `_jail/js_runner.mjs` `bindInputs`): parameters are bound by name, a
parameter with a default is optional, Python `**kwargs` takes the other inputs, and a
JavaScript destructured object parameter receives the whole inputs object (its keys are
the input names).  A parameter without a default is required even if its documentation
calls it optional: the runners refuse the call without it.

Python:
  - `main` is the last module-level `def main` / `async def main`, `main = lambda ...`,
    `main = other_function` (a module-level def or lambda), or `main: T = ...`; a `main`
    defined inside `if`/`try`/`with` blocks or by an import is not looked for (an import,
    a class, or any other callable expression says "there is a main, its parameters are
    unknown": `{"type": "object"}`); a plain value (`main = 3`) is no main at all.
  - Positional-only, positional-or-keyword and keyword-only parameters; `*args` ignored;
    `**kwargs` opens the schema (`additionalProperties: true`).
  - Defaults through `ast.literal_eval`, kept when JSON-able (tuples become arrays; sets,
    bytes, complex, NaN/Infinity, non-string keys are not); any other default makes the
    parameter optional with no "default".  Without a hint, a default's JSON type is the
    type (numbers are "number").  A `None` default widens a hint that does not allow null.
  - Hints: int, float, str, bool, None, list/List/Sequence/Iterable/set/deque[X],
    tuple[X, ...] and tuple[X, Y], dict/Dict/Mapping[K, V], Optional, Union, `X | Y`,
    Literal, Annotated[X, ...], Any/object, string hints, `typing.`/`t.`/
    `typing_extensions.`/`collections.abc.` prefixes (and `import typing as tp`,
    `from typing import List as L`), module-level aliases
    (`Row = dict[str, int]`, `NewType`), and module-level TypedDicts (class and
    functional syntax, inheritance, `total=False`, Required/NotRequired/ReadOnly).
    Dataclasses, enums, pydantic models and other classes are `{}` (no constraint): the
    runner hands main the plain JSON value, never an instance.  Unknown names are `{}`.
  - Descriptions from main's docstring: Google ("Args:"), Sphinx (":param x:") and NumPy
    ("Parameters" / "----------") styles.
  - Errors: what `ast.parse` raises (SyntaxError and its subclasses, with the line).
    Errors that only compiling finds (`return` outside a function, `break` outside a
    loop, duplicate parameter names) are not reported: the code is never compiled.

JavaScript:
  - `main` is the last top-level (bracket depth 0, at a statement start) `function main`,
    `async function main`, `const|let|var main = ...` (arrow functions with or without
    parentheses, `async` arrows, function expressions), each possibly after `export` or
    `export default`.  `main` inside comments, strings, template literals, regular
    expressions, blocks, classes and object literals is ignored.  Generator functions
    (`function* main`) are not recognised; `const main = <anything else>` is a main with
    unknown parameters.
  - Parameters: names, `name = default`, `...rest` (opens the schema), destructured
    object patterns `{ a, b = 2, c: renamed, "d": x, e: { nested } = {}, ...rest }` (the
    input names are the keys; computed keys are skipped; a default on the whole pattern
    makes its keys optional), and destructured arrays (alone: parameters unknown).
  - Defaults are JSON values when they are JSON-like literals (numbers with sign, hex,
    octal, binary and `_` separators; quoted strings and templates without `${}`; true,
    false, null; arrays and objects of those); `undefined`, expressions, BigInt, NaN and
    Infinity make the parameter optional with no "default".
  - JSDoc: the last `/** ... */` between the previous statement and the declaration.
    `@param` (and `@arg`, `@argument`) with `{type}`, `name`, `[name]`, `[name=default]`,
    `name.key` for a destructured parameter's keys, and a description.  Types: string,
    number, integer, boolean, null, undefined (dropped from unions, marks optional), `*`,
    any, unknown, Array, Array<T>, Array.<T>, T[], Object, Object<K, V>, Record<K, V>,
    record types `{a: string, b?: number}`, unions, `?T`, `!T`, `T=`, `...T`, string,
    number and boolean literals (→ enum/const); other names (Date, classes) are `{}`.
  - Errors: an unterminated string, template literal, block comment, or an unclosed,
    stray or mismatched bracket is a `syntax_error` with its line.  Nothing else is
    validated: a snippet this scanner accepts may still fail to parse at run time.
  - Not supported: a `/` after `)` is always division, so a regular expression literal
    right after a closing parenthesis (`if (x) /re/.test(s)`) is misread; a regular
    expression literal is only recognised when it ends on its own line (else the `/` is
    taken for division).  Unicode escapes in identifiers (`\\u0061`) are not decoded.
    HTML-like comments (`<!--`) are not comments.

TypeScript: read as JavaScript (the same scanner, the same `main` forms), with its type
syntax skipped where `main` is declared and read where it says something simple:
  - `function main<T>(...)`, `const main: Type = ...`, arrow functions with type
    parameters (`<T,>(x: T) => x`) and return types (`(x: number): number => ...`).
  - Parameters `name: Type`, `name?: Type` (optional, as the runner binds it: a missing
    input is `undefined`), `{ a, b }: Type` and `...rest: Type[]`; `this: Type` is no
    input.  Commas inside `<...>` do not split parameters.
  - Types are read with the JSDoc type reader above (string, number, boolean, null,
    undefined, T[], Array<T>, Record<K, V>, object literal types `{ a: string; b?: number }`
    with `;`, `,` or line breaks between members, unions and literal types); a type
    annotation wins over a JSDoc `{type}`.  Names declared at the top level by
    `interface Name { ... }` and `type Name = ...` are substituted (a few levels deep, no
    recursion; `extends` is not followed); anything else (enums, classes, generics'
    parameters, tuples, `keyof`, mapped and conditional types) is `{}`.
  - Nothing is type-checked, and TypeScript-only syntax errors are not looked for.

Text taken from the source (descriptions, annotations, keys) keeps no lone surrogate: one
becomes U+FFFD, so the result always encodes as UTF-8 JSON.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jsonschema.validators import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field

from ._models import ErrorDetail, ErrorType, Language

__all__ = ["Inspection", "Parameter", "inspect_snippet"]

JsonSchema = dict[str, Any]
_MAX_DEPTH = 64  # nesting of hints, literals and JSDoc types followed before giving up
_MAX_INT_BITS = 10_000  # larger integers are not JSON a reader can take (str() limits)


class Parameter(BaseModel):
    """One input of main, as its parameter list (and documentation) describes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The input's name (a destructured key: the key).")
    required: bool = Field(description="True when main cannot be called without it.")
    default: Any = Field(
        None,
        description="The default value, present only when main has a JSON-able default "
        "(serialize with exclude_unset to omit it otherwise).",
    )
    annotation: str | None = Field(
        None, description="The source text of the type: a Python hint or a JSDoc {type}."
    )

    @property
    def has_default(self) -> bool:
        """Whether `default` holds main's default value (else it means nothing)."""
        return "default" in self.model_fields_set


class Inspection(BaseModel):
    """What main expects, read from the source without running it."""

    model_config = ConfigDict(extra="forbid")

    has_main: bool = Field(description="Function style (main defined) or script style.")
    parameters: list[Parameter] = Field(description="main's inputs, in order.")
    input_schema: JsonSchema = Field(
        description="JSON Schema (draft 2020-12) of the inputs object."
    )

    def answer(self) -> dict[str, Any]:
        """As JSON, each parameter's `default` only where it has one."""
        return {
            "has_main": self.has_main,
            "parameters": [p.model_dump(mode="json", exclude_unset=True) for p in self.parameters],
            "input_schema": self.input_schema,
        }


def inspect_snippet(code: str, language: Language) -> Inspection | ErrorDetail:
    """Inspect a snippet's main without executing anything.

    A snippet that does not parse gives the same ErrorDetail (type syntax_error, name,
    message, 1-based line) an execution of it would, as far as parsing finds it.
    """
    language = Language(language)
    if language is Language.PYTHON:
        return _inspect_python(code)
    return _inspect_javascript(code, typescript=language is Language.TYPESCRIPT)


# ---- shared ------------------------------------------------------------------------------


@dataclass
class _Param:
    name: str
    required: bool
    schema: JsonSchema = field(default_factory=dict)
    has_default: bool = False
    default: Any = None
    annotation: str | None = None
    description: str | None = None


_NO_MAIN = object()  # the snippet has no main: script style
_UNKNOWN = object()  # there is a main, but its parameters cannot be read


def _script_style() -> Inspection:
    return Inspection(has_main=False, parameters=[], input_schema={"type": "object"})


def _unknown_parameters() -> Inspection:
    return Inspection(has_main=True, parameters=[], input_schema={"type": "object"})


def _build(params: list[_Param], open_: bool) -> Inspection:
    properties: dict[str, JsonSchema] = {}
    required: list[str] = []
    out: list[Parameter] = []
    for p in params:
        if p.name in properties:
            continue
        prop = dict(p.schema)
        if p.has_default:
            if p.default is None and prop and not _accepts(prop, None):
                prop = {"anyOf": [prop, {"type": "null"}]}
            prop["default"] = p.default
        if p.description:
            prop["description"] = _text(p.description)
        properties[p.name] = prop
        if p.required:
            required.append(p.name)
        annotation = None if p.annotation is None else _text(p.annotation)
        if p.has_default:
            out.append(
                Parameter(
                    name=p.name,
                    required=p.required,
                    default=p.default,
                    annotation=annotation,
                )
            )
        else:
            out.append(Parameter(name=p.name, required=p.required, annotation=annotation))
    schema: JsonSchema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = open_
    return Inspection(has_main=True, parameters=out, input_schema=_clean(schema))


def _text(text: str) -> str:
    """Text any encoder takes: a lone surrogate (from the source's text) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_text(key): _clean(item) for key, item in value.items()}
    return value


def _accepts(schema: JsonSchema, value: Any) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


def _json_value(value: Any, depth: int = 0) -> tuple[bool, Any]:
    """(True, the JSON form) when value is faithfully JSON, else (False, None)."""
    if depth > _MAX_DEPTH:
        return False, None
    if value is None or isinstance(value, bool):
        return True, value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return False, None
        return True, value
    if isinstance(value, int):
        return value.bit_length() <= _MAX_INT_BITS, value
    if isinstance(value, float):
        return (True, value) if math.isfinite(value) else (False, None)
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            ok, converted = _json_value(item, depth + 1)
            if not ok:
                return False, None
            items.append(converted)
        return True, items
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return False, None
            ok, converted = _json_value(key, depth + 1)
            ok2, converted_item = _json_value(item, depth + 1)
            if not (ok and ok2):
                return False, None
            out[converted] = converted_item
        return True, out
    return False, None


def _schema_of_value(value: Any) -> JsonSchema:
    """The type a default implies: its JSON type (any number is "number")."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int | float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {}


def _any_of(members: list[JsonSchema]) -> JsonSchema:
    """A union: flattened, deduplicated, `{}` when any member is unconstrained; literal
    members merge into one enum."""
    flat: list[JsonSchema] = []
    for m in members:
        if not m:
            return {}
        flat.extend(m["anyOf"] if set(m) == {"anyOf"} else [m])
    literals: list[Any] = []
    others: list[JsonSchema] = []
    for m in flat:
        if set(m) == {"const"}:
            literals.append(m["const"])
        elif set(m) == {"enum"}:
            literals.extend(m["enum"])
        else:
            others.append(m)
    unique: list[JsonSchema] = []
    seen: set[str] = set()
    if literals:
        others.insert(0, _enum(literals))
    for m in others:
        key = json.dumps(m, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(m)
    if not unique:
        return {}
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _enum(values: list[Any]) -> JsonSchema:
    unique: list[Any] = []
    seen: set[str] = set()
    for v in values:
        key = json.dumps(v, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(v)
    return {"const": unique[0]} if len(unique) == 1 else {"enum": unique}


def _clean_text(lines: list[str]) -> str | None:
    text = " ".join(line.strip() for line in lines if line.strip())
    return text or None


# ---- Python ------------------------------------------------------------------------------


def _inspect_python(code: str) -> Inspection | ErrorDetail:
    try:
        tree = ast.parse(code, "<snippet>", "exec")
    except SyntaxError as exc:
        return ErrorDetail(
            type=ErrorType.SYNTAX_ERROR,
            name=type(exc).__name__,
            message=exc.msg or str(exc),
            line=exc.lineno,
        )
    except (ValueError, RecursionError, MemoryError) as exc:  # as the runner reports them
        return ErrorDetail(
            type=ErrorType.SYNTAX_ERROR, name=type(exc).__name__, message=str(exc) or "too deep"
        )
    return _PythonModule(code, tree).inspection()


_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
_TYPING_PREFIXES = frozenset(
    {"typing", "t", "typing_extensions", "te", "collections.abc", "abc", "collections",
     "builtins", "types"}
)  # fmt: skip
_PY_SIMPLE: dict[str, JsonSchema] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "Text": {"type": "string"},
    "LiteralString": {"type": "string"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
}
_PY_ARRAYS = frozenset(
    {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "set", "Set",
     "frozenset", "FrozenSet", "AbstractSet", "MutableSet", "deque", "Deque", "tuple",
     "Tuple"}
)  # fmt: skip
_PY_OBJECTS = frozenset(
    {"dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "defaultdict",
     "DefaultDict"}
)  # fmt: skip
_PY_WRAPPERS = frozenset({"Annotated", "Required", "NotRequired", "ReadOnly", "Final"})
_NOT_CALLABLE = (
    ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr, ast.ListComp,
    ast.SetComp, ast.DictComp, ast.GeneratorExp,
)  # fmt: skip


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


@dataclass
class _TypedDict:
    bases: list[str]
    fields: list[tuple[str, ast.expr]]
    total: bool


class _PythonModule:
    def __init__(self, code: str, tree: ast.Module) -> None:
        self.code = code
        self.tree = tree
        self.typed_dicts: dict[str, _TypedDict] = {}
        self.aliases: dict[str, ast.expr] = {}
        self.classes: set[str] = set()
        self.prefixes: set[str] = set(_TYPING_PREFIXES)  # `import typing as tp` adds tp
        self.renames: dict[str, str] = {}  # `from typing import List as L`: L → List

    # -- main ---------------------------------------------------------------------------

    def inspection(self) -> Inspection:
        main = self._find_main()
        if main is _NO_MAIN:
            return _script_style()
        if not isinstance(main, _FunctionNode):
            return _unknown_parameters()
        return self._parameters(main)

    def _find_main(self) -> object:
        callables: dict[str, _FunctionNode] = {}
        main: object = _NO_MAIN
        for stmt in self.tree.body:
            self._collect_types(stmt)
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                callables[stmt.name] = stmt
                if stmt.name == "main":
                    main = stmt
            elif isinstance(stmt, ast.ClassDef):
                callables.pop(stmt.name, None)
                if stmt.name == "main":
                    main = _UNKNOWN
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = stmt.value
                for target in targets:
                    if isinstance(target, ast.Name):
                        bound = self._value(value, callables)
                        if isinstance(bound, _FunctionNode):
                            callables[target.id] = bound
                        else:
                            callables.pop(target.id, None)
                        if target.id == "main" and value is not None:
                            main = bound
                    elif any(isinstance(n, ast.Name) and n.id == "main" for n in ast.walk(target)):
                        main = _UNKNOWN
            elif isinstance(stmt, ast.Import | ast.ImportFrom):
                for alias in stmt.names:
                    if (alias.asname or alias.name.split(".")[0]) == "main":
                        main = _UNKNOWN
        return main

    @staticmethod
    def _value(value: ast.expr | None, callables: dict[str, _FunctionNode]) -> object:
        if value is None or isinstance(value, _NOT_CALLABLE):
            return _NO_MAIN
        if isinstance(value, ast.Lambda):
            return value
        if isinstance(value, ast.Name) and value.id in callables:
            return callables[value.id]
        return _UNKNOWN

    def _parameters(self, fn: _FunctionNode) -> Inspection:
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults.extend(args.defaults)
        pairs = [*zip(positional, defaults, strict=True)]
        pairs.extend(zip(args.kwonlyargs, args.kw_defaults, strict=True))
        docs = {}
        if not isinstance(fn, ast.Lambda):
            docstring = ast.get_docstring(fn)
            docs = _docstring_params(docstring) if docstring else {}
        params = []
        for arg, default in pairs:
            p = _Param(name=arg.arg, required=default is None, description=docs.get(arg.arg))
            if arg.annotation is not None:
                p.annotation = self._source(arg.annotation)
                p.schema = self.type_schema(arg.annotation, 0, frozenset())
            if default is not None:
                ok, value = _py_literal(default)
                if ok:
                    p.has_default, p.default = True, value
                    if arg.annotation is None:
                        p.schema = _schema_of_value(value)
            params.append(p)
        return _build(params, open_=args.kwarg is not None)

    def _source(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return ast.get_source_segment(self.code, node) or ast.unparse(node)

    # -- types --------------------------------------------------------------------------

    def typing_name(self, node: ast.expr) -> str | None:
        """`List`, `typing.List`, `t.List` → "List"; a name from another module → None."""
        dotted = _dotted(node)
        if dotted is None:
            return None
        if "." not in dotted:
            return self.renames.get(dotted, dotted)
        prefix, _, last = dotted.rpartition(".")
        return last if prefix in self.prefixes else None

    def _collect_types(self, stmt: ast.stmt) -> None:
        """Module-level TypedDicts, type aliases and other classes, as they are defined."""
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname and alias.name in _TYPING_PREFIXES:
                    self.prefixes.add(alias.asname)
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.asname and stmt.module in _TYPING_PREFIXES:
                    self.renames[alias.asname] = alias.name
        elif isinstance(stmt, ast.ClassDef):
            name = stmt.name
            self.aliases.pop(name, None)
            bases = []
            is_typed_dict = False
            for base in stmt.bases:
                dotted = _dotted(base)
                if self.typing_name(base) == "TypedDict":
                    is_typed_dict = True
                elif dotted in self.typed_dicts:
                    is_typed_dict = True
                    bases.append(dotted)
            if not is_typed_dict:
                self.typed_dicts.pop(name, None)
                self.classes.add(name)
                return
            total = not any(
                k.arg == "total" and isinstance(k.value, ast.Constant) and k.value.value is False
                for k in stmt.keywords
            )
            fields = [
                (s.target.id, s.annotation)
                for s in stmt.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            ]
            self.classes.discard(name)
            self.typed_dicts[name] = _TypedDict(bases, fields, total)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if len(targets) != 1 or not isinstance(targets[0], ast.Name) or stmt.value is None:
                return
            name, value = targets[0].id, stmt.value
            self.classes.discard(name)
            self.typed_dicts.pop(name, None)
            self.aliases.pop(name, None)
            if isinstance(value, ast.Call):
                callee = self.typing_name(value.func)
                if callee == "TypedDict" and len(value.args) >= 2:
                    spec = value.args[1]
                    if isinstance(spec, ast.Dict):
                        total = not any(
                            k.arg == "total"
                            and isinstance(k.value, ast.Constant)
                            and k.value.value is False
                            for k in value.keywords
                        )
                        fields = [
                            (k.value, v)
                            for k, v in zip(spec.keys, spec.values, strict=True)
                            if isinstance(k, ast.Constant) and isinstance(k.value, str)
                        ]
                        self.typed_dicts[name] = _TypedDict([], fields, total)
                elif callee == "NewType" and len(value.args) >= 2:
                    self.aliases[name] = value.args[1]
                return
            self.aliases[name] = value

    def type_schema(self, node: ast.expr, depth: int, seen: frozenset[str]) -> JsonSchema:
        """A hint as a JSON Schema; `{}` when it says nothing JSON Schema can check."""
        if depth > _MAX_DEPTH:
            return {}
        depth += 1
        if isinstance(node, ast.Constant):
            if node.value is None:
                return {"type": "null"}
            if isinstance(node.value, str):  # a string hint: "int", "list[Row]"
                try:
                    parsed = ast.parse(node.value.strip(), "<hint>", "eval")
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    return {}
                return self.type_schema(parsed.body, depth, seen)
            return {}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _any_of(
                [
                    self.type_schema(node.left, depth, seen),
                    self.type_schema(node.right, depth, seen),
                ]
            )
        if isinstance(node, ast.Name | ast.Attribute):
            return self._named(node, depth, seen)
        if isinstance(node, ast.Subscript):
            return self._generic(node, depth, seen)
        return {}

    def _named(
        self, node: ast.Name | ast.Attribute, depth: int, seen: frozenset[str]
    ) -> JsonSchema:
        if isinstance(node, ast.Name):
            name = node.id
            if name in seen:
                return {}  # a recursive alias or TypedDict: not followed
            if name in self.typed_dicts:
                return self._typed_dict(name, depth, seen | {name})
            if name in self.aliases:
                return self.type_schema(self.aliases[name], depth, seen | {name})
            if name in self.classes:
                return {}
        name_or_none = self.typing_name(node)
        if name_or_none is None:
            return {}
        if name_or_none in _PY_SIMPLE:
            return dict(_PY_SIMPLE[name_or_none])
        if name_or_none in _PY_ARRAYS:
            return {"type": "array"}
        if name_or_none in _PY_OBJECTS:
            return {"type": "object"}
        return {}

    def _generic(self, node: ast.Subscript, depth: int, seen: frozenset[str]) -> JsonSchema:
        base = node.value
        if isinstance(base, ast.Name) and (base.id in self.classes or base.id in self.aliases):
            return {}
        name = self.typing_name(base)
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if name in ("tuple", "Tuple") and not args:
            return {"type": "array", "maxItems": 0}  # tuple[()]
        if not name or not args:
            return {}
        if name in ("tuple", "Tuple"):
            if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is ...:
                return _array(self.type_schema(args[0], depth, seen))
            items = [self.type_schema(a, depth, seen) for a in args]
            return {
                "type": "array",
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if name in _PY_ARRAYS:
            return _array(self.type_schema(args[0], depth, seen))
        if name in _PY_OBJECTS:
            schema: JsonSchema = {"type": "object"}
            if len(args) == 2:
                values = self.type_schema(args[1], depth, seen)
                if values:
                    schema["additionalProperties"] = values
            return schema
        if name == "Optional":
            return _any_of([self.type_schema(args[0], depth, seen), {"type": "null"}])
        if name == "Union":
            return _any_of([self.type_schema(a, depth, seen) for a in args])
        if name == "Literal":
            literals = self._literal_values(args, depth)
            return _enum(literals) if literals else {}
        if name in _PY_WRAPPERS:
            return self.type_schema(args[0], depth, seen)
        return {}

    def _literal_values(self, args: list[ast.expr], depth: int) -> list[Any]:
        values: list[Any] = []
        for arg in args:
            if depth > _MAX_DEPTH:
                return []
            if isinstance(arg, ast.Subscript) and self.typing_name(arg.value) == "Literal":
                inner = arg.slice
                nested = self._literal_values(
                    list(inner.elts) if isinstance(inner, ast.Tuple) else [inner], depth + 1
                )
                if not nested:
                    return []
                values.extend(nested)
                continue
            ok, value = _py_literal(arg)
            if not ok or isinstance(value, list | dict):
                return []  # an enum member or anything else: no constraint
            values.append(value)
        return values

    def _typed_dict(self, name: str, depth: int, seen: frozenset[str]) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        self._typed_dict_fields(name, depth, seen, properties, required)
        schema: JsonSchema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    def _typed_dict_fields(
        self,
        name: str,
        depth: int,
        seen: frozenset[str],
        properties: dict[str, JsonSchema],
        required: list[str],
    ) -> None:
        td = self.typed_dicts[name]
        for base in td.bases:
            if base not in seen and base in self.typed_dicts:
                self._typed_dict_fields(base, depth + 1, seen | {base}, properties, required)
        for key, hint in td.fields:
            is_required = td.total
            node = hint
            for _ in range(_MAX_DEPTH):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    try:
                        node = ast.parse(node.value.strip(), "<hint>", "eval").body
                    except (SyntaxError, ValueError, RecursionError, MemoryError):
                        break
                    continue
                if not isinstance(node, ast.Subscript):
                    break
                wrapper = self.typing_name(node.value)
                if wrapper not in _PY_WRAPPERS:
                    break
                if wrapper == "Required":
                    is_required = True
                elif wrapper == "NotRequired":
                    is_required = False
                inner = node.slice
                node = inner.elts[0] if isinstance(inner, ast.Tuple) and inner.elts else inner
            properties[key] = self.type_schema(node, depth + 1, seen)
            if key in required:
                required.remove(key)
            if is_required:
                required.append(key)


def _array(items: JsonSchema) -> JsonSchema:
    return {"type": "array", "items": items} if items else {"type": "array"}


def _py_literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    return _json_value(value)


_GOOGLE_SECTION = re.compile(
    r"(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters)"
    r"\s*:\s*"
)
_GOOGLE_OTHER_SECTION = re.compile(
    r"(?:Returns?|Yields?|Raises?|Examples?|Notes?|Attributes|See Also|References|Todo"
    r"|Warnings?|Warns|Methods)\s*:\s*"
)
_GOOGLE_ENTRY = re.compile(r"\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:(?:\s+(.*))?")
_SPHINX_ENTRY = re.compile(
    r":(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\*{0,2}([A-Za-z_]\w*)\s*:"
    r"(?:\s*(.*))?"
)
_NUMPY_SECTION = frozenset({"Parameters", "Other Parameters", "Keyword Arguments"})
_NUMPY_ENTRY = re.compile(r"\*{0,2}([A-Za-z_]\w*)\s*(?::.*)?")
_UNDERLINE = re.compile(r"\s*-{3,}\s*")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _docstring_params(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google, Sphinx or NumPy style docstring."""
    lines = doc.expandtabs().splitlines()
    texts: dict[str, list[str]] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        sphinx = _SPHINX_ENTRY.fullmatch(stripped)
        if sphinx:
            indent = _indent(line)
            text = [sphinx.group(2) or ""]
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > indent:
                text.append(lines[i])
                i += 1
            texts.setdefault(sphinx.group(1), text)
            continue
        if _GOOGLE_SECTION.fullmatch(stripped):
            # On the docstring's first line, cleandoc leaves the entries at its indent.
            header = _indent(line) if i else -1
            entry_indent: int | None = None
            current: list[str] | None = None
            i += 1
            while i < len(lines):
                line = lines[i]
                if not line.strip():
                    i += 1
                    continue
                indent = _indent(line)
                if indent <= header or _GOOGLE_OTHER_SECTION.fullmatch(line.strip()):
                    break
                if entry_indent is None:
                    entry_indent = indent
                if indent <= entry_indent:
                    entry = _GOOGLE_ENTRY.fullmatch(line.strip())
                    current = None
                    if entry and entry.group(1) not in texts:
                        current = texts[entry.group(1)] = [entry.group(2) or ""]
                elif current is not None:
                    current.append(line)
                i += 1
            continue
        if stripped in _NUMPY_SECTION and i + 1 < len(lines) and _UNDERLINE.fullmatch(lines[i + 1]):
            header = _indent(line)
            current = None
            i += 2
            while i < len(lines):
                line = lines[i]
                if not line.strip():
                    i += 1
                    continue
                indent = _indent(line)
                if indent < header:
                    break
                if indent == header:
                    if i + 1 < len(lines) and _UNDERLINE.fullmatch(lines[i + 1]):
                        break  # the next section
                    entry = _NUMPY_ENTRY.fullmatch(line.strip())
                    current = None
                    if entry and entry.group(1) not in texts:
                        current = texts[entry.group(1)] = []
                elif current is not None:
                    current.append(line)
                i += 1
            continue
        i += 1
    out = {}
    for name, text in texts.items():
        cleaned = _clean_text(text)
        if cleaned:
            out[name] = cleaned
    return out


# ---- JavaScript: the scanner -------------------------------------------------------------


class _JsSyntaxError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # name, num, str, tmpl, regex, punct
    text: str
    start: int
    end: int
    subst: bool = False  # a template literal with ${...}


_JS_SPACE = re.compile(r"[\s\ufeff]+")
_JS_LINE_COMMENT = re.compile(r"//[^\n\r\u2028\u2029]*")
_JS_HASHBANG = re.compile(r"#![^\n\r\u2028\u2029]*")
_JS_NAME = re.compile(r"(?:[^\W\d]|[$#])[\w$\u200c\u200d]*")
_JS_NUMBER = re.compile(
    r"(?:0[xXoObB][\da-fA-F_]*|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?[\d_]+)?)n?"
)
_JS_PUNCT = re.compile(
    r">>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|&&=|\|\|=|\?\?=|=>|==|!=|<=|>=|&&|\|\||\?\?"
    r"|\?\.(?!\d)|\+\+|--|\*\*|<<|>>|[-+*%&|^]=|\S"
)
_JS_STRING = {
    "'": re.compile(r"'(?:[^'\\\n\r]|\\(?:\r\n|[\s\S]))*'"),
    '"': re.compile(r'"(?:[^"\\\n\r]|\\(?:\r\n|[\s\S]))*"'),
}
_JS_TEMPLATE_CHUNK = re.compile(r"(?:[^`\\$]|\\[\s\S]|\$(?!\{))*")
_JS_REGEX = re.compile(
    r"/(?![*/])(?:[^\\/\[\n\r\u2028\u2029]|\\[^\n\r\u2028\u2029]"
    r"|\[(?:[^\]\\\n\r\u2028\u2029]|\\[^\n\r\u2028\u2029])*\])+/[\w$]*"
)
# After these names an expression starts, so a `/` begins a regular expression.
_JS_BEFORE_EXPRESSION = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case",
     "do", "else", "yield", "await", "extends"}
)  # fmt: skip
_JS_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_ASCII_DIGITS = frozenset("0123456789")  # (str.isdigit is true of "²", which \d is not)


def _line_of(code: str, pos: int) -> int:
    return code.count("\n", 0, pos) + 1


def _regex_allowed(prev: _Tok | None) -> bool:
    if prev is None:
        return True
    if prev.kind == "punct":
        return prev.text not in (")", "]", "++", "--")
    if prev.kind == "name":
        return prev.text in _JS_BEFORE_EXPRESSION
    return False


def _js_scan(code: str) -> tuple[list[_Tok], list[tuple[int, int]]]:
    """Tokens outside template literals (a template is one token) and comments' spans.

    Raises _JsSyntaxError for an unterminated string, template or comment, and for
    unbalanced brackets.
    """
    n = len(code)
    pos = 0
    tokens: list[_Tok] = []
    comments: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []  # "(", "[", "{", "`" (in a template), "${"
    templates = 0  # open template literals
    template_start = 0
    template_subst = False
    prev: _Tok | None = None  # the last significant token, templates' insides included
    if code.startswith("#!"):
        hashbang = _JS_HASHBANG.match(code)
        pos = hashbang.end() if hashbang else 0
    while True:
        if stack and stack[-1][0] == "`":
            chunk = _JS_TEMPLATE_CHUNK.match(code, pos)
            pos = chunk.end() if chunk else pos
            if pos >= n or code[pos] == "\\":
                line = _line_of(code, stack[-1][1])
                raise _JsSyntaxError(f"unterminated template literal starting at line {line}", line)
            if code[pos] == "`":
                _, opened = stack.pop()
                templates -= 1
                pos += 1
                if templates == 0:
                    prev = _Tok(
                        "tmpl", code[template_start:pos], template_start, pos, template_subst
                    )
                    tokens.append(prev)
                else:
                    prev = _Tok("tmpl", "", opened, pos)
                continue
            stack.append(("${", pos))  # code[pos:pos + 2] == "${"
            template_subst = True
            prev = _Tok("punct", "{", pos + 1, pos + 2)
            pos += 2
            continue
        space = _JS_SPACE.match(code, pos)
        if space:
            pos = space.end()
        if pos >= n:
            break
        ch = code[pos]
        tok: _Tok
        if ch == "/" and code.startswith("//", pos):
            end = _JS_LINE_COMMENT.match(code, pos)
            assert end is not None
            if not templates:
                comments.append((pos, end.end()))
            pos = end.end()
            continue
        if ch == "/" and code.startswith("/*", pos):
            close = code.find("*/", pos + 2)
            if close < 0:
                line = _line_of(code, pos)
                raise _JsSyntaxError(f"unterminated comment starting at line {line}", line)
            if not templates:
                comments.append((pos, close + 2))
            pos = close + 2
            continue
        if ch == "/":
            regex = _JS_REGEX.match(code, pos) if _regex_allowed(prev) else None
            if regex:
                tok = _Tok("regex", regex.group(), pos, regex.end())
            else:
                text = "/=" if code.startswith("/=", pos) else "/"
                tok = _Tok("punct", text, pos, pos + len(text))
        elif ch in _JS_STRING:
            string = _JS_STRING[ch].match(code, pos)
            if not string:
                line = _line_of(code, pos)
                raise _JsSyntaxError(f"unterminated string starting at line {line}", line)
            tok = _Tok("str", string.group(), pos, string.end())
        elif ch == "`":
            stack.append(("`", pos))
            if not templates:
                template_start, template_subst = pos, False
            templates += 1
            pos += 1
            continue
        elif ch in _ASCII_DIGITS or (ch == "." and code[pos + 1 : pos + 2] in _ASCII_DIGITS):
            number = _JS_NUMBER.match(code, pos)
            assert number is not None
            tail = _JS_NAME.match(code, number.end())  # e.g. 1px: one (bad) token, not two
            stop = tail.end() if tail else number.end()
            tok = _Tok("num", code[pos:stop], pos, stop)
        else:
            name = _JS_NAME.match(code, pos)
            if name:
                tok = _Tok("name", name.group(), pos, name.end())
            else:
                punct = _JS_PUNCT.match(code, pos)
                assert punct is not None
                tok = _Tok("punct", punct.group(), pos, punct.end())
                if tok.text in _JS_CLOSERS:
                    stack.append((tok.text, pos))
                elif tok.text in (")", "]", "}"):
                    if not stack:
                        line = _line_of(code, pos)
                        raise _JsSyntaxError(f"unmatched '{tok.text}' at line {line}", line)
                    top, opened = stack[-1]
                    if top == "${" and tok.text == "}":
                        stack.pop()  # back in the template
                        pos = tok.end
                        continue
                    if _JS_CLOSERS.get(top) != tok.text:
                        line = _line_of(code, pos)
                        expected = "'}' of '${'" if top == "${" else f"'{_JS_CLOSERS[top]}'"
                        raise _JsSyntaxError(
                            f"unexpected '{tok.text}' at line {line}: {expected} from line "
                            f"{_line_of(code, opened)} is still open",
                            line,
                        )
                    stack.pop()
        pos = tok.end
        prev = tok
        if not templates:
            tokens.append(tok)
    if stack:
        templates_open = [at for kind, at in stack if kind == "`"]
        if templates_open:  # the innermost template literal open at the end
            line = _line_of(code, templates_open[-1])
            raise _JsSyntaxError(f"unterminated template literal starting at line {line}", line)
        top, opened = stack[-1]
        line = _line_of(code, opened)
        raise _JsSyntaxError(f"unclosed '{top}' starting at line {line}", line)
    return tokens, comments


# ---- JavaScript: main, its parameters and its JSDoc --------------------------------------


def _inspect_javascript(code: str, typescript: bool = False) -> Inspection | ErrorDetail:
    try:
        tokens, comments = _js_scan(code)
    except _JsSyntaxError as exc:
        return ErrorDetail(
            type=ErrorType.SYNTAX_ERROR, name="SyntaxError", message=exc.message, line=exc.line
        )
    return _JsModule(code, tokens, comments, typescript).inspection()


_LINE_BREAKS = re.compile(r"[\n\r\u2028\u2029]")


def _is_punct(tok: _Tok | None, text: str) -> bool:
    return tok is not None and tok.kind == "punct" and tok.text == text


def _is_name(tok: _Tok | None, text: str | None = None) -> bool:
    return tok is not None and tok.kind == "name" and (text is None or tok.text == text)


def _split(tokens: list[_Tok], sep: str = ",", angles: bool = False) -> list[list[_Tok]]:
    """Split at `sep` outside brackets (and, with `angles`, outside TypeScript's `<...>`);
    empty parts (a trailing comma) are dropped."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    angle = 0
    for tok in tokens:
        if tok.kind == "punct":
            if tok.text in _JS_CLOSERS:
                depth += 1
            elif tok.text in (")", "]", "}"):
                depth -= 1
            elif angles and tok.text == "<":
                angle += 1
            elif angles and tok.text in (">", ">>", ">>>"):
                angle = max(angle - len(tok.text), 0)
            elif tok.text == sep and depth == 0 and angle == 0:
                parts.append([])
                continue
        parts[-1].append(tok)
    return [p for p in parts if p]


def _closing_index(tokens: list[_Tok], i: int) -> int:
    """The index in `tokens` of the bracket closing tokens[i] (the last index if none)."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind == "punct":
            if tokens[j].text in _JS_CLOSERS:
                depth += 1
            elif tokens[j].text in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    return j
    return len(tokens) - 1


def _ts_target(target: list[_Tok]) -> tuple[list[_Tok], bool, list[_Tok] | None]:
    """A TypeScript parameter (its default split off) as (the JavaScript binding, whether
    `?` marks it optional, the tokens of its type annotation or None)."""
    i = 1 if target and _is_punct(target[0], "...") else 0
    first = target[i] if i < len(target) else None
    if first is None:
        return target, False, None
    if first.kind == "punct" and first.text in ("{", "["):
        end = _closing_index(target, i)
    elif first.kind == "name":
        end = i
    else:
        return target, False, None
    binding, rest = target[: end + 1], target[end + 1 :]
    optional = bool(rest) and _is_punct(rest[0], "?")
    if optional:
        rest = rest[1:]
    if rest and _is_punct(rest[0], ":") and len(rest) > 1:
        return binding, optional, rest[1:]
    return binding, optional, None


def _split_default(tokens: list[_Tok]) -> tuple[list[_Tok], list[_Tok] | None]:
    """`target = default` → (target, default tokens); no `=` outside brackets → None."""
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind == "punct":
            if tok.text in _JS_CLOSERS:
                depth += 1
            elif tok.text in (")", "]", "}"):
                depth -= 1
            elif tok.text == "=" and depth == 0:
                return tokens[:i], tokens[i + 1 :]
    return tokens, None


@dataclass
class _DocParam:
    name: str
    type_text: str | None
    optional: bool
    default_text: str | None
    description: str | None


class _JsModule:
    def __init__(
        self,
        code: str,
        tokens: list[_Tok],
        comments: list[tuple[int, int]],
        typescript: bool = False,
    ) -> None:
        self.code = code
        self.tokens = tokens
        self.comments = comments
        self.comment_starts = [start for start, _ in comments]
        self.typescript = typescript
        self._aliases: dict[str, str] | None = None  # TypeScript: top-level named types

    def tok(self, i: int) -> _Tok | None:
        return self.tokens[i] if 0 <= i < len(self.tokens) else None

    def matching(self, i: int) -> int:
        """The index of the bracket closing the one at i (the scanner checked balance)."""
        depth = 0
        for j in range(i, len(self.tokens)):
            tok = self.tokens[j]
            if tok.kind == "punct":
                if tok.text in _JS_CLOSERS:
                    depth += 1
                elif tok.text in (")", "]", "}"):
                    depth -= 1
                    if depth == 0:
                        return j
        return len(self.tokens) - 1

    # -- main ---------------------------------------------------------------------------

    def top_level_names(self) -> Iterator[tuple[int, _Tok]]:
        """(index, token) of every name outside all brackets (the module's top level)."""
        depth = 0
        for i, tok in enumerate(self.tokens):
            if tok.kind == "punct":
                if tok.text in _JS_CLOSERS:
                    depth += 1
                elif tok.text in (")", "]", "}"):
                    depth -= 1
            elif depth == 0 and tok.kind == "name":
                yield i, tok

    def inspection(self) -> Inspection:
        found: tuple[int, object] | None = None
        for i, tok in self.top_level_names():
            if tok.text not in _DECLARATION_STARTS:
                continue
            if not self.starts_statement(i):
                continue
            match = self.declaration(i)
            if match is not None:
                found = (i, match)
        if found is None:
            return _script_style()
        start, match = found
        if not isinstance(match, tuple):
            return _unknown_parameters()
        comment = self.jsdoc_before(start)
        docs = _jsdoc_params(comment) if comment else []
        return self.parameters(match, docs)

    def starts_statement(self, i: int) -> bool:
        if i == 0:
            return True
        prev = self.tokens[i - 1]
        if prev.kind == "punct" and prev.text in (";", "}", "{"):
            return True
        if _is_name(prev, "export") or (
            _is_name(prev, "default") and _is_name(self.tok(i - 2), "export")
        ):
            return True
        ends_expression = prev.kind in ("name", "num", "str", "tmpl", "regex") or prev.text in (
            ")", "]", "++", "--",
        )  # fmt: skip
        between = self.code[prev.end : self.tokens[i].start]
        return ends_expression and _LINE_BREAKS.search(between) is not None

    def declaration(self, i: int) -> object:
        """At a statement start: ("params", index of "(") / ("bare", index of the name) for
        a main, _UNKNOWN for a main that is not a function literal, None for no main."""
        j = i
        if _is_name(self.tok(j), "async") and _is_name(self.tok(j + 1), "function"):
            between = self.code[self.tokens[j].end : self.tokens[j + 1].start]
            if _LINE_BREAKS.search(between) is None:
                j += 1
        if _is_name(self.tok(j), "function"):
            k = self.skip_type_parameters(j + 2)
            if _is_name(self.tok(j + 1), "main") and _is_punct(self.tok(k), "("):
                return ("params", k)
            return None  # another function, or a generator (function* main)
        if self.tokens[j].text in ("const", "let", "var") and _is_name(self.tok(j + 1), "main"):
            k = j + 2
            if self.typescript and _is_punct(self.tok(k), ":"):
                k = self.skip_type(k + 1, "=")  # const main: (x: number) => number = ...
            if _is_punct(self.tok(k), "="):
                return self.function_value(k + 1)
        return None

    def skip_type_parameters(self, k: int) -> int:
        """TypeScript: the index past the type parameters `<...>` at k (k when none)."""
        if not self.typescript or not _is_punct(self.tok(k), "<"):
            return k
        depth = 0
        while k < len(self.tokens):
            tok = self.tokens[k]
            if tok.kind == "punct":
                if tok.text in _JS_CLOSERS:
                    k = self.matching(k) + 1
                    continue
                if tok.text == "<":
                    depth += 1
                elif tok.text in (">", ">>", ">>>"):
                    depth -= len(tok.text)
                    if depth <= 0:
                        return k + 1
                elif tok.text in (";", ")", "]", "}"):
                    return k
            k += 1
        return k

    def skip_type(self, k: int, stop: str) -> int:
        """TypeScript: the index of the punctuator `stop` that ends the type starting at k
        (outside brackets), or of whatever closes the enclosing bracket first."""
        while k < len(self.tokens):
            tok = self.tokens[k]
            if tok.kind == "punct":
                if tok.text == stop:
                    return k
                if tok.text in _JS_CLOSERS:
                    k = self.matching(k) + 1
                    continue
                if tok.text in (")", "]", "}", ";"):
                    return k
            k += 1
        return k

    def function_value(self, k: int) -> object:
        if _is_name(self.tok(k), "async") and not _is_punct(self.tok(k + 1), "=>"):
            k += 1
        if _is_name(self.tok(k), "function"):
            k += 1
            if _is_name(self.tok(k)):
                k += 1
            k = self.skip_type_parameters(k)
            return ("params", k) if _is_punct(self.tok(k), "(") else _UNKNOWN
        k = self.skip_type_parameters(k)  # TypeScript: <T,>(x: T) => x
        if _is_punct(self.tok(k), "("):
            after = self.matching(k) + 1
            if self.typescript and _is_punct(self.tok(after), ":"):
                after = self.skip_type(after + 1, "=>")  # a return type
            return ("params", k) if _is_punct(self.tok(after), "=>") else _UNKNOWN
        if _is_name(self.tok(k)) and _is_punct(self.tok(k + 1), "=>"):
            return ("bare", k)
        return _UNKNOWN

    def jsdoc_before(self, i: int) -> str | None:
        """The last /** ... */ between the previous statement and the declaration at i."""
        if _is_name(self.tok(i - 1), "default") and _is_name(self.tok(i - 2), "export"):
            i -= 2
        elif _is_name(self.tok(i - 1), "export"):
            i -= 1
        low = self.tokens[i - 1].end if i > 0 else 0
        high = self.tokens[i].start
        first = bisect.bisect_left(self.comment_starts, low)
        last = bisect.bisect_left(self.comment_starts, high)
        for start, end in reversed(self.comments[first:last]):
            text = self.code[start:end]
            if text.startswith("/**") and text != "/**/":
                return text
        return None

    # -- parameters ---------------------------------------------------------------------

    def parameters(self, match: tuple[str, int], docs: list[_DocParam]) -> Inspection:
        by_name: dict[str, _DocParam] = {}
        for doc in docs:
            by_name.setdefault(doc.name, doc)
        kind, index = match
        if kind == "bare":
            name = self.tokens[index].text
            return _build([_js_param(name, None, by_name.get(name))], open_=False)
        parts = _split(self.tokens[index + 1 : self.matching(index)], angles=self.typescript)
        targets = [_split_default(part) for part in parts]
        # TypeScript: each binding's `?` and type annotation, split off (`this` is no input).
        typed: list[tuple[bool, list[_Tok] | None]] = [(False, None)] * len(targets)
        if self.typescript:
            targets = [t for t in targets if not (t[0] and _is_name(t[0][0], "this"))]
            split = [(_ts_target(target), default) for target, default in targets]
            targets = [(binding, default) for (binding, _, _), default in split]
            typed = [(optional, annotation) for (_, optional, annotation), _ in split]
        if len(targets) == 1 and _is_punct(targets[0][0][0] if targets[0][0] else None, "["):
            return _unknown_parameters()  # one destructured array: it would get the inputs
        plain = {
            target[0].text for target, _ in targets if len(target) == 1 and _is_name(target[0])
        }
        top_docs = [d for d in docs if "." not in d.name and "[" not in d.name]
        params: list[_Param] = []
        open_ = False
        for position, (target, default) in enumerate(targets):
            if not target:
                continue
            first = target[0]
            optional, annotation = typed[position]
            if _is_punct(first, "..."):
                open_ = True  # a rest parameter; nothing can follow it
                break
            if _is_punct(first, "{") and _is_punct(target[-1], "}"):
                root = _doc_root(position, top_docs, docs, plain)
                record = self.type_schema(annotation)[0] if annotation else None
                keys, rest = self.object_pattern(
                    target[1:-1], default is not None or optional, root, by_name, record
                )
                params.extend(keys)
                open_ = open_ or rest
            elif len(target) == 1 and _is_name(first):
                typed_as = None
                if annotation:
                    typed_as = (self.type_text(annotation), self.type_schema(annotation)[0])
                p = _js_param(first.text, default, by_name.get(first.text), typed=typed_as)
                if optional:
                    p.required = False  # the runner passes undefined for a missing `x?`
                params.append(p)
        return _build(params, open_)

    # -- TypeScript types ----------------------------------------------------------------

    def type_text(self, tokens: list[_Tok]) -> str:
        """A type annotation's source text, comments dropped, and `;` put between the
        members of object types written one a line (so the JSDoc type reader takes it)."""
        pieces = [tokens[0].text]
        braces: list[str] = [tokens[0].text] if tokens[0].text in _JS_CLOSERS else []
        for prev, tok in itertools.pairwise(tokens):
            gap = self.code[prev.end : tok.start]
            if (
                braces
                and braces[-1] == "{"
                and _LINE_BREAKS.search(gap)
                and prev.text not in ("{", ";", ",", "|", "&", ":", "?")
                and tok.text not in ("}", "|", "&", ";", ",")
            ):
                pieces.append(";")
            pieces.append(" " if gap else "")
            pieces.append(tok.text)
            if tok.kind == "punct":
                if tok.text in _JS_CLOSERS:
                    braces.append(tok.text)
                elif tok.text in (")", "]", "}") and braces:
                    braces.pop()
        return "".join(pieces)

    def type_schema(self, tokens: list[_Tok]) -> tuple[JsonSchema, bool]:
        """A type annotation as a JSON Schema (and whether it admits undefined), the
        snippet's own top-level interfaces and type aliases substituted."""
        text = self.type_text(tokens)
        aliases = self.aliases()

        def substitute(match: re.Match[str]) -> str:
            name = match.group(2)
            return f"({aliases[name]})" if name in aliases else match.group(0)

        for _ in range(_TS_ALIAS_DEPTH):
            substituted = _TS_NAME.sub(substitute, text)
            if substituted == text or len(substituted) > _TS_MAX_TYPE_CHARS:
                break
            text = substituted
        return _jsdoc_type(text)

    def aliases(self) -> dict[str, str]:
        """Top-level `interface Name { ... }` and `type Name = ...`: name → type text."""
        if self._aliases is not None:
            return self._aliases
        found: dict[str, str] = {}
        for i, tok in self.top_level_names():
            if not self.starts_statement(i):
                continue
            name = self.tok(i + 1)
            if not _is_name(name) or name is None:
                continue
            if tok.text == "interface" and _is_punct(self.tok(i + 2), "{"):
                close = self.matching(i + 2)
                found.setdefault(name.text, self.type_text(self.tokens[i + 2 : close + 1]))
            elif tok.text == "type" and _is_punct(self.tok(i + 2), "="):
                end = self.alias_end(i + 3)
                if end > i + 3:
                    found.setdefault(name.text, self.type_text(self.tokens[i + 3 : end]))
        self._aliases = found
        return found

    def alias_end(self, k: int) -> int:
        """The end of the type of `type Name = ...` starting at k: a `;`, or a line break
        that no `|` or `&` continues, outside brackets."""
        end = k
        while end < len(self.tokens) and not _is_punct(self.tokens[end], ";"):
            tok = self.tokens[end]
            if end > k:
                prev = self.tokens[end - 1]
                continued = tok.text in ("|", "&") or prev.text in ("|", "&")
                if not continued and _LINE_BREAKS.search(self.code[prev.end : tok.start]):
                    break  # the next statement
            if tok.kind == "punct" and tok.text in _JS_CLOSERS:
                end = self.matching(end) + 1
                continue
            end += 1
        return end

    def object_pattern(
        self,
        inner: list[_Tok],
        pattern_default: bool,
        root: str | None,
        by_name: dict[str, _DocParam],
        typed: JsonSchema | None = None,
    ) -> tuple[list[_Param], bool]:
        """The keys of a destructured object parameter (they are input names); `typed`:
        its TypeScript type, read like a JSDoc record type of the parameter."""
        subs: dict[str, _DocParam] = {}
        record: JsonSchema = {}
        if root is not None:
            for doc_name, doc_param in by_name.items():
                head, dot, sub = doc_name.partition(".")
                if head == root and dot and sub and "." not in sub and "[" not in sub:
                    subs.setdefault(sub, doc_param)
            root_doc = by_name.get(root)
            if root_doc is not None and root_doc.type_text:
                record = _jsdoc_type(root_doc.type_text)[0]
        if typed:
            record = typed
        record_properties = record.get("properties", {})
        record_required = record.get("required", [])
        params: list[_Param] = []
        rest = False
        for element in _split(inner):
            if _is_punct(element[0], "..."):
                rest = True
                continue
            key = _property_key(element[0])
            if key is None:
                continue  # a computed key: which input it reads is unknown
            after = element[1:]
            shape: JsonSchema = {}
            default: list[_Tok] | None = None
            if after and _is_punct(after[0], ":"):
                target, default = _split_default(after[1:])
                if target and _is_punct(target[0], "{"):
                    shape = {"type": "object"}
                elif target and _is_punct(target[0], "["):
                    shape = {"type": "array"}
            elif after and _is_punct(after[0], "="):
                default = after[1:]
            elif after:
                continue
            doc = subs.get(key)
            p = _js_param(key, default, doc, keyed=True, pattern_default=pattern_default)
            if doc is None or doc.type_text is None:
                if key in record_properties:
                    p.schema = record_properties[key]
                    if key not in record_required:
                        p.required = False
                elif shape and not p.has_default:
                    p.schema = shape
            params.append(p)
        return params, rest


_DECLARATION_STARTS = frozenset({"function", "async", "const", "let", "var"})
# TypeScript type names in a type's text (quoted literals skipped; `name:` and `name?:`
# are an object type's keys), and how far their definitions are substituted.
_TS_NAME = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?<![.\w$])([A-Za-z_$][\w$]*)(?![\w$])(?!\s*\??\s*:)"""
)
_TS_ALIAS_DEPTH = 4
_TS_MAX_TYPE_CHARS = 20_000


def _property_key(tok: _Tok) -> str | None:
    if tok.kind == "name":
        return tok.text
    if tok.kind in ("str", "num"):
        ok, value = _js_literal([tok])
        if not ok:
            return None
        if isinstance(value, str):
            return value
        return str(value) if isinstance(value, int) else repr(value)
    return None


def _doc_root(
    position: int, top_docs: list[_DocParam], docs: list[_DocParam], plain: set[str]
) -> str | None:
    """The JSDoc name of the destructured parameter at `position` (e.g. `opts`)."""
    if position < len(top_docs) and top_docs[position].name not in plain:
        return top_docs[position].name
    roots = {d.name.split(".", 1)[0] for d in docs if "." in d.name} - plain
    return roots.pop() if len(roots) == 1 else None


def _js_param(
    name: str,
    default: list[_Tok] | None,
    doc: _DocParam | None,
    keyed: bool = False,
    pattern_default: bool = False,
    typed: tuple[str, JsonSchema] | None = None,
) -> _Param:
    """One input.  A plain parameter is required unless it has a default (the runner
    refuses the call otherwise); a destructured key also when its JSDoc says optional.
    `typed`: a TypeScript annotation's text and schema, which win over JSDoc's."""
    p = _Param(name=name, required=default is None and not pattern_default)
    if default is not None:
        ok, value = _js_literal(default)
        if ok:
            p.has_default, p.default = True, value
    doc_schema: JsonSchema | None = None
    if doc is not None:
        p.description = doc.description
        type_optional = False
        if doc.type_text is not None:
            p.annotation = doc.type_text
            doc_schema, type_optional = _jsdoc_type(doc.type_text)
        if keyed and (doc.optional or type_optional):
            p.required = False
        if not p.has_default and not p.required and doc.default_text is not None:
            ok, value = _js_literal_text(doc.default_text)
            if ok:
                p.has_default, p.default = True, value
    if typed is not None:
        p.annotation = typed[0]
        if typed[1] or doc_schema is None:
            doc_schema = typed[1]
    if doc_schema is not None:
        p.schema = doc_schema
    elif p.has_default:
        p.schema = _schema_of_value(p.default)
    return p


# ---- JavaScript: literals ----------------------------------------------------------------


class _NotLiteral(Exception):
    pass


def _js_literal_text(text: str) -> tuple[bool, Any]:
    try:
        tokens, _ = _js_scan(text)
    except _JsSyntaxError:
        return False, None
    return _js_literal(tokens)


def _js_literal(tokens: list[_Tok]) -> tuple[bool, Any]:
    """A JSON-like JavaScript literal's value: (True, value), else (False, None)."""
    parser = _LiteralParser(tokens)
    try:
        value = parser.value(0)
        if parser.i != len(tokens):
            raise _NotLiteral
    except _NotLiteral:
        return False, None
    return _json_value(value)


class _LiteralParser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.i = 0

    def next(self) -> _Tok:
        if self.i >= len(self.tokens):
            raise _NotLiteral
        self.i += 1
        return self.tokens[self.i - 1]

    def peek_punct(self, text: str) -> bool:
        return self.i < len(self.tokens) and _is_punct(self.tokens[self.i], text)

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _NotLiteral
        tok = self.next()
        if tok.kind == "punct" and tok.text in ("-", "+"):
            number = self.next()
            if number.kind != "num":
                raise _NotLiteral
            value = _js_number(number.text)
            return -value if tok.text == "-" else value
        if tok.kind == "num":
            return _js_number(tok.text)
        if tok.kind == "str":
            return _js_string(tok.text[1:-1])
        if tok.kind == "tmpl" and not tok.subst:
            body = tok.text[1:-1].replace("\r\n", "\n").replace("\r", "\n")
            return _js_string(body)
        if tok.kind == "name" and tok.text in _JS_CONSTANTS:
            return _JS_CONSTANTS[tok.text]
        if _is_punct(tok, "["):
            items = []
            while not self.peek_punct("]"):
                items.append(self.value(depth + 1))
                if not self.peek_punct("]"):
                    if not _is_punct(self.next(), ","):
                        raise _NotLiteral
            self.next()
            return items
        if _is_punct(tok, "{"):
            out: dict[str, Any] = {}
            while not self.peek_punct("}"):
                key = _property_key(self.next())
                if key is None or not _is_punct(self.next(), ":"):
                    raise _NotLiteral
                out[key] = self.value(depth + 1)
                if not self.peek_punct("}"):
                    if not _is_punct(self.next(), ","):
                        raise _NotLiteral
            self.next()
            return out
        raise _NotLiteral


_JS_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_JS_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])")
_JS_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_JS_CONTINUATIONS = frozenset({"\n", "\r\n", "\r", "\u2028", "\u2029"})


def _js_number(text: str) -> int | float:
    if text.endswith("n"):
        raise _NotLiteral  # a BigInt is not JSON
    digits = text.replace("_", "")
    try:
        if digits[:2].lower() in ("0x", "0o", "0b"):
            value = float(int(digits, 0))
        elif len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            raise _NotLiteral  # legacy octal: not in strict mode (modules)
        else:
            value = float(digits)
    except (ValueError, OverflowError):
        raise _NotLiteral from None
    if not math.isfinite(value):
        raise _NotLiteral
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _js_string(body: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("u{"):
            code_point = int(escape[2:-1], 16)
            if code_point > 0x10FFFF:
                raise _NotLiteral
            return chr(code_point)
        if escape[0] in "ux" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        if escape in ("u", "x"):
            raise _NotLiteral  # a malformed escape
        if escape in _JS_CONTINUATIONS:
            return ""
        return _JS_SIMPLE_ESCAPES.get(escape, escape)

    text = _JS_ESCAPE.sub(unescape, body)
    try:  # \uD83D\uDE00 is one character; a lone surrogate is no text
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        raise _NotLiteral from None


# ---- JavaScript: JSDoc -------------------------------------------------------------------

_JSDOC_LINE_START = re.compile(r"[ \t]*\*?[ \t]?")
_JSDOC_PARAM_TAG = re.compile(r"@(?:param|arg|argument)\b")


def _jsdoc_params(comment: str) -> list[_DocParam]:
    """The @param tags of a /** ... */ comment (a tag starts at an `@` after white space,
    outside braces, so `{@link x}` and e-mail addresses stay in the text)."""
    lines = []
    for line in comment[3:-2].splitlines():
        start = _JSDOC_LINE_START.match(line)
        lines.append(line[start.end() :] if start else line)
    text = "\n".join(lines)
    starts = []
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        elif ch == "@" and depth == 0 and (i == 0 or text[i - 1].isspace()):
            starts.append(i)
    params = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        block = text[begin:end]
        tag = _JSDOC_PARAM_TAG.match(block)
        if tag:
            param = _jsdoc_param(block[tag.end() :])
            if param is not None:
                params.append(param)
    return params


def _closing(text: str, i: int, opener: str, closer: str) -> int:
    """The index of the `closer` matching text[i] == opener, past quotes; -1 if none."""
    depth = 0
    quote = ""
    j = i
    while j < len(text):
        ch = text[j]
        if quote:
            if ch == "\\":
                j += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _jsdoc_param(text: str) -> _DocParam | None:
    i = len(text) - len(text.lstrip())
    type_text = None
    if text[i : i + 1] == "{":
        end = _closing(text, i, "{", "}")
        if end < 0:
            return None
        type_text = text[i + 1 : end].strip()
        i = end + 1
    rest = text[i:].lstrip()
    optional = False
    default_text = None
    if rest.startswith("["):
        end = _closing(rest, 0, "[", "]")
        if end < 0:
            return None
        name, eq, default = rest[1:end].partition("=")
        name = name.strip()
        optional = True
        default_text = default.strip() if eq and default.strip() else None
        rest = rest[end + 1 :]
    else:
        parts = rest.split(None, 1)
        if not parts:
            return None
        name = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
    if not name:
        return None
    description = " ".join(re.sub(r"^\s*-\s+", "", rest).split()) or None
    return _DocParam(name, type_text or None, optional, default_text, description)


_JSDOC_TYPE_TOKEN = re.compile(
    r"""\s*(\.\.\.|\.<|=>|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"""
    r"""|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*|\S)"""
)
_JSDOC_NAMES: dict[str, JsonSchema] = {
    "string": {"type": "string"},
    "String": {"type": "string"},
    "number": {"type": "number"},
    "Number": {"type": "number"},
    "integer": {"type": "integer"},
    "Integer": {"type": "integer"},
    "int": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "Boolean": {"type": "boolean"},
    "bool": {"type": "boolean"},
    "null": {"type": "null"},
    "true": {"const": True},
    "false": {"const": False},
}
_JSDOC_OBJECTS = frozenset({"Object", "object", "Record"})
_JSDOC_ARRAYS = frozenset({"Array", "array", "ReadonlyArray"})
_JSDOC_UNDEFINED = frozenset({"undefined", "void"})


def _jsdoc_type(text: str) -> tuple[JsonSchema, bool]:
    """A JSDoc type as a JSON Schema, and whether it marks the parameter optional
    (`T=`, or undefined in a union).  What cannot be read is `{}`."""
    tokens: list[str] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        match = _JSDOC_TYPE_TOKEN.match(stripped, pos)
        if match is None:
            break
        tokens.append(match.group(1))
        pos = match.end()
    optional = False
    if tokens and tokens[-1] == "=":
        optional = True
        tokens.pop()
    if tokens and tokens[0] == "...":
        tokens.pop(0)
    parser = _JsDocTypeParser(tokens)
    try:
        schema, undefined = _combine(parser.union(0))
        if parser.i != len(tokens):
            return {}, optional
    except _NotLiteral:
        return {}, optional
    return schema or {}, optional or undefined


# A union's members; None stands for undefined (dropped from the schema: "optional").
_Members = list[JsonSchema | None]


def _combine(members: _Members) -> tuple[JsonSchema | None, bool]:
    """(the union's schema, None when undefined is all there is; whether undefined is in)."""
    real = [m for m in members if m is not None]
    return (_any_of(real) if real else None), len(real) < len(members)


class _JsDocTypeParser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> str | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> str:
        if self.i >= len(self.tokens):
            raise _NotLiteral
        self.i += 1
        return self.tokens[self.i - 1]

    def expect(self, text: str) -> None:
        if self.next() != text:
            raise _NotLiteral

    def union(self, depth: int) -> _Members:
        members = self.unary(depth)
        while self.peek() == "|":
            self.next()
            members = members + self.unary(depth)
        return members

    def unary(self, depth: int) -> _Members:
        if depth > _MAX_DEPTH:
            raise _NotLiteral
        token = self.peek()
        if token == "?":
            self.next()
            if self.peek() in (None, ")", "|", ",", ">", "]", "}", "="):
                return [{}]  # `?` alone: unknown
            return [*self.unary(depth + 1), {"type": "null"}]
        if token in ("!", "..."):
            self.next()
            return self.unary(depth + 1)
        members = self.primary(depth + 1)
        while self.peek() == "[" and self.peek(1) == "]":
            self.i += 2
            members = [_array(_combine(members)[0] or {})]
        return members

    def primary(self, depth: int) -> _Members:
        token = self.next()
        if token == "(":
            members = self.union(depth)
            self.expect(")")
            return members
        if token == "{":
            return [self.record(depth)]
        if token == "*":
            return [{}]
        if token[0] in "\"'":
            return [{"const": _js_string(token[1:-1])}]
        if token[0] == "-" or token[0].isdigit():
            try:
                return [{"const": _js_number(token)}]
            except _NotLiteral:
                return [{}]
        if not (token[0].isalpha() or token[0] in "_$"):
            raise _NotLiteral
        args: list[JsonSchema] = []
        if self.peek() in ("<", ".<"):
            self.next()
            while True:
                args.append(_combine(self.union(depth))[0] or {})
                if self.peek() == ",":
                    self.next()
                    continue
                self.expect(">")
                break
        if token == "function":
            self.skip_signature(depth)
            return [{}]
        if token in _JSDOC_UNDEFINED:
            return [None]
        if token in _JSDOC_NAMES:
            return [dict(_JSDOC_NAMES[token])]
        if token in _JSDOC_ARRAYS:
            return [_array(args[0] if args else {})]
        if token in _JSDOC_OBJECTS:
            mapping: JsonSchema = {"type": "object"}
            if args and args[-1]:
                mapping["additionalProperties"] = args[-1]
            return [mapping]
        return [{}]  # any, unknown, Date, a class: no constraint

    def skip_signature(self, depth: int) -> None:
        if self.peek() == "(":
            level = 0
            while True:
                token = self.next()
                level += token == "("
                level -= token == ")"
                if level == 0:
                    break
        if self.peek() == ":":
            self.next()
            self.unary(depth)

    def record(self, depth: int) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        while self.peek() != "}":
            key = self.next()
            if key[0] in "\"'":
                key = _js_string(key[1:-1])
            elif not (key[0].isalpha() or key[0] in "_$"):
                raise _NotLiteral
            optional = False
            if self.peek() == "?":
                self.next()
                optional = True
            value: JsonSchema = {}
            if self.peek() == ":":
                self.next()
                schema, undefined = _combine(self.union(depth))
                value = schema or {}
                optional = optional or undefined
            if self.peek() == "=":
                self.next()
                optional = True
            properties[key] = value
            if not optional and key not in required:
                required.append(key)
            if self.peek() in (",", ";"):
                self.next()
            elif self.peek() != "}":
                raise _NotLiteral
        self.next()
        out: JsonSchema = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out
