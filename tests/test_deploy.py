"""The deployment artefacts in deploy/: Kubernetes manifests, seccomp and AppArmor profiles.

The manifests are validated offline against the Kubernetes JSON schemas of a pinned
version (kubernetes-validate bundles them) and checked for the security properties the
docs promise, against the real settings and routes.  The seccomp profile is compiled
with libseccomp into a real filter, the way a container runtime would for a container
without capabilities, and the real service runs under it: jails start with the profile,
and fail closed with a sandbox error without its relaxations.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from _server import CODERUNNER, running_server
from coderunner._settings import ServerOptions, Settings

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
SECCOMP_PROFILE = ROOT / "deploy" / "seccomp" / "coderunner.json"
APPARMOR_PROFILE = ROOT / "deploy" / "apparmor" / "coderunner"
KUBERNETES_VERSION = "1.37.0"  # the schemas the manifests must satisfy (strict)

# What bubblewrap and the jailed fork server need beyond Docker's default profile: found
# by removing each in turn and watching the jail fail (docs/deploy.md).
RELAXED_SYSCALLS = {"clone", "unshare", "mount", "umount2", "pivot_root", "sethostname"}
# Allowed by no rule of the shipped profile, whatever else changes in it.
NEVER_ALLOWED = {
    "bpf", "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "init_module",
    "finit_module", "delete_module", "open_by_handle_at", "setns", "keyctl", "add_key",
    "request_key", "perf_event_open", "userfaultfd", "reboot", "swapon", "acct", "chroot",
    "iopl", "ioperm", "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr",
    "clock_settime", "settimeofday", "quotactl", "syslog", "umount",
}  # fmt: skip

# Run in a child: compile an OCI/Docker seccomp profile with libseccomp as runc/crun do
# for a container with no capabilities (rules that need one are left out), load it,
# then exec the command, which inherits the filter like a container's processes do.
LOAD_PROFILE = r"""
import errno, json, os, platform, sys
import pyseccomp as sc

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OPS = {"SCMP_CMP_EQ": sc.EQ, "SCMP_CMP_NE": sc.NE, "SCMP_CMP_LT": sc.LT, "SCMP_CMP_LE": sc.LE,
       "SCMP_CMP_GT": sc.GT, "SCMP_CMP_GE": sc.GE, "SCMP_CMP_MASKED_EQ": sc.MASKED_EQ}

def action(name, errno_ret):
    if name == "SCMP_ACT_ALLOW":
        return sc.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_KILL_PROCESS":
        return sc.KILL_PROCESS
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return sc.KILL_THREAD
    raise SystemExit(f"unsupported action {name}")

profile = json.load(open(sys.argv[1]))
filt = sc.SyscallFilter(action(profile["defaultAction"], profile.get("defaultErrnoRet")))
for rule in profile["syscalls"]:
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if set(includes) - {"arches", "caps"} or set(excludes) - {"arches", "caps"}:
        raise SystemExit(f"unsupported condition in {rule}")
    if "arches" in includes and GO_ARCH not in includes["arches"]:
        continue
    if "arches" in excludes and GO_ARCH in excludes["arches"]:
        continue
    if includes.get("caps"):
        continue  # the container holds no capability
    act = action(rule["action"], rule.get("errnoRet"))
    args = [sc.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
            for a in rule.get("args") or []]
    for name in rule["names"]:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0:
            continue  # unknown to this libseccomp or architecture: runtimes skip it too
        filt.add_rule(act, name, *args)
