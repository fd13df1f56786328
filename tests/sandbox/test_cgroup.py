"""Per-execution cgroups (coderunner._sandbox.cgroup): parsing and slot files, no jail.

The slot is exercised on ordinary directories and files under tmp_path: the cgroup
interface files are plain text files to the code that writes and reads them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from coderunner._sandbox import cgroup
from coderunner._sandbox.cgroup import CgroupSlot

# -- /proc/self/cgroup ----------------------------------------------------------------------

V1_OWN = """\
12:pids:/user.slice/user-1000.slice/session-2.scope
11:cpu,cpuacct:/user.slice
10:memory:/user.slice/user-1000.slice/session-2.scope
3:net_cls,net_prio:/
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
"""

HYBRID_OWN = """\
12:pids:/system.slice/coderunner.service
7:memory:/system.slice/coderunner.service
4:cpu,cpuacct:/system.slice/coderunner.service
1:name=systemd:/system.slice/coderunner.service
0::/system.slice/coderunner.service
"""


def test_parse_own_cgroups_v1() -> None:
    assert cgroup.parse_own_cgroups(V1_OWN) == {
        "pids": "/user.slice/user-1000.slice/session-2.scope",
        "cpu": "/user.slice",
        "cpuacct": "/user.slice",
        "memory": "/user.slice/user-1000.slice/session-2.scope",
        "net_cls": "/",
        "net_prio": "/",
        "name=systemd": "/user.slice/user-1000.slice/session-2.scope",
    }


def test_parse_own_cgroups_v2() -> None:
    assert cgroup.parse_own_cgroups("0::/user.slice/x\n") == {"": "/user.slice/x"}


def test_parse_own_cgroups_v2_root() -> None:
    assert cgroup.parse_own_cgroups("0::/") == {"": "/"}


def test_parse_own_cgroups_hybrid() -> None:
    own = cgroup.parse_own_cgroups(HYBRID_OWN)
    assert own[""] == "/system.slice/coderunner.service"
    assert own["pids"] == own["memory"] == "/system.slice/coderunner.service"
    assert set(own) == {"pids", "memory", "cpu", "cpuacct", "name=systemd", ""}


def test_parse_own_cgroups_path_with_colons() -> None:
    assert cgroup.parse_own_cgroups("0::/a:b:c\n5:pids:/x:y") == {"": "/a:b:c", "pids": "/x:y"}


def test_parse_own_cgroups_empty() -> None:
    assert cgroup.parse_own_cgroups("") == {}


# -- /proc/self/mountinfo ------------------------------------------------------------------

ROOT_AND_PROC = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:6 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8000k,mode=755
"""

