"""The policy and the argv/filters built from it, as pure data (no jail started)."""

from __future__ import annotations

import os
import sys

import pyseccomp
import pytest

from coderunner._jail.protocol import DENO, PYTHON_HOME, RESULT_FIFO
from coderunner._sandbox.bwrap import bwrap_argv
from coderunner._sandbox.policy import (
    ALLOW_NAMESPACE_SETUP,
    DENIED_SYSCALLS,
    Mount,
    SandboxPolicy,
    build_policy,
    python_runtime,
)
from coderunner._sandbox.seccomp import compile_child_filter, compile_jail_filter


@pytest.fixture(scope="module")
def policy() -> SandboxPolicy:
    return build_policy(tmp_size_mb=8, max_processes=12)


def argv_for(policy: SandboxPolicy) -> list[str]:
    return bwrap_argv(
        policy,
        ["python3", "runner.py"],
        seccomp_fd=7,
        result_fifo="/x/result",
    )


def test_every_namespace_is_new_and_userns_nesting_is_disabled(policy: SandboxPolicy) -> None:
    argv = argv_for(policy)
    for flag in (
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert "--share-net" not in argv


def test_only_runtime_files_are_mounted_read_only(policy: SandboxPolicy) -> None:
    argv = argv_for(policy)
    assert "--bind" in argv  # the one writable bind: the result FIFO
    binds = [argv[i + 1 : i + 3] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [["/x/result", RESULT_FIFO]]
    ro = {argv[i + 2] for i, a in enumerate(argv) if a == "--ro-bind"}
    for forbidden in ("/", "/home", "/root", "/etc", "/work", "/usr"):
        assert forbidden not in ro
    assert DENO in ro
    assert not any("site-packages" in p for p in ro)


def test_site_packages_of_the_stdlib_dir_is_masked() -> None:
    python = python_runtime()
    assert all(isinstance(m, Mount) for m in python.mounts)
    assert any(path.endswith("site-packages") for path in python.masked)
    for path in python.masked:
        assert path.startswith(PYTHON_HOME + "/")
        assert path.endswith(("site-packages", "dist-packages")) or "/config-" in path


def test_the_interpreter_is_at_the_same_jail_path_on_every_host() -> None:
    python = python_runtime()
    assert python.executable.startswith(f"{PYTHON_HOME}/bin/python")
    assert all(m.target.startswith(PYTHON_HOME + "/") for m in python.mounts)
    if python.sysconfig_data is not None:  # a Python outside /usr: its prefix is rewritten
        jail_path, text = python.sysconfig_data
        assert jail_path.startswith(f"{PYTHON_HOME}/lib/python3.")
        assert sys.base_prefix not in text and os.path.realpath(sys.base_prefix) not in text
        assert f"'prefix': '{PYTHON_HOME}'" in text


def test_tmp_is_small_and_in_memory(policy: SandboxPolicy) -> None:
    argv = argv_for(policy)
    i = next(i for i, a in enumerate(argv) if a == "--tmpfs" and argv[i + 1] == "/tmp")
    assert argv[i - 4 : i] == ["--size", str(8 * 1024 * 1024), "--perms", "1777"]


def test_environment_is_only_the_policys(policy: SandboxPolicy) -> None:
    argv = argv_for(policy)
    keys = [argv[i + 1] for i, a in enumerate(argv) if a == "--setenv"]
    assert sorted(keys) == ["HOME", "LANG", "PATH"]


def test_no_code_or_inputs_in_argv(policy: SandboxPolicy) -> None:
    argv = argv_for(policy)
    assert argv[-2:] == ["python3", "runner.py"]


def test_denied_syscalls_cover_the_known_escapes() -> None:
    for name in (
        "ptrace",
        "mount",
        "unshare",
        "setns",
        "bpf",
        "io_uring_setup",
        "keyctl",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "init_module",
        "reboot",
    ):
        assert name in DENIED_SYSCALLS
        pyseccomp.resolve_syscall(pyseccomp.system_arch(), name)  # a real syscall name


def test_filters_compile_to_bpf(policy: SandboxPolicy) -> None:
    jail = compile_jail_filter(policy)
    server = compile_jail_filter(policy, ALLOW_NAMESPACE_SETUP)
    child = compile_child_filter(policy)
    assert len(jail) % 8 == 0 and len(jail) > 8 * len(DENIED_SYSCALLS)
    # The fork server's filter relaxes a few rules; each child's adds exec and bind/connect.
    assert len(server) % 8 == 0 and len(server) < len(jail) < len(child)


def test_only_the_fork_server_keeps_a_capability(policy: SandboxPolicy) -> None:
    plain = argv_for(policy)
    assert "--cap-add" not in plain
    server = bwrap_argv(
        policy, ["python3"], seccomp_fd=3, result_fifo=None, relaxation=ALLOW_NAMESPACE_SETUP
    )
    added = [server[i + 1] for i, a in enumerate(server) if a == "--cap-add"]
    assert added == list(ALLOW_NAMESPACE_SETUP.capabilities)
    assert "--bind" not in server
