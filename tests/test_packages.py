"""Vetted packages: `coderunner packages sync` installs them ahead of time into the data
directory (from PyPI and npm: python-dateutil and lodash, small and pinned), a real
server mounts them read-only, snippets import them, anything else fails at once naming
the setting, GET /v1/runtimes lists them, and the jail is as closed as without them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import coderunner
from _server import SMALL_POOLS, ServerProcess, running_server
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

PYTHON_PACKAGES = "python-dateutil==2.9.0.post0"
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
    assert _packages.offered(settings) == ((PYTHON_PACKAGES,), (JAVASCRIPT_PACKAGES,))


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
    assert python["python-dateutil"]["requested"] == PYTHON_PACKAGES
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
