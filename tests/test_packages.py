"""Vetted packages: `coderunner packages sync` installs them ahead of time into the data
directory (from PyPI and npm: python-dateutil, numpy and lodash, pinned; once per
session), a real server mounts them read-only, snippets import them, anything else fails
at once naming the setting, GET /v1/runtimes lists them, and the jail is as closed as
without them: numpy's thread pools start no thread, the process and memory limits hold.
Bad input, each for real: unknown packages and versions, an unreachable registry, a
package removed from the list, packages that start programs or write caches."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import coderunner
from _server import SMALL_POOLS, ServerProcess, free_port, running_server
from coderunner import _packages
from coderunner._jail import protocol
from coderunner._packages import PackagesError
from coderunner._sandbox.policy import (
    DENO_PERMISSIONS,
    DENO_PERMISSIONS_WITH_PACKAGES,
    build_policy,
)
from coderunner._settings import Settings
from conftest import JAIL_PROBE

pytestmark = pytest.mark.timeout(300)

DATEUTIL = "python-dateutil==2.9.0.post0"
NUMPY = "numpy==2.2.6"  # manylinux wheels for CPython 3.10-3.13; OpenBLAS bundled
PYTHON_PACKAGES = f"{DATEUTIL},{NUMPY}"
JAVASCRIPT_PACKAGES = "lodash@4.17.21"
EXE = [sys.executable, "-m", "coderunner"]


def settings_for(data_dir: Path, python: str = "", javascript: str = "") -> Settings:
    return dataclasses.replace(
        Settings(python_pool_size=1, javascript_pool_size=1),
        data_dir=str(data_dir),
        python_packages=python,
        javascript_packages=javascript,
    )


# -- the settings' lists (no network) ----------------------------------------------------


def test_lists_are_comma_separated_and_checked(tmp_path: Path) -> None:
    assert _packages.package_list(" a==1, b ,\nc==2,, a==1") == ("a==1", "b", "c==2")
    settings = settings_for(tmp_path, "python-dateutil==2.9.0.post0, six~=1.16", "lodash@4.17.21")
    assert _packages.python_requirements(settings) == ("python-dateutil==2.9.0.post0", "six~=1.16")
    assert _packages.javascript_specifiers(settings) == ("lodash@4.17.21",)
    for python in ("--index-url=https://evil.example", "x @ https://e.example/x.whl", "a;b"):
        with pytest.raises(PackagesError, match="python_packages"):
            _packages.python_requirements(settings_for(tmp_path, python))
    for javascript in ("lodash", "lodash@^4.17.0", "lodash@latest", "--registry=x@1.0.0"):
        with pytest.raises(PackagesError, match="javascript_packages"):
            _packages.javascript_specifiers(settings_for(tmp_path, javascript=javascript))


def test_empty_lists_need_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert _packages.out_of_date(settings) == []
    assert _packages.prepare(settings) == _packages.NO_PACKAGES
    assert not (tmp_path / "packages").exists()  # nothing written either


def test_unsynced_lists_are_out_of_date(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, PYTHON_PACKAGES, JAVASCRIPT_PACKAGES)
    assert _packages.out_of_date(settings) == ["python", "javascript"]
    with pytest.raises(PackagesError, match="coderunner packages sync"):
        _packages.installed(settings)
    # The tool descriptions still name what the settings ask for.
    assert _packages.offered(settings) == ((DATEUTIL, NUMPY), (JAVASCRIPT_PACKAGES,))


def test_a_sync_without_npm_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packages.shutil, "which", lambda name: None)
    with pytest.raises(PackagesError, match="npm is not installed"):
        _packages.sync(settings_for(tmp_path, javascript=JAVASCRIPT_PACKAGES))
    assert not (tmp_path / "packages" / "manifest.json").exists()


def test_a_sync_keeps_the_previous_generation_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installs faked: each list change is a new directory; a server started before the
    sync still mounts the previous one, so it stays; older ones go."""

    def fake_install(root: Path, requested: tuple[str, ...]) -> dict[str, Any]:
        name = _packages._generation("javascript", requested)
        (root / name / "node_modules").mkdir(parents=True)
        return {"requested": list(requested), "dir": name, "packages": {}, "listed": []}

    monkeypatch.setattr(_packages, "_install_javascript", fake_install)
    dirs = []
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        settings = settings_for(tmp_path, javascript=f"left-pad@{version}")
        manifest = _packages.sync(settings)
        dirs.append(manifest["javascript"]["dir"])
        assert _packages.out_of_date(settings) == []
        assert _packages.sync(settings)["javascript"]["dir"] == dirs[-1]  # unchanged: kept
    root = tmp_path / "packages"
    assert not (root / dirs[0]).exists()
    assert (root / dirs[1]).is_dir() and (root / dirs[2]).is_dir()