filt.load()
os.execv(sys.argv[2], sys.argv[2:])
"""


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes by kind (one of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _documents(path):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


MANIFESTS = _manifests()
DEPLOYMENT = MANIFESTS["Deployment"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_manifest_validates_against_the_kubernetes_schema(kind: str) -> None:
    kubernetes_validate.validate(MANIFESTS[kind], KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    """Strict validation refuses an unknown field (so the test above can fail)."""
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["hostUser"] = False  # for hostUsers
    with pytest.raises(kubernetes_validate.ValidationError, match="hostUser"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest() -> None:
    (kustomization,) = _documents(KUBERNETES / "kustomization.yaml")
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"] == "coderunner"
    image = CONTAINER["image"].split(":")[0]
    assert [i["name"] for i in kustomization["images"]] == [image]


def test_the_pod_runs_unprivileged_and_confined() -> None:
    pod_context = POD["securityContext"]
    assert POD["hostUsers"] is False
    assert POD["automountServiceAccountToken"] is False
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == pod_context["runAsGroup"] == 10001
    assert pod_context["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": SECCOMP_PROFILE.name,
    }
    assert pod_context["appArmorProfile"] == {
        "type": "Localhost",
        "localhostProfile": "coderunner",
    }
    # Nothing in a container may override the pod's profiles with weaker ones.
    for container in POD["containers"]:
        context = container["securityContext"]
        assert "seccompProfile" not in context and "appArmorProfile" not in context
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "add" not in context["capabilities"]
        # Unmasked /proc only ever together with a user namespace of the pod's own.
        assert context.get("procMount", "Default") == "Default" or POD["hostUsers"] is False
        assert context.get("runAsUser", 10001) == 10001


def test_writable_paths_are_volumes_and_the_profile_names_match_the_files() -> None:
    mounts = {m["mountPath"]: m for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["volumes"]}
    env = {e["name"]: e.get("value") for e in CONTAINER["env"]}
    # The root filesystem is read-only: /tmp and the data directory are emptyDirs.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts[env["CODERUNNER_DATA_DIR"]]["name"]]
    assert SECCOMP_PROFILE.is_file() and APPARMOR_PROFILE.is_file()
    assert "profile coderunner " in APPARMOR_PROFILE.read_text()


def test_every_coderunner_variable_is_a_real_setting() -> None:
    names = {f"CODERUNNER_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    names |= {f"CODERUNNER_{f.name.upper()}" for f in dataclasses.fields(ServerOptions)}
    used = [e["name"] for e in CONTAINER["env"] if e["name"].startswith("CODERUNNER_")]
    assert used
    for name in used:
        assert name.removesuffix("_FILE") in names, f"{name} is no setting"
    for item in CONTAINER["env"]:
        assert "valueFrom" not in item, "secrets come as files, not variables"


def test_secrets_are_mounted_files_and_the_settings_accept_them(tmp_path: Path) -> None:
    """The example Secret, written where the pod mounts it, gives valid settings."""
    secret = MANIFESTS["Secret"]
    volume = next(v for v in POD["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    mount = next(m for m in CONTAINER["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    files = {item["path"]: item["key"] for item in volume["secret"]["items"]}
    assert set(files.values()) == set(secret["stringData"])
    environ: dict[str, str] = {}
    for item in CONTAINER["env"]:
        value = item["value"]
        if item["name"].endswith("_FILE"):
            relative = Path(value).relative_to(mount["mountPath"])
            local = tmp_path / relative
            local.write_text(secret["stringData"][files[str(relative)]])
            value = str(local)
        environ[item["name"]] = value
    assert {"CODERUNNER_API_KEYS_FILE", "CODERUNNER_DATABASE_URL_FILE"} <= set(environ)
    settings = Settings.from_env(environ)
    assert settings.database_url.startswith("postgresql://")
    assert settings.max_concurrency == 4
    options = ServerOptions.from_env(environ)
    assert options.api_keys == ("CHANGE-ME-api-key-1", "CHANGE-ME-api-key-2")


def test_probes_use_real_routes_on_the_served_port() -> None:
    from coderunner._http import create_app

    routes = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    (port,) = CONTAINER["ports"]
    args = CONTAINER["args"]
    assert args[0] == "serve" and args[args.index("--port") + 1] == str(port["containerPort"])
    assert args[args.index("--host") + 1] == "0.0.0.0"  # reachable from the kubelet
    probes = {k: CONTAINER[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in (*probes.values(), CONTAINER["startupProbe"]["httpGet"]):
        assert probe["path"] in routes
        assert probe["port"] == port["name"]
    service = MANIFESTS["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_image_matches_the_manifests() -> None:
    """The Containerfile's user and entry point are the ones the pod spec assumes."""
    lines = (ROOT / "deploy" / "Containerfile").read_text().splitlines()
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    uid = POD["securityContext"]["runAsUser"]
    assert user == f"{uid}:{POD['securityContext']['runAsGroup']}"
    (entrypoint,) = [
        json.loads(line[len("ENTRYPOINT ") :]) for line in lines if "ENTRYPOINT" in line
    ]
    assert entrypoint[-1].endswith("/coderunner") and "command" not in CONTAINER
    (cmd,) = [json.loads(line[len("CMD ") :]) for line in lines if line.startswith("CMD ")]
    assert cmd == CONTAINER["args"]  # the image alone serves exactly as the pod does


