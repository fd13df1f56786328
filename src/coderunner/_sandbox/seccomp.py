"""Compile the policy's syscall rules to BPF with libseccomp (through pyseccomp)."""

from __future__ import annotations

import errno
import tempfile
from typing import Any

from .._errors import SandboxUnavailable
from .._jail.protocol import CLONE_NEW_FLAGS
from .policy import (
    ALLOWED_SOCKET_FAMILIES,
    DENIED_FCNTL_COMMANDS,
    ENOSYS_SYSCALLS,
    EXEC_SYSCALLS,
    NO_OP_FCNTL_COMMANDS,
    NO_OP_SYSCALLS,
    RENDEZVOUS_SYSCALLS,
    Relaxation,
    SandboxPolicy,
)


def _load_library() -> Any:  # pyseccomp is untyped
    try:
        import pyseccomp
    except Exception as exc:  # libseccomp.so.2 missing
        raise SandboxUnavailable(
            f"libseccomp is not available ({exc}); install the libseccomp2 package"
        ) from exc
    return pyseccomp


def _export(filt) -> bytes:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryFile() as out:
        filt.export_bpf(out)
        out.seek(0)
        return out.read()


def _jail_rules(sc, policy: SandboxPolicy, relaxation: Relaxation | None = None):  # type: ignore[no-untyped-def]
    allowed = relaxation.syscalls if relaxation else ()
    allowed_clone = relaxation.clone_flags if relaxation else ()
    filt = sc.SyscallFilter(sc.ALLOW)
    # Any other ABI (i386 int 0x80, x32) would dodge rules written for the native one.
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    for name in policy.denied_syscalls:
        if name in allowed:
            continue
        try:
            filt.add_rule(sc.ERRNO(errno.EPERM), name)
        except Exception:  # a syscall this kernel/arch does not have
            continue
    for name in ENOSYS_SYSCALLS:
        filt.add_rule(sc.ERRNO(errno.ENOSYS), name)
    # Namespace flags are refused even though --disable-userns and the missing
    # capabilities already make them fail, so that a kernel bug is not enough.
    for flag in CLONE_NEW_FLAGS:
        if flag in allowed_clone:
            continue
        filt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for name in ("socket", "socketpair"):
        rule_args = [sc.Arg(0, sc.NE, family) for family in ALLOWED_SOCKET_FAMILIES]
        filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), name, *rule_args)
    # TIOCSTI would push keystrokes into a terminal; there is none, but refuse anyway.
    filt.add_rule(sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x5412))
    # Locks succeed and do nothing; leases and notifications are refused (see policy.py).
    # The kernel reads fcntl's command as 32 bits: compare those only (MASKED_EQ), or a
    # command with high bits set would pass a plain EQ and still be obeyed.
    for name in NO_OP_SYSCALLS:
        filt.add_rule(sc.ERRNO(0), name)
    for command in NO_OP_FCNTL_COMMANDS:
        filt.add_rule(sc.ERRNO(0), "fcntl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, command))
    for command in DENIED_FCNTL_COMMANDS:
        rule = sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, command)
        filt.add_rule(sc.ERRNO(errno.EPERM), "fcntl", rule)
    return filt


def compile_jail_filter(policy: SandboxPolicy, relaxation: Relaxation | None = None) -> bytes:
    """The filter bubblewrap installs before it starts a runtime (Deno, the fork server),
    less what `relaxation` grants."""
    return _export(_jail_rules(_load_library(), policy, relaxation))


def compile_import_filter() -> bytes:
    """The filter the Python fork server loads (on top of the jail's) before it imports
    the vetted packages: no program starts and no Unix-socket rendezvous, as for a
    snippet.  It stacks; its children load the full child filter on top of it."""
    sc = _load_library()
    filt = sc.SyscallFilter(sc.ALLOW)
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    for name in (*EXEC_SYSCALLS, *RENDEZVOUS_SYSCALLS):
        filt.add_rule(sc.ERRNO(errno.EPERM), name)
    return _export(filt)


def compile_child_filter(policy: SandboxPolicy) -> bytes:
    """The filter a fork-server child loads before its job: the jail's rules, no program
    starts and no Unix-socket rendezvous with its siblings."""
    sc = _load_library()
    filt = _jail_rules(sc, policy)
    for name in (*EXEC_SYSCALLS, *RENDEZVOUS_SYSCALLS):
        filt.add_rule(sc.ERRNO(errno.EPERM), name)
    return _export(filt)