def test_top_level_modules_from_record_when_there_is_no_top_level_txt(tmp_path: Path) -> None:
    info = tmp_path / "demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\nBody\n")
    (info / "RECORD").write_text(
        "demo/__init__.py,,\ndemo/core.py,,\n_demo_native.cpython-311-x86_64-linux-gnu.so,,\n"
        "single.py,,\ndemo-1.0.dist-info/RECORD,,\n../../bin/demo,,\n"
    )
    assert _packages._read_dist_info(tmp_path) == (
        {"demo": "1.0"},
        {"demo": ["_demo_native", "demo", "single"]},
    )


def test_the_policy_mounts_packages_read_only(tmp_path: Path) -> None:
    (tmp_path / "py").mkdir()
    (tmp_path / "node_modules").mkdir()
    closed = build_policy()
    assert closed.deno_permissions == DENO_PERMISSIONS and "--no-npm" in DENO_PERMISSIONS
    assert not any("NUM_THREADS" in name for name, _ in closed.env)
    policy = build_policy(
        python_packages=str(tmp_path / "py"), node_modules=str(tmp_path / "node_modules")
    )
    targets = {m.target: m.source for m in policy.mounts if not m.symlink}
    assert targets[protocol.PYTHON_PACKAGES] == str(tmp_path / "py")
    assert targets[protocol.JS_NODE_MODULES] == str(tmp_path / "node_modules")
    assert ("OPENBLAS_NUM_THREADS", "1") in policy.env
    assert policy.deno_permissions == DENO_PERMISSIONS_WITH_PACKAGES
    reads = [p for p in DENO_PERMISSIONS_WITH_PACKAGES if p.startswith("--allow-read")]
    assert reads == [f"--allow-read=/tmp,{protocol.JS_NODE_MODULES}"]
    writes = [p for p in DENO_PERMISSIONS_WITH_PACKAGES if p.startswith("--allow-write")]
    assert writes == [f"--allow-write=/tmp,{protocol.RESULT_FIFO}"]
    assert "--no-remote" in DENO_PERMISSIONS_WITH_PACKAGES
    assert not [p for p in DENO_PERMISSIONS_WITH_PACKAGES if p.startswith("--allow-net")]


# -- without packages: the messages name the settings ----------------------------------------


def test_without_packages_an_import_names_the_setting() -> None:
    result = coderunner.run("import json\nimport requests", "python")
    assert result.error is not None and result.error.name == "ModuleNotFoundError"
    assert result.error.line == 2
    assert "No module named 'requests'" in result.error.message
    assert "only the standard library" in result.error.message
    assert "CODERUNNER_PYTHON_PACKAGES" in result.error.message
    for code in ('import _ from "lodash";\nreturn 1;', 'const x = 1;\nrequire("lodash");'):
        for language in ("javascript", "typescript"):
            result = coderunner.run(code, language)
            assert result.error is not None, result
            assert 'the package "lodash" is not installed' in result.error.message
            assert "CODERUNNER_JAVASCRIPT_PACKAGES" in result.error.message
            assert result.error.line in (1, 2)
    result = coderunner.run('import fs from "fs";\nreturn 1;', "javascript")
    assert result.error is not None and 'import it as "node:fs"' in result.error.message


def test_probing_for_a_module_still_works() -> None:
    code = (
        "import importlib.util\n"
        "try:\n"
        "    import requests\n"
        "    found = True\n"
        "except ImportError:\n"
        "    found = False\n"
        "[found, importlib.util.find_spec('requests') is None]"
    )
    result = coderunner.run(code, "python")
    assert result.ok and result.result == [False, True], result


