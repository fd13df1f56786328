"""Vetted third-party packages: installed ahead of time, mounted read-only in every jail.

The settings `python_packages` (pip requirement specifiers) and `javascript_packages`
(npm packages at exact versions), both comma-separated, name what snippets may import.
`sync` installs them into the data directory — ``packages/python-<hash>`` (``pip install
--target``, wheels only) and ``packages/javascript-<hash>/node_modules`` (``npm install
--ignore-scripts``) — and records what it installed in ``packages/manifest.json``;
`prepare` (called by `Engine.start`) syncs only when the lists changed since the last
sync.  Nothing is ever installed during an execution: the jail mounts the directories
read-only (`_sandbox/policy.py`), the Python fork server imports the listed packages
before it forks (`_jail/python_forkserver.py`), and Deno resolves bare specifiers from
the mounted ``node_modules`` (`_jail/js_runner.mjs`).  Anything else a snippet imports
fails at once with a message naming the setting.

A sync keeps the previous generation's directories (a server started before it still
mounts them) and removes older ones.  Runs in the service process (and in `coderunner
packages sync`), never in a jail.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._errors import CodeRunnerError
from ._settings import Settings, resolved_data_dir

log = logging.getLogger("coderunner.packages")

MANIFEST_VERSION = 1
_INSTALL_TIMEOUT_S = 900
# Top-level names of a distribution that are never worth importing ahead of time.
_NOT_PRELOADED = frozenset({"test", "tests", "testing", "docs", "doc", "examples", "benchmarks"})

# A pip requirement without options, URLs or markers (a comma separates the settings'
# entries, so a version range is one clause: `==`, `~=`, `>=`, ...).
_PIP_SPEC = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?:\[[A-Za-z0-9._-]+(?:\s*,\s*[A-Za-z0-9._-]+)*\])?"
    r"\s*(?:(?:===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)?$"
)
# An npm package at an exact version: name@1.2.3 (or @scope/name@1.2.3-pre.1).
_NPM_SPEC = re.compile(
    r"^(?P<name>(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*)"
    r"@(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$"
)

PYTHON_SETTING = "python_packages (CODERUNNER_PYTHON_PACKAGES)"
JAVASCRIPT_SETTING = "javascript_packages (CODERUNNER_JAVASCRIPT_PACKAGES)"


class PackagesError(CodeRunnerError):
    """The vetted packages cannot be installed (or their settings are malformed)."""


# -- the settings' lists ---------------------------------------------------------------


def package_list(text: str) -> tuple[str, ...]:
    """The entries of a comma- (or newline-) separated setting, stripped, empty ones
    dropped, in order, without repeats."""
    items = (item.strip() for item in text.replace("\n", ",").split(","))
    return tuple(dict.fromkeys(item for item in items if item))


def normalize_name(name: str) -> str:
    """A distribution's canonical name (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_requirements(settings: Settings) -> tuple[str, ...]:
    """`python_packages` as pip requirements; PackagesError names a malformed one."""
    specs = package_list(settings.python_packages)
    for spec in specs:
        if not _PIP_SPEC.match(spec):
            raise PackagesError(
                f"python_packages: {spec!r} is not a pip requirement specifier like "
                "'python-dateutil==2.9.0.post0' (no options, URLs or markers, and one "
                "version clause: the entries are comma-separated)"
            )
    return specs


def javascript_specifiers(settings: Settings) -> tuple[str, ...]:
    """`javascript_packages` as npm specifiers; PackagesError names a malformed one."""
    specs = package_list(settings.javascript_packages)
    for spec in specs:
        if not _NPM_SPEC.match(spec):
            raise PackagesError(
                f"javascript_packages: {spec!r} is not an npm package at an exact version "
                "like 'lodash@4.17.21'"
            )
    return specs


def _name_of(spec: str, pattern: re.Pattern[str]) -> str:
    match = pattern.match(spec)
    assert match is not None  # checked when the list was read
    return match.group("name")


# -- what is installed ---------------------------------------------------------------------


