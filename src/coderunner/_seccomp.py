"""Compile the policy's syscall rules to BPF with libseccomp (through pyseccomp)."""

from __future__ import annotations

import errno
import tempfile

from ._errors import SandboxUnavailable
from ._policy import ALLOWED_SOCKET_FAMILIES, ENOSYS_SYSCALLS, EXEC_SYSCALLS, SandboxPolicy

# clone() flags that would create namespaces; refused even though --disable-userns and
# the missing capabilities already make them fail, so that a kernel bug is not enough.
CLONE_NEW_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)


def _load_library():  # type: ignore[no-untyped-def]
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


def _jail_rules(
    sc, policy: SandboxPolicy, allow: tuple[str, ...] = (), allow_clone: tuple[int, ...] = ()
):  # type: ignore[no-untyped-def]
    filt = sc.SyscallFilter(sc.ALLOW)
    # Any other ABI (i386 int 0x80, x32) would dodge rules written for the native one.
    filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    for name in policy.denied_syscalls:
        if name in allow:
            continue
        try:
            filt.add_rule(sc.ERRNO(errno.EPERM), name)
        except Exception:  # a syscall this kernel/arch does not have
            continue
    for name in ENOSYS_SYSCALLS:
        filt.add_rule(sc.ERRNO(errno.ENOSYS), name)
    for flag in CLONE_NEW_FLAGS:
        if flag in allow_clone:
            continue
        filt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for name in ("socket", "socketpair"):
        rule_args = [sc.Arg(0, sc.NE, family) for family in ALLOWED_SOCKET_FAMILIES]
        filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), name, *rule_args)
    # TIOCSTI would push keystrokes into a terminal; there is none, but refuse anyway.
    filt.add_rule(sc.ERRNO(errno.EPERM), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, 0x5412))
    return filt


def compile_jail_filter(policy: SandboxPolicy) -> bytes:
    """The filter bubblewrap installs before it starts a single-use runtime."""
    return _export(_jail_rules(_load_library(), policy))


# RELAXATION (fork server only): it may unshare and mount to give each child fresh
# namespaces and its own /tmp.  Each child then adds the full child filter below.
FORK_SERVER_ALLOWED = ("unshare", "mount", "umount2")
FORK_SERVER_CLONE = (0x00020000, 0x08000000, 0x20000000)  # CLONE_NEWNS, NEWIPC, NEWPID


def compile_fork_server_filter(policy: SandboxPolicy) -> bytes:
    """The filter bubblewrap installs before it starts the Python fork server."""
    return _export(
        _jail_rules(
            _load_library(), policy, allow=FORK_SERVER_ALLOWED, allow_clone=FORK_SERVER_CLONE
        )
    )


def compile_child_filter(policy: SandboxPolicy) -> bytes:
    """The filter a fork-server child loads before its job: the jail's rules, no exec,
    and no Unix-socket rendezvous (bind/connect/listen) with its siblings."""
    sc = _load_library()
    filt = _jail_rules(sc, policy)
    for name in (*EXEC_SYSCALLS, "bind", "connect", "listen", "accept", "accept4"):
        filt.add_rule(sc.ERRNO(errno.EPERM), name)
    return _export(filt)