def test_a_finder_appended_later_still_gets_its_turn() -> None:
    code = (
        "import sys, importlib.util\n"
        "class Loader:\n"
        "    def create_module(self, spec):\n"
        "        return None\n"
        "    def exec_module(self, module):\n"
        "        module.x = 42\n"
        "class Finder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'virtual_mod':\n"
        "            return importlib.util.spec_from_loader(name, Loader())\n"
        "sys.meta_path.append(Finder())\n"
        "import virtual_mod\n"
        "virtual_mod.x"
    )
    result = coderunner.run(code, "python")
    assert result.ok and result.result == 42, result


# -- a real sync and a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory synced by `coderunner packages sync` from PyPI and npm."""
    data = tmp_path_factory.mktemp("packages-data")
    env = {
        **os.environ,
        "CODERUNNER_DATA_DIR": str(data),
        "CODERUNNER_PYTHON_PACKAGES": PYTHON_PACKAGES,
        "CODERUNNER_JAVASCRIPT_PACKAGES": JAVASCRIPT_PACKAGES,
    }
    out = subprocess.run(
        [*EXE, "packages", "sync"], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "installing Python packages" in out.stderr
    assert "installing JavaScript packages" in out.stderr
    answer = json.loads(out.stdout)
    runtimes = {r["language"]: r for r in answer["languages"]}
    python = {p["name"]: p for p in runtimes["python"]["packages"]}
    assert python["python-dateutil"]["version"] == "2.9.0.post0"
    assert python["python-dateutil"]["imports"] == ["dateutil"]
    assert python["python-dateutil"]["requested"] == DATEUTIL
    assert python["numpy"]["requested"] == NUMPY and python["numpy"]["imports"] == ["numpy"]
    assert "six" in python and python["six"]["requested"] is None  # a dependency
    assert runtimes["javascript"]["packages"][0]["name"] == "lodash"
    # Unchanged lists: the next sync installs nothing.
    again = subprocess.run(
        [*EXE, "packages", "sync"], capture_output=True, text=True, timeout=120, env=env
    )
    assert again.returncode == 0 and "installing" not in again.stderr, again.stderr
    listed = subprocess.run(
        [*EXE, "packages", "list"], capture_output=True, text=True, timeout=120, env=env
    )
    assert listed.returncode == 0 and json.loads(listed.stdout) == answer
    return data


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ServerProcess]:
    env = {
        "CODERUNNER_DATA_DIR": str(data_dir),
        "CODERUNNER_PYTHON_PACKAGES": PYTHON_PACKAGES,
        "CODERUNNER_JAVASCRIPT_PACKAGES": JAVASCRIPT_PACKAGES,
    }
    with running_server(*SMALL_POOLS, env=env) as srv:
        yield srv


def run(server: ServerProcess, language: str, code: str, **fields: Any) -> dict[str, Any]:
    body = {"language": language, "code": code, **fields}
    response = httpx.post(f"{server.base_url}/v1/execute", json=body, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_python_imports_an_installed_package(server: ServerProcess) -> None:
    code = (
        "import sys\n"
        "preloaded = 'dateutil' in sys.modules\n"
        "from dateutil import parser\n"
        "def main(when):\n"
        "    return [preloaded, parser.parse(when).isoformat()]\n"
    )
    result = run(server, "python", code, inputs={"when": "2024-03-05 07:08"})
    assert result["ok"], result
    assert result["result"] == [True, "2024-03-05T07:08:00"]  # imported before the fork


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("javascript", 'import _ from "lodash";\nreturn [_.chunk([1, 2, 3], 2), _.VERSION];'),
        ("javascript", 'const _ = require("lodash");\nreturn [_.chunk([1, 2, 3], 2), _.VERSION];'),
        (
            "typescript",
            'import _ from "lodash";\nconst pairs: number[][] = _.chunk([1, 2, 3], 2);\n'
            "return [pairs, _.VERSION as string];",
        ),
        (
            "javascript",
            'import chunk from "lodash/chunk.js";\n'
            "function main() {\n  return [chunk([1, 2, 3], 2), '4.17.21'];\n}",
        ),
    ],
)
def test_javascript_imports_an_installed_package(
    server: ServerProcess, language: str, code: str
) -> None:
    result = run(server, language, code)
    assert result["ok"], result
    assert result["result"] == [[[1, 2], [3]], "4.17.21"]