V2_MOUNTS = ROOT_AND_PROC + (
    "25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9"
    " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)

V1_MOUNTS = ROOT_AND_PROC + (
    "30 25 0:26 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13"
    " - cgroup cgroup rw,pids\n"
    "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14"
    " - cgroup cgroup rw,memory\n"
    "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15"
    " - cgroup cgroup rw,cpu,cpuacct\n"
    "33 25 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:8"
    " - cgroup cgroup rw,xattr,name=systemd\n"
)

HYBRID_MOUNTS = V1_MOUNTS + (
    "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10"
    " - cgroup2 cgroup2 rw,nsdelegate\n"
)


def test_parse_cgroup_mounts_v2() -> None:
    assert cgroup.parse_cgroup_mounts(V2_MOUNTS) == {"": "/sys/fs/cgroup"}


def test_parse_cgroup_mounts_v1() -> None:
    assert cgroup.parse_cgroup_mounts(V1_MOUNTS) == {
        "pids": "/sys/fs/cgroup/pids",
        "memory": "/sys/fs/cgroup/memory",
    }


def test_parse_cgroup_mounts_hybrid() -> None:
    assert cgroup.parse_cgroup_mounts(HYBRID_MOUNTS) == {
        "pids": "/sys/fs/cgroup/pids",
        "memory": "/sys/fs/cgroup/memory",
        "": "/sys/fs/cgroup/unified",
    }


def test_parse_cgroup_mounts_unrelated_only() -> None:
    assert cgroup.parse_cgroup_mounts(ROOT_AND_PROC) == {}
    assert cgroup.parse_cgroup_mounts("") == {}


def test_parse_cgroup_mounts_one_v1_mount_with_both_controllers() -> None:
    text = "40 25 0:30 / /cg rw,relatime - cgroup none rw,memory,pids\n"
    assert cgroup.parse_cgroup_mounts(text) == {"memory": "/cg", "pids": "/cg"}


def test_parse_cgroup_mounts_options_must_match_exactly() -> None:
    # memory_recursiveprot or a named hierarchy is not the memory controller
    text = (
        "40 25 0:30 / /cg/a rw - cgroup none rw,memory_recursiveprot\n"
        "41 25 0:31 / /cg/b rw - cgroup none rw,name=pids\n"
    )
    assert cgroup.parse_cgroup_mounts(text) == {}


@pytest.mark.parametrize(
    "optional_fields",
    ["", "shared:13", "shared:13 master:2", "master:1 propagate_from:7 unbindable"],
)
def test_parse_cgroup_mounts_optional_fields(optional_fields: str) -> None:
    fields = f" {optional_fields}" if optional_fields else ""
    text = (
        f"30 25 0:26 /sub /mnt/pids rw,nosuid{fields} - cgroup cgroup rw,pids\n"
        f"31 25 0:27 / /mnt/v2 rw,nosuid{fields} - cgroup2 cgroup2 rw\n"
    )
    assert cgroup.parse_cgroup_mounts(text) == {"pids": "/mnt/pids", "": "/mnt/v2"}


def test_parse_cgroup_mounts_first_mount_wins() -> None:
    text = (
        "25 22 0:23 / /first rw shared:9 - cgroup2 cgroup2 rw\n"
        "26 22 0:23 / /second rw shared:9 - cgroup2 cgroup2 rw\n"
        "30 25 0:26 / /p1 rw - cgroup cgroup rw,pids\n"
        "31 25 0:26 / /p2 rw - cgroup cgroup rw,pids\n"
    )
    assert cgroup.parse_cgroup_mounts(text) == {"": "/first", "pids": "/p1"}


def test_parse_cgroup_mounts_of_this_host_does_not_raise() -> None:
    text = Path("/proc/self/mountinfo").read_text()
    found = cgroup.parse_cgroup_mounts(text)
    assert set(found) <= {"", *cgroup.CONTROLLERS}
    assert all(path.startswith("/") for path in found.values())


# -- slots on plain directories ------------------------------------------------------------


@pytest.fixture
def v2_slot(tmp_path: Path) -> CgroupSlot:
    d = tmp_path / "w1"
    d.mkdir()
    return CgroupSlot({c: d for c in cgroup.CONTROLLERS}, v2=True)


@pytest.fixture
def v1_slot(tmp_path: Path) -> CgroupSlot:
    dirs = {}
    for c in cgroup.CONTROLLERS:
        d = tmp_path / c / "w1"
        d.mkdir(parents=True)
        dirs[c] = d
    return CgroupSlot(dirs, v2=False)


def test_procs_files_v2_names_the_one_directory_once(v2_slot: CgroupSlot) -> None:
    d = v2_slot.dirs["pids"]
    assert v2_slot.procs_files() == [str(d / "cgroup.procs")]


def test_procs_files_v1_names_each_controller(v1_slot: CgroupSlot) -> None:
    assert v1_slot.procs_files() == [
        str(v1_slot.dirs[c] / "cgroup.procs") for c in cgroup.CONTROLLERS
    ]


def test_join_command_shape_v2(v2_slot: CgroupSlot) -> None:
    argv = cgroup.join_command(v2_slot)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[-1] == "--"
    procs = str(v2_slot.dirs["pids"] / "cgroup.procs")
    assert argv.count(procs) == 1
    assert argv[3:] == ["sh", procs, "--"]  # $0, then the files before "--"


def test_join_command_shape_v1(v1_slot: CgroupSlot) -> None:
    argv = cgroup.join_command(v1_slot)
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[-1] == "--"
    assert argv[4:-1] == v1_slot.procs_files()
    assert argv.count("--") == 1


def test_join_command_writes_its_pid_then_execs(v1_slot: CgroupSlot) -> None:
    argv = [*cgroup.join_command(v1_slot), "/bin/sh", "-c", 'echo "$$ $1"', "sh", "arg one"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    pid, arg = out.stdout.rstrip("\n").split(" ", 1)
    assert arg == "arg one"  # the argv after "--" reaches the command intact
    for procs in v1_slot.procs_files():
        # The shell that joined is the process that became the command.
        assert Path(procs).read_text().strip() == pid


def test_join_command_fails_when_a_group_cannot_be_joined(tmp_path: Path) -> None:
    slot = CgroupSlot({"pids": tmp_path / "missing", "memory": tmp_path / "missing"}, v2=True)
    argv = [*cgroup.join_command(slot), "/bin/sh", "-c", "echo ran"]
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 125
    assert "ran" not in out.stdout


def test_add_writes_the_pid(v1_slot: CgroupSlot) -> None:
    for procs in v1_slot.procs_files():
        Path(procs).write_text("")
    v1_slot.add(4321)
    for procs in v1_slot.procs_files():
        assert Path(procs).read_text() == "4321"


def test_add_writes_a_v2_group_once(v2_slot: CgroupSlot) -> None:
    procs = v2_slot.dirs["pids"] / "cgroup.procs"
    procs.write_text("")
    v2_slot.add(99)
    assert procs.read_text() == "99"


def test_add_into_a_missing_group_raises(tmp_path: Path) -> None:
    slot = CgroupSlot({"pids": tmp_path / "gone"}, v2=False)
    with pytest.raises(FileNotFoundError):
        slot.add(1)


def test_set_memory_limit_v2(v2_slot: CgroupSlot) -> None:
    v2_slot.set_memory_limit(256 * 1024 * 1024)
    d = v2_slot.dirs["memory"]
    assert (d / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (d / "memory.swap.max").read_text() == "0"
    assert not (d / "memory.limit_in_bytes").exists()


def test_set_memory_limit_v2_without_swap_file(tmp_path: Path) -> None:
    d = tmp_path / "w"
    d.mkdir()
    (d / "memory.swap.max").mkdir()  # cannot be written: not fatal
    slot = CgroupSlot({"pids": d, "memory": d}, v2=True)
    slot.set_memory_limit(1234)
    assert (d / "memory.max").read_text() == "1234"


def test_set_memory_limit_v1(v1_slot: CgroupSlot) -> None:
    v1_slot.set_memory_limit(1 << 30)
    d = v1_slot.dirs["memory"]
    assert (d / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert not (d / "memory.max").exists()
    assert not (d / "memory.swap.max").exists()
    assert list(v1_slot.dirs["pids"].iterdir()) == []


def test_set_memory_limit_without_memory_controller(tmp_path: Path) -> None:
    d = tmp_path / "pids"
    d.mkdir()
    CgroupSlot({"pids": d}, v2=False).set_memory_limit(1 << 20)
    assert list(d.iterdir()) == []


EVENTS_CLEAN = "low 0\nhigh 0\nmax 17\noom 0\noom_kill 0\noom_group_kill 0\n"


@pytest.mark.parametrize(
    ("events", "exceeded"),
    [
        (EVENTS_CLEAN, False),  # hitting max (reclaim) alone is no OOM
        (EVENTS_CLEAN.replace("oom 0", "oom 1"), True),
        (EVENTS_CLEAN.replace("oom_kill 0", "oom_kill 3"), True),
        ("oom 0\noom_kill 0", False),
        ("", False),
        ("oom x\n", False),
    ],
)
def test_memory_exceeded_v2(v2_slot: CgroupSlot, events: str, exceeded: bool) -> None:
    (v2_slot.dirs["memory"] / "memory.events").write_text(events)
    assert v2_slot.memory_exceeded() is exceeded


@pytest.mark.parametrize(
    ("failcnt", "exceeded"), [("0\n", False), ("1\n", True), ("250", True), ("", False)]
)
def test_memory_exceeded_v1(v1_slot: CgroupSlot, failcnt: str, exceeded: bool) -> None:
    (v1_slot.dirs["memory"] / "memory.failcnt").write_text(failcnt)
    assert v1_slot.memory_exceeded() is exceeded


def test_memory_exceeded_v1_reads_the_memory_group(v1_slot: CgroupSlot) -> None:
    (v1_slot.dirs["pids"] / "memory.failcnt").write_text("5")
    (v1_slot.dirs["memory"] / "memory.failcnt").write_text("0")
    assert v1_slot.memory_exceeded() is False


def test_memory_exceeded_without_files(v1_slot: CgroupSlot, v2_slot: CgroupSlot) -> None:
    assert v1_slot.memory_exceeded() is False
    assert v2_slot.memory_exceeded() is False


def test_memory_exceeded_without_memory_controller(tmp_path: Path) -> None:
    d = tmp_path / "pids"
    d.mkdir()
    (d / "memory.failcnt").write_text("9")
    assert CgroupSlot({"pids": d}, v2=False).memory_exceeded() is False


def test_remove_empty_dirs(v1_slot: CgroupSlot) -> None:
    assert v1_slot.remove() is True
    assert not any(d.exists() for d in v1_slot.dirs.values())


def test_remove_v2_dir_once(v2_slot: CgroupSlot) -> None:
    assert v2_slot.remove() is True
    assert not v2_slot.dirs["pids"].exists()


def test_remove_already_gone(tmp_path: Path) -> None:
    assert CgroupSlot({"pids": tmp_path / "gone"}, v2=False).remove() is True


def test_remove_not_empty_is_false_but_removes_the_rest(v1_slot: CgroupSlot) -> None:
    (v1_slot.dirs["pids"] / "cgroup.procs").write_text("1")  # a busy group cannot go
    assert v1_slot.remove() is False
    assert v1_slot.dirs["pids"].exists()
    assert not v1_slot.dirs["memory"].exists()


def test_kill_all_kills_the_listed_processes(v2_slot: CgroupSlot) -> None:
    child = subprocess.Popen(["sleep", "600"])
    try:
        (v2_slot.dirs["pids"] / "cgroup.procs").write_text(f"garbage\n{child.pid}\n")
        v2_slot.kill_all()
        assert child.wait(timeout=30) == -9
    finally:
        if child.poll() is None:
            os.kill(child.pid, 9)
            child.wait()


def test_kill_all_without_procs_files(v1_slot: CgroupSlot) -> None:
    v1_slot.kill_all()  # nothing listed, nothing to do
    assert all(d.exists() for d in v1_slot.dirs.values())


# -- a delegated cgroup v2 group (systemd Delegate=yes) --------------------------------------


def delegated_group(tmp_path: Path, enabled: str) -> Path:
    """The files of a service's own v2 group: it holds the service's processes."""
    group = tmp_path / "coderunner.service"
    group.mkdir()
    (group / "cgroup.controllers").write_text("cpu io memory pids\n")
    (group / "cgroup.subtree_control").write_text(enabled)
    (group / "cgroup.procs").write_text("4242\n")
    return group


def test_v2_base_moves_the_service_out_before_enabling_controllers(tmp_path: Path) -> None:
    group = delegated_group(tmp_path, "")
    base = cgroup.setup_v2_base(group, "coderunner-1")
    # The kernel refuses +pids +memory on a group that holds processes: they moved first.
    assert (group / cgroup.SERVICE_LEAF / "cgroup.procs").read_text() == "4242"
    assert (group / "cgroup.subtree_control").read_text() == "+pids +memory"
    assert base == group / "coderunner-1"
    assert (base / "cgroup.subtree_control").read_text() == "+pids +memory"


def test_v2_base_with_controllers_already_enabled_moves_nothing(tmp_path: Path) -> None:
    group = delegated_group(tmp_path, "memory pids\n")
    cgroup.setup_v2_base(group, "coderunner-2")
    assert not (group / cgroup.SERVICE_LEAF).exists()
    assert (group / "cgroup.subtree_control").read_text() == "memory pids\n"


def test_v2_base_on_a_group_not_ours_is_an_oserror(tmp_path: Path) -> None:
    group = delegated_group(tmp_path, "")
    (group / "cgroup.subtree_control").unlink()  # as unreadable as a foreign group's
    with pytest.raises(OSError):
        cgroup.setup_v2_base(group, "coderunner-3")


# -- fail closed: when the service refuses to start without a cgroup ---------------------------


@pytest.mark.parametrize(
    ("available", "mode", "root", "refused"),
    [
        (True, "auto", True, None),
        (True, "required", False, None),
        (False, "auto", False, None),  # rlimits: RLIMIT_NPROC binds a non-root user
        (False, "auto", True, "running as root"),  # no process limit at all
        (False, "required", False, "cgroups=required"),
        (False, "required", True, "cgroups=required"),
    ],
)
def test_refusal(available: bool, mode: str, root: bool, refused: str | None) -> None:
    answer = cgroup.refusal(available, "no delegation", mode, root)
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and refused in answer and "no delegation" in answer