@dataclass(frozen=True)
class PythonPackages:
    """The Python packages of the jails: a `pip install --target` directory."""

    dir: str  # host path, mounted at protocol.PYTHON_PACKAGES
    requested: tuple[str, ...]  # the setting's specifiers
    distributions: dict[str, str] = field(default_factory=dict)  # every one: name → version
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)  # listed → modules

    @property
    def modules(self) -> tuple[str, ...]:
        """The listed distributions' top-level modules, imported before each fork."""
        return tuple(dict.fromkeys(m for ms in self.imports.values() for m in ms))

    def describe(self) -> tuple[str, ...]:
        """`name version (import module)` of each listed package, for messages."""
        out = []
        for name, modules in self.imports.items():
            text = f"{name} {self.distributions.get(name, '?')}"
            out.append(text + (f" (import {', '.join(modules)})" if modules else ""))
        return tuple(out)


@dataclass(frozen=True)
class JavaScriptPackages:
    """The npm packages of the jails: a `node_modules` directory."""

    dir: str  # host path of node_modules, mounted at protocol.JS_NODE_MODULES
    requested: tuple[str, ...]
    packages: dict[str, str] = field(default_factory=dict)  # every one: name → version
    listed: tuple[str, ...] = ()  # the requested packages' names

    def describe(self) -> tuple[str, ...]:
        """`name@version` of each listed package, for messages."""
        return tuple(f"{name}@{self.packages.get(name, '?')}" for name in self.listed)


@dataclass(frozen=True)
class Packages:
    """What the jails offer beyond the standard libraries (None: nothing)."""

    python: PythonPackages | None = None
    javascript: JavaScriptPackages | None = None


NO_PACKAGES = Packages()


# -- the manifest ------------------------------------------------------------------------


def packages_root(settings: Settings) -> Path:
    """Where the packages and their manifest live: ``<data_dir>/packages``."""
    return Path(resolved_data_dir(settings)) / "packages"


def _interpreter() -> str:
    """The Python the jail runs (the service's own base interpreter): its wheels' ABI."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def read_manifest(settings: Settings) -> dict[str, Any]:
    """The manifest of the last sync ({} when there was none or it is unreadable)."""
    path = packages_root(settings) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        return {}
    return manifest


def _python_entry_matches(entry: Any, requested: tuple[str, ...], root: Path) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("requested") == list(requested)
        and entry.get("interpreter") == _interpreter()
        and (root / str(entry.get("dir"))).is_dir()
    )


def _javascript_entry_matches(entry: Any, requested: tuple[str, ...], root: Path) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("requested") == list(requested)
        and (root / str(entry.get("dir")) / "node_modules").is_dir()
    )


def out_of_date(settings: Settings) -> list[str]:
    """The languages whose lists changed since the last sync (empty: nothing to do).

    An empty list needs nothing installed, whatever the manifest says.
    """
    manifest = read_manifest(settings)
    root = packages_root(settings)
    stale = []
    python = python_requirements(settings)
    if python and not _python_entry_matches(manifest.get("python"), python, root):
        stale.append("python")
    javascript = javascript_specifiers(settings)
    if javascript and not _javascript_entry_matches(manifest.get("javascript"), javascript, root):
        stale.append("javascript")
    return stale


def installed(settings: Settings) -> Packages:
    """The packages the settings ask for, as the last sync installed them.

    PackagesError when a non-empty list has not been synced (see `out_of_date`).
    """
    stale = out_of_date(settings)
    if stale:
        raise PackagesError(
            f"the {' and '.join(stale)} packages the settings name are not installed: run "
            "`coderunner packages sync`"
        )
    try:
        return _from_manifest(settings)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PackagesError(
            f"the packages manifest is malformed ({type(exc).__name__}: {exc}): run "
            "`coderunner packages sync --force`"
        ) from None


def _from_manifest(settings: Settings) -> Packages:
    manifest = read_manifest(settings)
    root = packages_root(settings)
    python = javascript = None
    if python_requirements(settings):
        entry = manifest["python"]
        python = PythonPackages(
            dir=str(root / entry["dir"]),
            requested=tuple(entry["requested"]),
            distributions=dict(entry["distributions"]),
            imports={name: tuple(mods) for name, mods in entry["imports"].items()},
        )
    if javascript_specifiers(settings):
        entry = manifest["javascript"]
        javascript = JavaScriptPackages(
            dir=str(root / entry["dir"] / "node_modules"),
            requested=tuple(entry["requested"]),
            packages=dict(entry["packages"]),
            listed=tuple(entry["listed"]),
        )
    return Packages(python=python, javascript=javascript)


def prepare(settings: Settings, progress: Callable[[str], None] | None = None) -> Packages:
    """The packages of the settings, synced first when their lists changed since the
    last sync (the service's start-up calls this); PackagesError when that fails."""
    if out_of_date(settings):
        sync(settings, progress=progress)
    return installed(settings)


# -- sync ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One sync at a time per data directory (several services may share it)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def sync(
    settings: Settings, *, force: bool = False, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Install what the settings' lists name (each language whose list changed, or every
    one with `force`) and write the manifest; returns it.  PackagesError on failure (the
    previous installation and manifest are then left as they were)."""
    say = progress or log.info
    python = python_requirements(settings)
    javascript = javascript_specifiers(settings)
    root = packages_root(settings)
    with _locked(root):
        old = read_manifest(settings)
        manifest: dict[str, Any] = {"version": MANIFEST_VERSION}
        keep: set[str] = set()
        for kind, requested in (("python", python), ("javascript", javascript)):
            python_kind = kind == "python"
            matches = _python_entry_matches if python_kind else _javascript_entry_matches
            install = _install_python if python_kind else _install_javascript
            label = "Python" if python_kind else "JavaScript"
            found = old.get(kind)
            old_entry: dict[str, Any] = found if isinstance(found, dict) else {}
            entry = old_entry
            if requested and (force or not matches(old_entry, requested, root)):
                say(f"installing {label} packages: {', '.join(requested)}")
                entry = {**install(root, requested), "previous": old_entry.get("dir")}
            elif not requested:  # the last installation stays, as the previous generation
                entry = {"previous": old_entry.get("dir") or old_entry.get("previous")}
            manifest[kind] = entry
            keep.update(str(d) for d in (entry.get("dir"), entry.get("previous")) if d)
        manifest["synced_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _write_json(root / "manifest.json", manifest)
        _remove_stale(root, keep)
    return manifest


def _write_json(path: Path, value: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".manifest-")
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, path)


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Remove the generations neither the new nor the previous manifest names, and any
    staging directory a failed sync left behind."""
    for child in root.iterdir():
        generation = re.match(r"^(python|javascript)-[0-9a-f]{12}$", child.name)
        if (generation and child.name not in keep) or child.name.startswith(".staging-"):
            shutil.rmtree(child, ignore_errors=True)