def test_anything_else_fails_at_once_naming_the_setting(server: ServerProcess) -> None:
    result = run(server, "python", "import os\nimport requests")
    error = result["error"]
    assert (error["type"], error["name"], error["line"]) == (
        "runtime_error",
        "ModuleNotFoundError",
        2,
    )
    assert "No module named 'requests'" in error["message"]
    assert "python-dateutil 2.9.0.post0 (import dateutil)" in error["message"]
    assert "python_packages (CODERUNNER_PYTHON_PACKAGES)" in error["message"]
    for code in ('import pad from "left-pad";\nreturn 1;', 'const x = 1;\nrequire("left-pad");'):
        error = run(server, "javascript", code)["error"]
        assert error["type"] == "runtime_error", error
        assert 'the package "left-pad" is not installed' in error["message"]
        assert "lodash@4.17.21" in error["message"]
        assert "javascript_packages (CODERUNNER_JAVASCRIPT_PACKAGES)" in error["message"]
        assert error["line"] in (1, 2)


def test_runtimes_lists_languages_versions_and_packages(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/v1/runtimes", timeout=30)
    assert response.status_code == 200, response.text
    runtimes = {r["language"]: r for r in response.json()["languages"]}
    assert set(runtimes) == {"python", "javascript", "typescript"}
    assert runtimes["python"]["runtime"] == "CPython"
    assert runtimes["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    for language in ("javascript", "typescript"):
        deno = runtimes[language]
        assert deno["runtime"] == "Deno" and deno["version"][0].isdigit()
        assert set(deno["versions"]) == {"v8", "typescript"}
        assert deno["packages"] == [
            {"name": "lodash", "version": "4.17.21", "requested": "lodash@4.17.21", "imports": []}
        ]
    python = {p["name"]: p for p in runtimes["python"]["packages"]}
    assert python["python-dateutil"]["version"] == "2.9.0.post0"


def test_tool_descriptions_name_the_packages(server: ServerProcess) -> None:
    tools = httpx.get(f"{server.base_url}/v1/tools", timeout=30).json()["tools"]
    by_name = {t["name"]: t["description"] for t in tools}
    assert "python-dateutil 2.9.0.post0 (import dateutil)" in by_name["execute-python"]
    assert "no numpy" not in by_name["execute-python"]
    for name in ("execute-javascript", "execute-typescript"):
        assert "lodash@4.17.21" in by_name[name]
        assert "Not available: other npm packages" in by_name[name]


# -- the jail is as closed with packages mounted -----------------------------------------------


def test_the_jail_holds_with_packages_mounted(server: ServerProcess, data_dir: Path) -> None:
    seen = run(server, "python", JAIL_PROBE)
    assert seen["ok"], seen
    probe = seen["result"]
    assert probe["seccomp"] == "2" and probe["no_new_privs"] == "1"
    assert int(probe["cap_eff"], 16) == 0 and int(probe["cap_bnd"], 16) == 0
    assert probe["pid"] < 10 and probe["net"] in ([], ["lo"])
    assert not probe["host_root_visible"]
    # Where the packages come from on the host stays hidden.
    code = "import os\n[open('/proc/self/mountinfo').read(), os.path.exists(inputs['data'])]"
    result = run(server, "python", code, inputs={"data": str(data_dir)})
    assert result["ok"] and result["result"] == ["", False], result


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "open('/packages/python/dateutil/parser/__init__.py', 'a').write('x')"),
        ("python", "open('/packages/python/evil.py', 'w').write('x')"),
        ("python", "import os\nos.remove('/packages/python/six.py')"),
        ("python", "open('/node_modules/lodash/lodash.js', 'a').write('x')"),
        ("javascript", 'Deno.writeTextFileSync("/node_modules/lodash/lodash.js", "x");'),
        (
            "javascript",
            'import fs from "node:fs";\nfs.writeFileSync("/node_modules/evil.js", "x");\nreturn 1;',
        ),
        ("javascript", 'return Deno.readTextFileSync("/packages/python/six.py");'),
    ],
)
def test_the_packages_are_read_only(server: ServerProcess, language: str, code: str) -> None:
    result = run(server, language, code)
    assert result["ok"] is False and result["error"]["type"] == "runtime_error", result
    # And nothing changed for the next execution.
    check = run(
        server, "python", "import dateutil.parser, six\n'x' in open(six.__file__).read()[-5:]"
    )
    assert check["ok"] and check["result"] is False, check