def test_service_autoscaler_and_budget_select_the_deployment() -> None:
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    selector = DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert MANIFESTS["Service"]["spec"]["selector"].items() <= labels.items()
    assert MANIFESTS["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    target = MANIFESTS["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", DEPLOYMENT["metadata"]["name"])
    assert MANIFESTS["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2  # PDB can hold
    resources = CONTAINER["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"] and kind in resources["limits"]
    namespaces = {m["metadata"].get("namespace") for m in MANIFESTS.values()} - {None}
    assert namespaces == {MANIFESTS["Namespace"]["metadata"]["name"]}


# --- seccomp -------------------------------------------------------------------------


def _profile() -> dict[str, Any]:
    return json.loads(SECCOMP_PROFILE.read_text())


def _allowed(profile: dict[str, Any]) -> set[str]:
    return {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }


def test_seccomp_profile_is_closed_and_names_each_relaxation() -> None:
    profile = _profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    relaxations = [r for r in profile["syscalls"] if r.get("comment", "").startswith("RELAX")]
    assert {n for r in relaxations for n in r["names"]} == RELAXED_SYSCALLS
    for rule in relaxations:
        assert rule["action"] == "SCMP_ACT_ALLOW" and len(rule["comment"]) > 60
    assert not _allowed(profile) & NEVER_ALLOWED
    # No rule depends on a capability: the container has none.
    for rule in profile["syscalls"]:
        assert "caps" not in (rule.get("includes") or {}) | (rule.get("excludes") or {})


def _under_profile(profile: Path, *argv: str) -> tuple[str, ...]:
    return (sys.executable, "-c", LOAD_PROFILE, str(profile), *argv)


def _run(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_jail_works_under_the_shipped_seccomp_profile() -> None:
    doctor = _run(_under_profile(SECCOMP_PROFILE, CODERUNNER, "doctor", "--json"))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["seccomp filter"]["ok"] and checks["user namespace"]["ok"], report
    for language, code in (("python", "print(6 * 7)"), ("javascript", "console.log(6 * 7)")):
        run = _run(_under_profile(SECCOMP_PROFILE, CODERUNNER, "run", "-l", language, "-c", code))
        result = json.loads(run.stdout)
        assert result["ok"] and result["stdout"] == "42\n", run.stdout + run.stderr
    # The filter really was in force: the loader's child reports it.
    status = _run(_under_profile(SECCOMP_PROFILE, "/bin/cat", "/proc/self/status"))
    assert "Seccomp:\t2" in status.stdout, status.stdout + status.stderr


def test_without_its_relaxations_the_profile_fails_closed(tmp_path: Path) -> None:
    """Docker's default profile alone (the relaxations removed): a sandbox error, no run."""
    profile = _profile()
    profile["syscalls"] = [
        r for r in profile["syscalls"] if not r.get("comment", "").startswith("RELAXATION")
    ]
    strict = tmp_path / "without-relaxations.json"
    strict.write_text(json.dumps(profile))
    run = _run(_under_profile(strict, CODERUNNER, "run", "-l", "python", "-c", "print(1)"))
    result = json.loads(run.stdout)
    assert run.returncode == 1
    assert not result["ok"] and result["error"]["type"] == "sandbox_error", run.stdout
    assert result["stdout"] == ""
    doctor = _run(_under_profile(strict, CODERUNNER, "doctor"))
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr


def test_the_server_serves_under_the_profile_with_secrets_from_files(tmp_path: Path) -> None:
    """`coderunner serve` as the pod runs it: the shipped profile, API keys from a file."""
    keys = tmp_path / "api-keys"
    keys.write_text("first-key\nsecond-key\n")
    with running_server(
        "--python-pool-size",
        "1",
        "--javascript-pool-size",
        "1",
        env={"CODERUNNER_API_KEYS_FILE": str(keys)},
        prefix=_under_profile(SECCOMP_PROFILE),
    ) as server:
        deadline = time.monotonic() + 60  # the pools warm up behind /healthz
        ready = httpx.get(f"{server.base_url}/readyz", timeout=30)
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = httpx.get(f"{server.base_url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        body = {"language": "python", "code": "def main(x):\n    return x * 2", "inputs": {"x": 21}}
        url = f"{server.base_url}/v1/execute"
        assert httpx.post(url, json=body, timeout=60).status_code == 401
        answer = httpx.post(
            url, json=body, headers={"Authorization": "Bearer second-key"}, timeout=60
        )
        assert answer.status_code == 200 and answer.json()["result"] == 42, answer.text
        status = Path(f"/proc/{server.pid}/status").read_text()
        assert "Seccomp:\t2" in status  # the server itself runs under the profile


# --- AppArmor ------------------------------------------------------------------------


def _apparmor_parse(path: Path) -> subprocess.CompletedProcess[str]:
    parser = shutil.which("apparmor_parser") or "/sbin/apparmor_parser"
    # -Q: compile only, load nothing (this kernel may not even run AppArmor); -K: no cache.
    return _run((parser, "-Q", "-K", str(path)))


def test_apparmor_profile_compiles(tmp_path: Path) -> None:
    parsed = _apparmor_parse(APPARMOR_PROFILE)
    assert parsed.returncode == 0, parsed.stderr
    broken = tmp_path / "broken"
    broken.write_text(APPARMOR_PROFILE.read_text().replace("pivot_root,", "pivot_root"))
    assert _apparmor_parse(broken).returncode != 0  # the parser does check