def _generation(kind: str, requested: tuple[str, ...], extra: str = "") -> str:
    digest = hashlib.sha256(json.dumps([kind, list(requested), extra]).encode()).hexdigest()
    return f"{kind}-{digest[:12]}"


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        raise PackagesError(f"{what} took longer than {_INSTALL_TIMEOUT_S} s") from None
    except OSError as exc:
        raise PackagesError(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-3000:]
        raise PackagesError(f"{what} failed (exit {done.returncode}):\n{output}")


def _install_python(root: Path, requested: tuple[str, ...]) -> dict[str, Any]:
    """`pip install --target` into a staging directory, then moved into place."""
    pip = [sys.executable, "-m", "pip"]
    probe = subprocess.run([*pip, "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise PackagesError(
            f"pip is not available to {sys.executable}, so python_packages cannot be "
            "installed: install it (e.g. `python -m ensurepip`)"
        )
    name = _generation("python", requested, _interpreter())
    staging = Path(tempfile.mkdtemp(prefix=".staging-python-", dir=root))
    pip_log = staging.with_name(staging.name + "-log")  # a staging name: cleaned if left
    try:
        # Wheels only: no package's build code runs on this machine.  Byte-compiled
        # (pip's default): the jail's copy is read-only, so nothing could cache it there.
        try:
            _run(
                [*pip, "install", "--target", str(staging), "--only-binary=:all:", "--no-input",
                 "--disable-pip-version-check", "--no-warn-script-location",
                 "--log", str(pip_log / "pip.log"), *requested],
                f"pip install {' '.join(requested)}",
            )  # fmt: skip
        except PackagesError as exc:
            unreachable = _unreachable_indexes(pip_log / "pip.log")
            if unreachable:
                raise PackagesError(f"{exc}\n{unreachable}") from None
            raise
        distributions, top_levels = _read_dist_info(staging)
        imports: dict[str, list[str]] = {}
        for spec in requested:
            wanted = normalize_name(_name_of(spec, _PIP_SPEC))
            found = next((d for d in distributions if normalize_name(d) == wanted), None)
            if found is None:
                raise PackagesError(f"pip installed no distribution named {wanted!r}")
            modules = [m for m in top_levels.get(found, []) if m not in _NOT_PRELOADED]
            imports[found] = [m for m in modules if not m.startswith("_")] or modules
        _move_into_place(staging, root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(pip_log, ignore_errors=True)
    return {
        "requested": list(requested),
        "interpreter": _interpreter(),
        "dir": name,
        "distributions": distributions,
        "imports": imports,
    }


# What pip's log says (at a level it does not print) when an index did not answer: an
# unreachable registry otherwise reads like an unknown package ("from versions: none").
_INDEX_UNREACHABLE = re.compile(
    r"Could not fetch URL (?P<url>\S+): (?P<why>(?:connection error|.*timed out|"
    r"There was a problem confirming the ssl certificate).*?)(?: - skipping)?$"
)


def _unreachable_indexes(log_file: Path) -> str:
    """Why pip could not reach its package indexes, from its log ('' when it could)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    failures = [m for m in map(_INDEX_UNREACHABLE.search, lines) if m]
    if not failures:
        return ""
    reasons = dict.fromkeys(f"{m['url']}: {m['why'][:300]}" for m in failures)
    return (
        "pip could not reach the package index (check this machine's network access and "
        "pip's index settings, e.g. PIP_INDEX_URL or pip.conf):\n" + "\n".join(list(reasons)[:3])
    )


def _move_into_place(staging: Path, target: Path) -> None:
    staging.chmod(0o755)  # (mkdtemp's 0700) readable by the jail's user, whoever it maps to
    if target.exists():  # an earlier sync of the same lists: replace it
        shutil.rmtree(target)
    os.rename(staging, target)


def _read_dist_info(target: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(name → version, name → top-level module names) of what pip installed."""
    versions: dict[str, str] = {}
    modules: dict[str, list[str]] = {}
    for info in sorted(target.glob("*.dist-info")):
        fields: dict[str, str] = {}
        with contextlib.suppress(OSError):
            for line in (info / "METADATA").read_text(errors="replace").splitlines():
                if not line.strip():
                    break  # the headers end at the first blank line
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
        name = fields.get("name")
        if not name:
            continue
        versions[name] = fields.get("version", "?")
        modules[name] = _top_levels(info)
    return versions, modules


def _top_levels(info: Path) -> list[str]:
    """A distribution's importable top-level names: top_level.txt, else its RECORD."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        names = [n.strip() for n in (info / "top_level.txt").read_text().splitlines()]
    if not any(names):
        with contextlib.suppress(OSError):
            for line in (info / "RECORD").read_text().splitlines():
                path = line.split(",", 1)[0]
                first, sep, _ = path.partition("/")
                if sep and not first.endswith((".dist-info", ".data")) and first != "..":
                    names.append(first)
                elif not sep and path.endswith(".py"):
                    names.append(path[:-3])
                elif not sep and ".cpython-" in path and path.endswith(".so"):
                    names.append(path.split(".", 1)[0])
    out = [n for n in dict.fromkeys(names) if n.isidentifier() and n != "__pycache__"]
    return sorted(out)


def _install_javascript(root: Path, requested: tuple[str, ...]) -> dict[str, Any]:
    """`npm install --ignore-scripts` into a staging directory, then moved into place."""
    npm = shutil.which("npm")
    if npm is None:
        raise PackagesError(
            "npm is not installed on this machine, so javascript_packages cannot be "
            "installed: install Node.js's npm (e.g. `apt-get install npm`), or empty the "
            "setting"
        )
    name = _generation("javascript", requested)
    staging = Path(tempfile.mkdtemp(prefix=".staging-javascript-", dir=root))
    try:
        (staging / "package.json").write_text(
            json.dumps({"name": "coderunner-packages", "private": True}) + "\n"
        )
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
        # --ignore-scripts: no package's install scripts run on this machine.
        _run(
            [npm, "install", "--prefix", str(staging), "--ignore-scripts", "--no-audit",
             "--no-fund", "--save-exact", "--omit=dev", "--no-bin-links", *requested],
            f"npm install {' '.join(requested)}",
            env=env,
        )  # fmt: skip
        packages = _read_node_modules(staging / "node_modules")
        listed = [_name_of(spec, _NPM_SPEC) for spec in requested]
        missing = [n for n in listed if n not in packages]
        if missing:
            raise PackagesError(f"npm installed no package named {', '.join(missing)}")
        _move_into_place(staging, root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"requested": list(requested), "dir": name, "packages": packages, "listed": listed}


def _read_node_modules(node_modules: Path) -> dict[str, str]:
    """name → version of every package at the top of node_modules."""
    found: dict[str, str] = {}
    if not node_modules.is_dir():
        return found
    dirs = [p for p in node_modules.iterdir() if not p.name.startswith(".")]
    for path in sorted(dirs):
        candidates = sorted(path.iterdir()) if path.name.startswith("@") else [path]
        for package in candidates:
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((package / "package.json").read_text())
                if isinstance(meta, dict) and isinstance(meta.get("name"), str):
                    found[meta["name"]] = str(meta.get("version", "?"))
    return found


# -- what the runtimes are (GET /v1/runtimes) ---------------------------------------------


class PackageInfo(BaseModel):
    """One installed package."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    requested: str | None = Field(
        None,
        description="The specifier of the setting that installed it; null for a dependency of one.",
    )
    imports: list[str] = Field(
        default_factory=list, description="Python: the top-level modules it provides."
    )


class RuntimeInfo(BaseModel):
    """One language: the runtime that runs it, its versions, and its packages."""

    model_config = ConfigDict(extra="forbid")

    language: str
    runtime: str = Field(description="CPython or Deno.")
    version: str
    versions: dict[str, str] = Field(
        default_factory=dict, description="Deno: its V8 and TypeScript versions."
    )
    packages: list[PackageInfo] = Field(
        default_factory=list, description="Importable beyond the standard library."
    )


class RuntimesInfo(BaseModel):
    """What `GET /v1/runtimes` answers."""

    model_config = ConfigDict(extra="forbid")

    languages: list[RuntimeInfo]


@functools.lru_cache(maxsize=1)
def deno_versions() -> dict[str, str]:
    """`deno --version` of the jail's Deno: {"deno", "v8", "typescript"} ({} if unknown)."""
    from ._sandbox.policy import deno_executable

    try:
        out = subprocess.run(
            [deno_executable(), "--version"], capture_output=True, text=True, timeout=30, env={}
        ).stdout
    except Exception:
        return {}
    versions = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("deno", "v8", "typescript"):
            versions[words[0]] = words[1]
    return versions


def runtimes(packages: Packages) -> RuntimesInfo:
    """Each language, the version of its runtime, and its packages."""
    python_packages: list[PackageInfo] = []
    if packages.python is not None:
        py = packages.python
        by_name = {normalize_name(_name_of(s, _PIP_SPEC)): s for s in py.requested}
        for name, version in sorted(py.distributions.items(), key=lambda kv: kv[0].lower()):
            python_packages.append(
                PackageInfo(
                    name=name,
                    version=version,
                    requested=by_name.get(normalize_name(name)),
                    imports=list(py.imports.get(name, ())),
                )
            )
    js_packages: list[PackageInfo] = []
    if packages.javascript is not None:
        js = packages.javascript
        specs = dict(zip(js.listed, js.requested, strict=False))
        for name, version in sorted(js.packages.items()):
            js_packages.append(PackageInfo(name=name, version=version, requested=specs.get(name)))
    deno = deno_versions()
    deno_version = deno.get("deno", "unknown")
    extra = {k: v for k, v in deno.items() if k != "deno"}
    return RuntimesInfo(
        languages=[
            RuntimeInfo(
                language="python",
                runtime=platform.python_implementation(),
                version=platform.python_version(),
                packages=python_packages,
            ),
            RuntimeInfo(
                language="javascript",
                runtime="Deno",
                version=deno_version,
                versions=extra,
                packages=js_packages,
            ),
            RuntimeInfo(
                language="typescript",
                runtime="Deno",
                version=deno_version,
                versions=extra,
                packages=[p.model_copy() for p in js_packages],
            ),
        ]
    )


def offered(settings: Settings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Python, JavaScript) descriptions of the packages snippets can import, for tool
    descriptions: as installed, else (not synced yet) the settings' own specifiers."""
    try:
        packages = installed(settings)
    except PackagesError:
        return package_list(settings.python_packages), package_list(settings.javascript_packages)
    python = packages.python.describe() if packages.python else ()
    javascript = packages.javascript.describe() if packages.javascript else ()
    return python, javascript