def test_the_engine_syncs_at_start_up_when_the_lists_changed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, javascript="lodash@4.17.20")

    async def main() -> Any:
        async with coderunner.Engine(settings, warm=()) as engine:
            return await engine.execute(
                coderunner.ExecutionRequest(
                    language="javascript", code='import _ from "lodash";\nreturn _.VERSION;'
                )
            )

    result = asyncio.run(main())
    assert result.ok and result.result == "4.17.20", result
    manifest = json.loads((tmp_path / "packages" / "manifest.json").read_text())
    assert manifest["javascript"]["requested"] == ["lodash@4.17.20"]
    assert _packages.out_of_date(settings) == []


# -- a native package: numpy at the default memory_mb -------------------------------------

NUMPY_PROBE = """\
import ctypes, sys, threading
preloaded = 'numpy' in sys.modules
import numpy as np
a = np.arange(90000, dtype=np.float64).reshape(300, 300) / 1e4
product = np.dot(a, a.T)  # BLAS (OpenBLAS, bundled in the wheel)
blas = next(line.split()[-1] for line in open('/proc/self/maps') if 'openblas' in line)
blas_threads = ctypes.CDLL(blas).scipy_openblas_get_num_threads64_()
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
threads_after_dot = int(status['Threads'])
try:
    np.ones((1024, 1024, 64))  # 512 MiB, above the default limit
    too_big = None
except MemoryError as exc:
    too_big = str(exc)
release = threading.Event()
started, refused = 0, None
try:
    for _ in range(64):
        threading.Thread(target=release.wait).start()
        started += 1
except RuntimeError as exc:
    refused = str(exc)
release.set()
{'preloaded': preloaded, 'version': np.__version__, 'trace': float(product.trace()),
 'blas_threads': blas_threads, 'threads_after_dot': threads_after_dot,
 'too_big': too_big, 'started': started, 'refused': refused}
"""


def test_numpy_works_single_threaded_within_the_limits(server: ServerProcess) -> None:
    """At the default memory_mb: numpy is imported before the fork, its BLAS runs on the
    calling thread only (the jail sets OPENBLAS/OMP/MKL_NUM_THREADS=1), an allocation
    above the limit is a MemoryError, and the process limit still stops threads."""
    result = run(server, "python", NUMPY_PROBE)
    assert result["ok"], result
    probe = result["result"]
    assert probe["preloaded"] is True and probe["version"] == "2.2.6"
    a = [[(r * 300 + c) / 1e4 for c in range(300)] for r in range(300)]
    assert probe["trace"] == pytest.approx(sum(sum(x * x for x in row) for row in a))
    assert probe["blas_threads"] == 1
    assert probe["threads_after_dot"] == 1  # OpenBLAS started no pool of its own
    assert probe["too_big"] is not None and "Unable to allocate" in probe["too_big"]
    assert probe["refused"] == "can't start new thread"
    assert probe["started"] < Settings().max_processes
    names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
    code = "import os\n{k: os.environ.get(k) for k in inputs['names']}"
    env = run(server, "python", code, inputs={"names": names})
    assert env["ok"] and set(env["result"].values()) == {"1"}, env
    assert run(server, "python", "import numpy\nint(numpy.arange(4).sum())")["result"] == 6


def test_a_package_that_starts_a_program_gets_a_clear_error(server: ServerProcess) -> None:
    """numpy's f2py compiles by running a compiler; the jail starts no program, so it
    ends with an error in the result (no hang), and the service serves the next one."""
    code = (
        "import sys\n"
        "from numpy.f2py import f2py2e\n"
        "open('/tmp/m.f90', 'w').write('subroutine s(a)\\n integer a\\n a = 1\\nend\\n')\n"
        "sys.argv = ['f2py', '-c', '/tmp/m.f90', '-m', 'm']\n"
        "f2py2e.main()\n"
    )
    result = run(server, "python", code, timeout_ms=20000)
    assert result["ok"] is False and result["error"]["type"] == "runtime_error", result
    assert result["error"]["line"] == 5
    assert "Operation not permitted" in result["stderr"]  # its try of /bin/sh
    spawn = run(server, "python", "import subprocess, sys\nsubprocess.run([sys.executable, '-V'])")
    assert spawn["error"]["name"] == "PermissionError", spawn
    assert spawn["error"]["line"] == 2
    assert run(server, "python", "1 + 1")["result"] == 2
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


# -- bad input: unknown packages and versions, an unreachable registry ---------------------


def _sync(
    data: Path, python: str = "", javascript: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXE, "packages", "sync"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "CODERUNNER_DATA_DIR": str(data),
            "CODERUNNER_PYTHON_PACKAGES": python,
            "CODERUNNER_JAVASCRIPT_PACKAGES": javascript,
            **env,
        },
    )


def _generations(data: Path) -> list[str]:
    root = data / "packages"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


@pytest.mark.parametrize(
    ("python", "javascript", "named"),
    [
        ("coderunner-no-such-package-x7==1.0", "", "coderunner-no-such-package-x7"),
        ("python-dateutil==0.0.999", "", "python-dateutil==0.0.999"),
        ("", "coderunner-no-such-package-x7@1.0.0", "coderunner-no-such-package-x7"),
        ("", "lodash@0.0.999", "lodash@0.0.999"),
    ],
)
def test_an_unknown_package_or_version_fails_the_sync_naming_it(
    data_dir: Path, python: str, javascript: str, named: str
) -> None:
    """pip's or npm's own error, naming the package; the last good installation and its
    manifest are left exactly as they were (a server keeps using them)."""
    manifest = (data_dir / "packages" / "manifest.json").read_bytes()
    before = _generations(data_dir)
    out = _sync(data_dir, python or PYTHON_PACKAGES, javascript or JAVASCRIPT_PACKAGES)
    assert out.returncode != 0
    assert named in out.stderr
    assert ("pip install" if python else "npm install") in out.stderr
    assert "could not reach" not in out.stderr
    assert (data_dir / "packages" / "manifest.json").read_bytes() == manifest
    assert _generations(data_dir) == before  # no staging directory left either


def test_serve_does_not_start_with_an_unknown_package(tmp_path: Path) -> None:
    """Start-up syncs, the sync fails: the server exits non-zero naming the package, and
    nothing ever listened on its port."""
    port = free_port()
    for variable, value in (
        ("CODERUNNER_PYTHON_PACKAGES", "coderunner-no-such-package-x7==1.0"),
        ("CODERUNNER_JAVASCRIPT_PACKAGES", "lodash@0.0.999"),
    ):
        out = subprocess.run(
            [*EXE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "CODERUNNER_DATA_DIR": str(tmp_path), variable: value},
        )
        assert out.returncode != 0, out.stderr
        assert value in out.stderr
        assert "Application startup failed" in out.stderr
        assert "Uvicorn running" not in out.stderr
        assert not (tmp_path / "packages" / "manifest.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_an_unreachable_registry_fails_the_sync_and_installs_nothing(tmp_path: Path) -> None:
    """pip and npm pointed at a port nothing listens on (their standard settings): each
    sync fails at once with the tool's error, and nothing is installed or recorded."""
    closed = f"http://127.0.0.1:{free_port()}"
    pip_env = {
        "PIP_CONFIG_FILE": os.devnull,  # no configured mirrors or find-links
        "PIP_INDEX_URL": f"{closed}/simple/",
        "PIP_FIND_LINKS": " ",
        "PIP_RETRIES": "0",
        "PIP_DEFAULT_TIMEOUT": "10",
    }
    out = _sync(tmp_path, python=DATEUTIL, **pip_env)
    assert out.returncode != 0
    assert "pip install python-dateutil==2.9.0.post0 failed" in out.stderr
    # (pip's own words read like an unknown package: its log says what happened)
    assert "pip could not reach the package index" in out.stderr
    assert f"{closed}/simple/python-dateutil/: connection error" in out.stderr
    assert "Connection refused" in out.stderr
    npm_env = {
        "npm_config_registry": f"{closed}/",
        "npm_config_cache": str(tmp_path / "npm-cache"),  # nothing cached to fall back on
        "npm_config_fetch_retries": "0",
    }
    out = _sync(tmp_path, javascript=JAVASCRIPT_PACKAGES, **npm_env)
    assert out.returncode != 0
    assert "npm install lodash@4.17.21 failed" in out.stderr
    assert "ECONNREFUSED" in out.stderr
    assert _generations(tmp_path) == [".lock"]  # no manifest, no installation, no staging
    listed = subprocess.run(
        [*EXE, "packages", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CODERUNNER_DATA_DIR": str(tmp_path),
             "CODERUNNER_JAVASCRIPT_PACKAGES": JAVASCRIPT_PACKAGES},
    )  # fmt: skip
    assert listed.returncode != 0 and "coderunner packages sync" in listed.stderr


# -- a package removed from the list ---------------------------------------------------------


def _execute(settings: Settings, *jobs: tuple[str, str]) -> list[coderunner.ExecutionResult]:
    """Each (language, code) in one engine of these settings."""

    async def main() -> list[coderunner.ExecutionResult]:
        async with coderunner.Engine(settings, warm=()) as engine:
            return [
                await engine.execute(coderunner.ExecutionRequest(language=language, code=code))
                for language, code in jobs
            ]

    return asyncio.run(main())


def test_a_package_removed_from_the_list_is_gone_after_the_next_sync(
    data_dir: Path, tmp_path: Path
) -> None:
    """python-dateutil and numpy, then only six; lodash, then only cross-spawn: after the
    sync, the removed ones fail with the clear message in both languages, and
    cross-spawn (which starts programs) gets a clear refusal, at its line."""
    data = tmp_path / "data"
    shutil.copytree(data_dir, data, symlinks=True)
    manifest = json.loads((data / "packages" / "manifest.json").read_text())
    six = f"six=={manifest['python']['distributions']['six']}"
    settings = settings_for(data, six, "cross-spawn@7.0.6")
    assert _packages.out_of_date(settings) == ["python", "javascript"]
    _packages.sync(settings)
    assert _packages.out_of_date(settings) == []
    results = _execute(
        settings,
        ("python", "import six\nfrom dateutil import parser"),
        ("python", "import six\nimport numpy"),
        ("python", "import six\nsix.PY3"),
        ("javascript", 'const x = 1;\nconst _ = require("lodash");\nreturn 1;'),
        ("typescript", 'import _ from "lodash";\nreturn 1;'),
        ("javascript", 'const spawn = require("cross-spawn");\nspawn.sync("sh", ["-c", "1"]);'),
        ("javascript", 'import spawn from "cross-spawn";\nconst c = spawn("sh");\nreturn 1;'),
        ("javascript", "return 1 + 1;"),
    )  # fmt: skip
    dateutil, numpy, still, lodash_js, lodash_ts, spawn_sync, spawn, after = results
    for result, name in ((dateutil, "dateutil"), (numpy, "numpy")):
        assert result.error is not None and result.error.name == "ModuleNotFoundError", result
        assert result.error.line == 2
        assert f"No module named {name!r}: it is not installed on this server" in (
            result.error.message
        )
        assert six.replace("==", " ") in result.error.message  # what it has instead
        assert "python_packages (CODERUNNER_PYTHON_PACKAGES)" in result.error.message
    assert still.ok and still.result is True, still
    for result, line in ((lodash_js, 2), (lodash_ts, 1)):
        assert result.error is not None, result
        assert 'the package "lodash" is not installed on this server' in result.error.message
        assert "cross-spawn@7.0.6" in result.error.message
        assert "javascript_packages (CODERUNNER_JAVASCRIPT_PACKAGES)" in result.error.message
        assert result.error.line == line
    for result, call in ((spawn_sync, "spawnSync"), (spawn, "spawn")):
        assert result.error is not None and result.error.name == "NotSupportedError", result
        assert f"starting programs (child_process.{call}) is not available" in (
            result.error.message
        )
        assert result.error.line == 2
    assert after.ok and after.result == 2
    # The removed generation stays one sync (a server started before it mounts it).
    assert manifest["python"]["dir"] in _generations(data)


# -- packages that write caches ----------------------------------------------------------------


def _wheel(directory: Path, name: str, files: dict[str, str]) -> None:
    """A pure-Python wheel of `files`, version 1.0, built by hand (no build backend)."""
    dist = f"{name.replace('-', '_')}-1.0"
    contents = {
        **files,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in contents.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    contents[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(directory / f"{dist}-py3-none-any.whl", "w") as wheel:
        for path, text in contents.items():
            wheel.writestr(path, text)


CACHE_WRITER = '''\
"""Writes a cache at import, as matplotlib (its config dir) and numba do."""
import os, pathlib
HOME_CACHE = pathlib.Path(os.path.expanduser("~/.cache/cachewriter"))
HOME_CACHE.mkdir(parents=True, exist_ok=True)
(HOME_CACHE / "fonts.json").write_text("[]")
'''
BESIDE_ITSELF = """\
import pathlib
(pathlib.Path(__file__).parent / "index.cache").write_text("{}")
"""
LOCK_WAITER = '''\
"""Retries its cache lock file for ever, as careless cache code does."""
import os, time
while True:
    try:
        os.close(os.open("/packages/python/lockwaiter/.lock", os.O_CREAT | os.O_EXCL))
        break
    except OSError:
        time.sleep(0.05)
'''


def test_a_package_writing_a_cache_gets_a_clear_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local wheels (pip told to use only them): a cache under $HOME works (the
    execution's own /tmp); one beside the package fails at once (read-only); a package
    retrying a lock it can never take ends at the time limit; the engine serves on."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "cachewriter", {"cachewriter/__init__.py": CACHE_WRITER,
                                   "cachewriter/beside.py": BESIDE_ITSELF})  # fmt: skip
    _wheel(wheels, "lockwaiter", {"lockwaiter/__init__.py": "", "lockwaiter/wait.py": LOCK_WAITER})
    for variable in [v for v in os.environ if v.startswith("PIP_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    settings = settings_for(tmp_path / "data", "cachewriter==1.0,lockwaiter==1.0")
    _packages.sync(settings)

    async def main() -> list[coderunner.ExecutionResult]:
        async with coderunner.Engine(settings, warm=()) as engine:
            jobs = [
                "import cachewriter\ncachewriter.HOME_CACHE.as_posix()",
                "import cachewriter.beside",
                "import lockwaiter.wait",
                "1 + 1",
            ]
            return [
                await engine.execute(
                    coderunner.ExecutionRequest(language="python", code=code, timeout_ms=2000)
                )
                for code in jobs
            ]

    home, beside, lock, after = asyncio.run(main())
    assert home.ok and home.result == "/tmp/.cache/cachewriter", home
    assert beside.error is not None and beside.error.name == "OSError", beside
    assert "Read-only file system" in beside.error.message
    assert "/packages/python/cachewriter/index.cache" in beside.error.message
    assert beside.error.line == 1
    assert beside.error.type == "runtime_error"  # at once, not at the time limit
    assert lock.error is not None and lock.error.type == "timeout", lock
    assert after.ok and after.result == 2


def test_only_connection_failures_read_as_an_unreachable_index(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    log.write_text(
        "2026-11-30T23:46:48,388 Could not fetch URL https://pypi.org/simple/nope/: 404 "
        "Client Error: Not Found for url: https://pypi.org/simple/nope/ - skipping\n"
    )
    assert _packages._unreachable_indexes(log) == ""
    assert _packages._unreachable_indexes(tmp_path / "absent.log") == ""
    with log.open("a") as f:
        f.write(
            "2026-11-30T23:46:49,001 Could not fetch URL https://mirror.example/simple/x/: "
            "connection error: HTTPSConnectionPool(host='mirror.example', port=443): Read "
            "timed out. - skipping\n"
        )
    assert _packages._unreachable_indexes(log).splitlines()[1:] == [
        "https://mirror.example/simple/x/: connection error: HTTPSConnectionPool("
        "host='mirror.example', port=443): Read timed out."
    ]
