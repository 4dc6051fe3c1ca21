#!/usr/bin/env python3
"""deploy_files_test: parses every file in deploy/ and checks the properties a deployment relies on.

  deploy_files_test.py --source-dir REPO [--binary NAME=PATH]... [--no-self-check]

Checks, for the files as they are in REPO/deploy:
  * YAML: every document of every *.yaml parses (duplicate keys are errors, as in compose/kubectl).
  * Kubernetes (deploy/k8s): every object has apiVersion, kind, metadata.name and matches an
    offline schema of the fields used here (unknown fields, types, required fields, enums, names,
    quantities, ports: the checks `kubectl apply --validate=strict` and the API server make), plus:
    Deployments have resources.requests+limits (cpu, memory), a non-root securityContext with a
    fixed uid (the Dockerfile's), read-only root filesystem, liveness+readiness gRPC probes on the
    --health-listen port; TLS cert/key/client CA and the token file come from Secret volumes and
    are passed with --tls-cert/--tls-key/--tls-client-ca/--auth-token-file; the exporter has
    --model-root on a read-only volume; each runner Deployment serves exactly one --serve model and
    has its own Service; NetworkPolicies keep the exporter and compiler internal; the cache PVC is
    ReadWriteMany; kustomization.yaml lists every manifest.
  * compose.yaml: structure (known keys), build (context + deploy/Dockerfile), a non-root user,
    secrets for TLS and tokens, healthchecks, read-only model volume for the exporter, and no port
    published on all interfaces unless a variable makes it explicit (defaults must be loopback).
  * Dockerfile: the final stage runs as a non-root USER that it creates; COPY sources exist; with
    --binary, the runtime stage installs the packages of every shared library the binaries link.
  * With --binary qeff-compiler=PATH: deploy/qeff-health (the compose healthcheck) gets SERVING
    from a real server and fails for an unknown service.
  * With kubectl: `kubectl kustomize` renders the manifests offline; `kubectl apply --dry-run=client`
    runs only when an API server is reachable (kubectl needs one for the schema), else is skipped.
  * A self-check: broken copies of the files (in a temp dir) must be reported.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("deploy_files_test: PyYAML is missing; install python3-yaml (scripts/setup.sh does)")
    sys.exit(1)


# --------------------------------------------------------------------------------------------
# YAML loading: SafeLoader that rejects duplicate keys (compose and kubectl --validate=strict do).

class StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class Errors:
    def __init__(self):
        self.items = []

    def add(self, where, msg):
        self.items.append("%s: %s" % (where, msg))


def load_docs(path, errors, rel):
    try:
        with open(path, encoding="utf-8") as f:
            docs = list(yaml.load_all(f, Loader=StrictLoader))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        errors.add(rel, "invalid YAML: %s" % str(e).replace("\n", " "))
        return None
    return [d for d in docs if d is not None]


# --------------------------------------------------------------------------------------------
# Offline Kubernetes schema: the fields these manifests (and ones like them) use, with the types,
# required fields and enums of the Kubernetes API reference (core/v1, apps/v1, networking/v1).
# Unknown fields are errors, like `kubectl apply --validate=strict`.

class Obj:
    def __init__(self, fields, required=(), check=None):
        self.fields, self.required, self.check = fields, tuple(required), check


class List:
    def __init__(self, item):
        self.item = item


class Map:  # string keys -> item
    def __init__(self, item):
        self.item = item


class Enum:
    def __init__(self, *values):
        self.values = values


STR, INT, BOOL, IOS, QTY, ANY = "string", "integer", "boolean", "int-or-string", "quantity", "object"

QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def check_label_map(value, path, errors):
    if not isinstance(value, dict):
        return
    for k, v in value.items():
        k = str(k)
        prefix, _, name = k.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
            errors.add(path, "label key %r: prefix must be a DNS subdomain" % k)
        if not name or len(name) > 63 or not LABEL_NAME.match(name):
            errors.add(path, "label key %r is not a valid label name" % k)
        if not isinstance(v, str) or len(v) > 63 or not LABEL_NAME.match(v):
            errors.add(path, "label %r: value %r must be a string of <= 63 [A-Za-z0-9-_.]" % (k, v))


def port_name_ok(name):  # IANA_SVC_NAME
    return (isinstance(name, str) and 0 < len(name) <= 15 and re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", name)
            and "--" not in name and re.search(r"[a-z]", name))


def check_port_number(v, path, errors):
    if isinstance(v, int) and not isinstance(v, bool) and not 1 <= v <= 65535:
        errors.add(path, "port %d is outside 1-65535" % v)


def parse_quantity(q):
    s = str(q)
    m = QUANTITY_RE.match(s)
    if not m:
        return None
    num = float(m.group(1)) if m.group(1) else 0.0
    if s.startswith("-"):
        num = -num
    suf = m.group(3) or ""
    bin_ = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
    dec = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
    if suf in bin_:
        return num * bin_[suf]
    if suf in dec:
        return num * dec[suf]
    return num * 10 ** int(suf[1:])


def _one_of(keys, what):
    def check(value, path, errors):
        present = [k for k in keys if k in value]
        if len(present) != 1:
            errors.add(path, "%s needs exactly one of %s (has %s)" % (what, ", ".join(keys), present or "none"))
    return check


def _check_resources(value, path, errors):
    req, lim = value.get("requests") or {}, value.get("limits") or {}
    for k, v in req.items():
        if k in lim:
            a, b = parse_quantity(v), parse_quantity(lim[k])
            if a is not None and b is not None and a > b:
                errors.add(path, "requests.%s (%s) is more than limits.%s (%s)" % (k, v, k, lim[k]))


def _check_container(value, path, errors):
    if "name" in value and not (isinstance(value["name"], str) and DNS1123_LABEL.match(value["name"])):
        errors.add(path + ".name", "%r is not a DNS-1123 label" % value["name"])
    names = [p.get("name") for p in value.get("ports") or [] if isinstance(p, dict) and p.get("name")]
    if len(names) != len(set(names)):
        errors.add(path + ".ports", "duplicate port names %s" % names)
    for i, p in enumerate(value.get("ports") or []):
        if isinstance(p, dict):
            if "name" in p and not port_name_ok(p["name"]):
                errors.add("%s.ports[%d].name" % (path, i), "%r is not an IANA service name (<= 15 chars)" % p["name"])
            check_port_number(p.get("containerPort"), "%s.ports[%d].containerPort" % (path, i), errors)


def _check_pod_spec(value, path, errors):
    vols = [v.get("name") for v in value.get("volumes") or [] if isinstance(v, dict)]
    if len(vols) != len(set(vols)):
        errors.add(path + ".volumes", "duplicate volume names %s" % vols)
    for v in vols:
        if not (isinstance(v, str) and DNS1123_LABEL.match(v)):
            errors.add(path + ".volumes", "volume name %r is not a DNS-1123 label" % v)
    for ci, c in enumerate(value.get("containers") or []):
        if not isinstance(c, dict):
            continue
        for mi, m in enumerate(c.get("volumeMounts") or []):
            if isinstance(m, dict) and m.get("name") not in vols:
                errors.add("%s.containers[%d].volumeMounts[%d]" % (path, ci, mi),
                           "volume %r is not defined in volumes" % m.get("name"))
    if isinstance(value.get("containers"), list) and not value["containers"]:
        errors.add(path + ".containers", "at least one container is required")


def _check_probe(value, path, errors):
    _one_of(("exec", "httpGet", "tcpSocket", "grpc"), "a probe")(value, path, errors)
    g = value.get("grpc")
    if isinstance(g, dict):
        check_port_number(g.get("port"), path + ".grpc.port", errors)


def _check_service_spec(value, path, errors):
    ports = value.get("ports") or []
    if len(ports) > 1:
        for i, p in enumerate(ports):
            if isinstance(p, dict) and not p.get("name"):
                errors.add("%s.ports[%d].name" % (path, i), "required when a Service has more than one port")
    for i, p in enumerate(ports):
        if isinstance(p, dict):
            check_port_number(p.get("port"), "%s.ports[%d].port" % (path, i), errors)
            if isinstance(p.get("targetPort"), str) and not port_name_ok(p["targetPort"]):
                errors.add("%s.ports[%d].targetPort" % (path, i), "%r is not a port name" % p["targetPort"])


def _check_pvc_spec(value, path, errors):
    if not value.get("accessModes"):
        errors.add(path + ".accessModes", "at least one access mode is required")
    if "storage" not in ((value.get("resources") or {}).get("requests") or {}):
        errors.add(path + ".resources.requests.storage", "required")


def _check_deployment_spec(value, path, errors):
    sel = (value.get("selector") or {}).get("matchLabels") or {}
    labels = (((value.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    if not sel and not (value.get("selector") or {}).get("matchExpressions"):
        errors.add(path + ".selector", "empty selector")
    for k, v in sel.items():
        if labels.get(k) != v:
            errors.add(path + ".selector", "selector %s=%s does not match the template labels" % (k, v))


LABEL_SELECTOR = Obj({
    "matchLabels": Map(STR),
    "matchExpressions": List(Obj({"key": STR, "operator": Enum("In", "NotIn", "Exists", "DoesNotExist"),
                                  "values": List(STR)}, ["key", "operator"])),
})
META = Obj({"name": STR, "generateName": STR, "namespace": STR, "labels": Map(STR), "annotations": Map(STR)})
RESOURCE_REQS = Obj({"requests": Map(QTY), "limits": Map(QTY),
                     "claims": List(Obj({"name": STR, "request": STR}, ["name"]))}, check=_check_resources)
SECCOMP = Obj({"type": Enum("RuntimeDefault", "Localhost", "Unconfined"), "localhostProfile": STR}, ["type"])
SE_LINUX = Obj({"user": STR, "role": STR, "type": STR, "level": STR})
CONTAINER_SECURITY = Obj({
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "readOnlyRootFilesystem": BOOL,
    "allowPrivilegeEscalation": BOOL, "privileged": BOOL,
    "capabilities": Obj({"add": List(STR), "drop": List(STR)}), "seccompProfile": SECCOMP,
    "seLinuxOptions": SE_LINUX, "procMount": Enum("Default", "Unmasked"),
    "appArmorProfile": Obj({"type": Enum("RuntimeDefault", "Localhost", "Unconfined"), "localhostProfile": STR}, ["type"]),
})
POD_SECURITY = Obj({
    "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "fsGroup": INT,
    "fsGroupChangePolicy": Enum("OnRootMismatch", "Always"), "supplementalGroups": List(INT),
    "seccompProfile": SECCOMP, "seLinuxOptions": SE_LINUX,
    "sysctls": List(Obj({"name": STR, "value": STR}, ["name", "value"])),
})
KEY_SELECTOR = Obj({"name": STR, "key": STR, "optional": BOOL}, ["key"])
ENV_VAR = Obj({"name": STR, "value": STR, "valueFrom": Obj({
    "secretKeyRef": KEY_SELECTOR, "configMapKeyRef": KEY_SELECTOR,
    "fieldRef": Obj({"fieldPath": STR, "apiVersion": STR}, ["fieldPath"]),
    "resourceFieldRef": Obj({"resource": STR, "containerName": STR, "divisor": QTY}, ["resource"]),
})}, ["name"])
PROBE = Obj({
    "exec": Obj({"command": List(STR)}),
    "httpGet": Obj({"path": STR, "port": IOS, "host": STR, "scheme": Enum("HTTP", "HTTPS"),
                    "httpHeaders": List(Obj({"name": STR, "value": STR}, ["name", "value"]))}, ["port"]),
    "tcpSocket": Obj({"port": IOS, "host": STR}, ["port"]),
    "grpc": Obj({"port": INT, "service": STR}, ["port"]),
    "initialDelaySeconds": INT, "timeoutSeconds": INT, "periodSeconds": INT, "successThreshold": INT,
    "failureThreshold": INT, "terminationGracePeriodSeconds": INT,
}, check=_check_probe)
CONTAINER = Obj({
    "name": STR, "image": STR, "imagePullPolicy": Enum("Always", "Never", "IfNotPresent"),
    "command": List(STR), "args": List(STR), "workingDir": STR, "env": List(ENV_VAR),
    "envFrom": List(Obj({"prefix": STR, "configMapRef": Obj({"name": STR, "optional": BOOL}),
                         "secretRef": Obj({"name": STR, "optional": BOOL})})),
    "ports": List(Obj({"containerPort": INT, "name": STR, "protocol": Enum("TCP", "UDP", "SCTP"),
                       "hostPort": INT, "hostIP": STR}, ["containerPort"])),
    "resources": RESOURCE_REQS,
    "volumeMounts": List(Obj({"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR, "subPathExpr": STR,
                              "mountPropagation": Enum("None", "HostToContainer", "Bidirectional"),
                              "recursiveReadOnly": Enum("Disabled", "IfPossible", "Enabled")},
                             ["name", "mountPath"])),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "securityContext": CONTAINER_SECURITY,
    "terminationMessagePath": STR, "terminationMessagePolicy": Enum("File", "FallbackToLogsOnError"),
    "stdin": BOOL, "tty": BOOL,
}, ["name"], check=_check_container)
KEY_TO_PATH = Obj({"key": STR, "path": STR, "mode": INT}, ["key", "path"])
VOLUME = Obj({
    "name": STR,
    "persistentVolumeClaim": Obj({"claimName": STR, "readOnly": BOOL}, ["claimName"]),
    "secret": Obj({"secretName": STR, "items": List(KEY_TO_PATH), "defaultMode": INT, "optional": BOOL}),
    "configMap": Obj({"name": STR, "items": List(KEY_TO_PATH), "defaultMode": INT, "optional": BOOL}),
    "emptyDir": Obj({"medium": Enum("", "Memory"), "sizeLimit": QTY}),
}, ["name"], check=_one_of(("persistentVolumeClaim", "secret", "configMap", "emptyDir"), "a volume"))
TOLERATION = Obj({"key": STR, "operator": Enum("Exists", "Equal"), "value": STR,
                  "effect": Enum("NoSchedule", "PreferNoSchedule", "NoExecute"), "tolerationSeconds": INT})
POD_SPEC = Obj({
    "containers": List(CONTAINER), "initContainers": List(CONTAINER), "volumes": List(VOLUME),
    "securityContext": POD_SECURITY, "terminationGracePeriodSeconds": INT, "automountServiceAccountToken": BOOL,
    "serviceAccountName": STR, "enableServiceLinks": BOOL, "nodeSelector": Map(STR),
    "restartPolicy": Enum("Always", "OnFailure", "Never"), "priorityClassName": STR,
    "imagePullSecrets": List(Obj({"name": STR})), "tolerations": List(TOLERATION), "affinity": ANY,
    "topologySpreadConstraints": List(ANY), "hostNetwork": BOOL, "hostPID": BOOL, "hostIPC": BOOL,
    "runtimeClassName": STR, "schedulerName": STR,
}, ["containers"], check=_check_pod_spec)
POD_TEMPLATE = Obj({"metadata": META, "spec": POD_SPEC})
INT_OR_PERCENT = IOS
DEPLOYMENT_SPEC = Obj({
    "replicas": INT, "selector": LABEL_SELECTOR, "template": POD_TEMPLATE,
    "strategy": Obj({"type": Enum("Recreate", "RollingUpdate"),
                     "rollingUpdate": Obj({"maxUnavailable": INT_OR_PERCENT, "maxSurge": INT_OR_PERCENT})}),
    "minReadySeconds": INT, "revisionHistoryLimit": INT, "progressDeadlineSeconds": INT, "paused": BOOL,
}, ["selector", "template"], check=_check_deployment_spec)
SERVICE_SPEC = Obj({
    "selector": Map(STR), "type": Enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "ports": List(Obj({"name": STR, "port": INT, "targetPort": IOS, "protocol": Enum("TCP", "UDP", "SCTP"),
                       "appProtocol": STR, "nodePort": INT}, ["port"])),
    "clusterIP": STR, "clusterIPs": List(STR), "sessionAffinity": Enum("None", "ClientIP"),
    "publishNotReadyAddresses": BOOL, "externalTrafficPolicy": Enum("Cluster", "Local"),
    "internalTrafficPolicy": Enum("Cluster", "Local"), "loadBalancerSourceRanges": List(STR), "externalName": STR,
}, check=_check_service_spec)
PVC_SPEC = Obj({
    "accessModes": List(Enum("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")),
    "resources": Obj({"requests": Map(QTY), "limits": Map(QTY)}), "storageClassName": STR,
    "volumeMode": Enum("Filesystem", "Block"), "volumeName": STR, "selector": LABEL_SELECTOR,
    "dataSource": Obj({"apiGroup": STR, "kind": STR, "name": STR}, ["kind", "name"]),
}, check=_check_pvc_spec)
NP_PEER = Obj({"podSelector": LABEL_SELECTOR, "namespaceSelector": LABEL_SELECTOR,
               "ipBlock": Obj({"cidr": STR, "except": List(STR)}, ["cidr"])})
NP_PORT = Obj({"protocol": Enum("TCP", "UDP", "SCTP"), "port": IOS, "endPort": INT})
NETWORK_POLICY_SPEC = Obj({
    "podSelector": LABEL_SELECTOR, "policyTypes": List(Enum("Ingress", "Egress")),
    "ingress": List(Obj({"from": List(NP_PEER), "ports": List(NP_PORT)})),
    "egress": List(Obj({"to": List(NP_PEER), "ports": List(NP_PORT)})),
}, ["podSelector"])


def top(spec_schema, required_spec=True):
    fields = {"apiVersion": STR, "kind": STR, "metadata": META}
    if spec_schema is not None:
        fields["spec"] = spec_schema
    return Obj(fields, ["apiVersion", "kind", "metadata"] + (["spec"] if required_spec and spec_schema else []))


KINDS = {
    ("v1", "Namespace"): top(Obj({"finalizers": List(STR)}), required_spec=False),
    ("v1", "PersistentVolumeClaim"): top(PVC_SPEC),
    ("v1", "Service"): top(SERVICE_SPEC),
    ("apps/v1", "Deployment"): top(DEPLOYMENT_SPEC),
    ("networking.k8s.io/v1", "NetworkPolicy"): top(NETWORK_POLICY_SPEC),
}


def validate(value, schema, path, errors):
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            errors.add(path, "expected an object, got %s" % type(value).__name__)
            return
        for k in value:
            if k not in schema.fields:
                errors.add(path, "unknown field %r" % (k,))
        for k in schema.required:
            if k not in value or value[k] is None:
                errors.add(path, "missing required field %r" % k)
        for k, v in value.items():
            if k in schema.fields:
                validate(v, schema.fields[k], "%s.%s" % (path, k), errors)
        if schema.check:
            schema.check(value, path, errors)
    elif isinstance(schema, List):
        if not isinstance(value, list):
            errors.add(path, "expected a list, got %s" % type(value).__name__)
            return
        for i, v in enumerate(value):
            validate(v, schema.item, "%s[%d]" % (path, i), errors)
    elif isinstance(schema, Map):
        if not isinstance(value, dict):
            errors.add(path, "expected a map, got %s" % type(value).__name__)
            return
        for k, v in value.items():
            if not isinstance(k, str):
                errors.add(path, "key %r must be a string" % (k,))
            validate(v, schema.item, "%s.%s" % (path, k), errors)
    elif isinstance(schema, Enum):
        if value not in schema.values:
            errors.add(path, "%r is not one of %s" % (value, ", ".join(map(repr, schema.values))))
    elif schema == STR:
        if not isinstance(value, str):
            errors.add(path, "expected a string, got %s %r" % (type(value).__name__, value))
    elif schema == INT:
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(path, "expected an integer, got %s %r" % (type(value).__name__, value))
    elif schema == BOOL:
        if not isinstance(value, bool):
            errors.add(path, "expected a boolean, got %s %r" % (type(value).__name__, value))
    elif schema == IOS:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.add(path, "expected an integer or a string, got %r" % (value,))
    elif schema == QTY:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or parse_quantity(value) is None:
            errors.add(path, "%r is not a quantity" % (value,))
    elif schema == ANY:
        if not isinstance(value, (dict, list)):
            errors.add(path, "expected an object")
    else:
        raise AssertionError("bad schema %r" % (schema,))


def validate_object(doc, where, errors):
    """Returns False when the object lacks its identity (apiVersion, kind, metadata.name)."""
    if not isinstance(doc, dict):
        errors.add(where, "a Kubernetes object must be a mapping")
        return False
    ok = True
    for k in ("apiVersion", "kind"):
        if not isinstance(doc.get(k), str) or not doc.get(k):
            errors.add(where, "missing %s" % k)
            ok = False
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    if not isinstance(name, str) or not name:
        errors.add(where, "missing metadata.name")
        ok = False
    if not ok:
        return False
    where = "%s %s/%s" % (where, doc["kind"], name)
    schema = KINDS.get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        errors.add(where, "no offline schema for apiVersion %s kind %s (add one to %s)"
                   % (doc["apiVersion"], doc["kind"], os.path.basename(__file__)))
        return True
    validate(doc, schema, where, errors)
    name_re = DNS1035_LABEL if doc["kind"] == "Service" else DNS1123_LABEL if doc["kind"] == "Namespace" \
        else DNS1123_SUBDOMAIN
    if len(name) > (63 if doc["kind"] in ("Service", "Namespace") else 253) or not name_re.match(name):
        errors.add(where, "metadata.name %r is not a valid %s name" % (name, doc["kind"]))
    check_label_map(doc["metadata"].get("labels"), where + ".metadata.labels", errors)
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    tmpl = (spec.get("template") or {}) if doc["kind"] == "Deployment" else {}
    if isinstance(tmpl, dict) and isinstance(tmpl.get("metadata"), dict):
        check_label_map(tmpl["metadata"].get("labels"), where + ".spec.template.metadata.labels", errors)
    return True


# --------------------------------------------------------------------------------------------
# Server command lines.

SERVERS = {  # binary -> (role, the service its readiness reports)
    "qeff-exporter": ("exporter", "qeff.v1.Exporter"),
    "qeff-compiler": ("compiler", "qeff.v1.Compiler"),
    "qeff-runner": ("runner", "qeff.v1.Runner"),
    "qeffd": ("qeffd", "qeff.v1.Runner"),
}
SECRET_FLAGS = ("--tls-cert", "--tls-key", "--tls-client-ca", "--auth-token-file")
SERVE_KEYS = {"id", "ctx_len", "prefill_seq_len", "full_batch_size", "weight_dtype"}


def parse_flags(argv):
    """['--a=1', '--b', '2', '3'] -> {'--a': ['1'], '--b': ['2', '3']} (a flag takes the values after it)."""
    flags, current = {}, None
    for tok in argv:
        if tok.startswith("--"):
            name, eq, val = tok.partition("=")
            flags.setdefault(name, [])
            current = name
            if eq:
                flags[name].append(val)
                current = None
        elif current is not None:
            flags[current].append(tok)
        else:
            flags.setdefault("", []).append(tok)
    return flags


def parse_serve(spec):
    """Returns (model, {key: value}, error) for 'MODEL[,id=NAME][,ctx_len=N]...' as the runner parses it."""
    parts = spec.split(",")
    if not parts[0]:
        return None, {}, "MODEL is empty"
    opts = {}
    for p in parts[1:]:
        key, eq, value = p.partition("=")
        if not eq:
            return None, {}, "%r is not key=value" % p
        if key not in SERVE_KEYS:
            return None, {}, "unknown key %r" % key
        if key in opts:
            return None, {}, "%r given twice" % key
        if not value:
            return None, {}, "%r has an empty value" % key
        if key in ("ctx_len", "prefill_seq_len", "full_batch_size") and not re.match(r"^\d+$", value):
            return None, {}, "%r must be a non-negative integer" % key
        opts[key] = value
    return parts[0], opts, None


def port_of(addr):
    m = re.match(r"^(.*):(\d+)$", addr or "")
    return int(m.group(2)) if m else None


def under(path, mount):
    path, mount = os.path.normpath(path), os.path.normpath(mount)
    return path == mount or path.startswith(mount.rstrip("/") + "/")


# --------------------------------------------------------------------------------------------
# Dockerfile.

def parse_dockerfile(path):
    """Returns the instructions as [(stage_index, KEYWORD, args_text)]."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out, buf, stage = [], "", -1
    for line in lines:
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        kw, _, rest = buf.partition(" ")
        kw = kw.upper()
        if kw == "FROM":
            stage += 1
        out.append((stage, kw, rest.strip()))
        buf = ""
    return out


def dockerfile_user(instrs):
    """(uid, gid, user_text) of the final stage's last USER, uid None when absent or not numeric."""
    last = max((s for s, _, _ in instrs), default=-1)
    users = [a for s, k, a in instrs if s == last and k == "USER"]
    if not users:
        return None, None, None
    text = users[-1]
    u, _, g = text.partition(":")
    return (int(u) if u.isdigit() else None), (int(g) if g.isdigit() else None), text


def check_dockerfile(root, errors, binaries):
    rel = "deploy/Dockerfile"
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        errors.add(rel, "missing")
        return None
    instrs = parse_dockerfile(path)
    last = max((s for s, _, _ in instrs), default=-1)
    stage_names = [re.split(r"\s+", a)[-1].lower() for s, k, a in instrs if k == "FROM" and " as " in a.lower()]
    uid, gid, text = dockerfile_user(instrs)
    if text is None:
        errors.add(rel, "the final stage has no USER: the image would run as root")
    elif text.split(":")[0] in ("root", "0") or uid == 0:
        errors.add(rel, "USER %s is root" % text)
    else:
        final_runs = " ".join(a for s, k, a in instrs if s == last and k == "RUN")
        name = text.split(":")[0]
        created = re.search(r"useradd\b[^&;]*--uid\s+%s\b" % re.escape(name), final_runs) if uid is not None \
            else re.search(r"useradd\b[^&;]*\s%s(\s|$)" % re.escape(name), final_runs)
        if not created:
            errors.add(rel, "USER %s is not created in the final stage (useradd --uid %s ...)" % (text, name))
    for s, k, a in instrs:
        if k in ("ENTRYPOINT", "CMD") and a.startswith("["):
            try:
                json.loads(a)
            except ValueError:
                errors.add(rel, "%s is not valid exec-form JSON: %s" % (k, a))
        if k in ("COPY", "ADD"):
            words = a.split()
            opts = [w for w in words if w.startswith("--")]
            args = [w for w in words if not w.startswith("--")]
            from_ = [o.split("=", 1)[1].lower() for o in opts if o.startswith("--from=")]
            if from_:
                if from_[0] not in stage_names:
                    errors.add(rel, "COPY --from=%s names no stage" % from_[0])
                continue
            for src in args[:-1]:
                if src != "." and not os.path.exists(os.path.join(root, src)):
                    errors.add(rel, "COPY source %s does not exist (the context is the repository root)" % src)
    if binaries:
        check_runtime_packages(rel, instrs, last, binaries, errors)
    return {"uid": uid, "gid": gid, "copied": [a for s, k, a in instrs if s == last and k in ("COPY", "ADD")]}


def check_runtime_packages(rel, instrs, last, binaries, errors):
    """Every shared library the built binaries need comes from a package the runtime stage installs
    (or one of their dependencies, or the base image's essentials)."""
    if not shutil.which("dpkg-query") or not shutil.which("ldd"):
        print("SKIP runtime packages: no dpkg-query/ldd here")
        return
    runs = " ".join(a for s, k, a in instrs if s == last and k == "RUN")
    m = re.search(r"apt-get install\s+(.*?)(&&|$)", runs)
    listed = set(w for w in (m.group(1).split() if m else []) if not w.startswith("-"))
    closure, todo = set(), set(listed)
    while todo:  # the installed packages' Depends/Pre-Depends, recursively (alternatives: all)
        closure |= todo
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}\\n"] + sorted(todo),
                           capture_output=True, text=True)
        deps = {d.strip().split(" ")[0].split(":")[0] for d in re.split(r"[,|\n]", r.stdout)}
        todo = {d for d in deps if d and d not in closure}
    base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}  # in debian:12 itself
    libs = {}  # library path -> binaries that link it
    for name, path in binaries.items():
        if not os.path.exists(path):
            errors.add(rel, "binary %s not found at %s (build it first)" % (name, path))
            continue
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for mm in re.finditer(r"=>\s+(/\S+)", out):
            libs.setdefault(mm.group(1), set()).add(name)
    needed, left = {}, dict(libs)
    for variant in (lambda p: p, os.path.realpath):  # as ldd names it, then the file it links to
        ask = {variant(p): p for p in left}
        if not ask:
            break
        r = subprocess.run(["dpkg-query", "-S"] + sorted(ask), capture_output=True, text=True)
        for line in r.stdout.splitlines():
            pkg, _, f = line.partition(": ")
            f = f.strip()
            if f in ask and ask[f] in left:
                needed.setdefault(pkg.split(",")[0].split(":")[0].strip(), set()).update(left.pop(ask[f]))
    for lib in sorted(left):
        print("note: %s belongs to no Debian package (not checked)" % lib)
    missing = sorted(p for p in needed if p not in closure and p not in base)
    if missing:
        errors.add(rel, "the runtime stage does not install %s (needed by %s)"
                   % (", ".join(missing), ", ".join(sorted(set().union(*(needed[p] for p in missing))))))
    else:
        print("ok: the runtime stage installs all %d packages whose libraries the binaries link" % len(needed))


# --------------------------------------------------------------------------------------------
# Kubernetes manifests: properties.

def load_k8s(root, errors):
    """Parses and schema-checks every manifest; returns [(file, object)] with their identity."""
    k8s_dir = os.path.join(root, "deploy", "k8s")
    if not os.path.isdir(k8s_dir):
        errors.add("deploy/k8s", "missing")
        return []
    objects, kustomization = [], None
    files = sorted(f for f in os.listdir(k8s_dir) if f.endswith((".yaml", ".yml")))
    for fname in files:
        rel = "deploy/k8s/" + fname
        docs = load_docs(os.path.join(k8s_dir, fname), errors, rel)
        if docs is None:
            continue
        if fname == "kustomization.yaml":
            kustomization = docs[0] if docs else {}
            continue
        if not docs:
            errors.add(rel, "no Kubernetes object")
        for i, d in enumerate(docs):
            where = "%s[doc %d]" % (rel, i)
            if validate_object(d, where, errors):
                objects.append((rel, d))
    if kustomization is None:
        errors.add("deploy/k8s/kustomization.yaml", "missing (kubectl apply -k deploy/k8s)")
    else:
        listed = set(kustomization.get("resources") or [])
        for fname in files:
            if fname != "kustomization.yaml" and fname not in listed:
                errors.add("deploy/k8s/kustomization.yaml", "resources does not list %s" % fname)
        for r in listed:
            if r not in files:
                errors.add("deploy/k8s/kustomization.yaml", "resources lists %s, which does not exist" % r)
    return objects


def check_k8s_properties(objects, errors, image_uid):
    def of_kind(kind):
        return [(rel, d) for rel, d in objects if d.get("kind") == kind]

    pvcs = {d["metadata"]["name"]: d for _, d in of_kind("PersistentVolumeClaim")}
    deployments = [(rel, d) for rel, d in of_kind("Deployment") if isinstance(d.get("spec"), dict)
                   and isinstance(d["spec"].get("template"), dict) and isinstance(d["spec"]["template"].get("spec"), dict)]
    services = of_kind("Service")
    policies = of_kind("NetworkPolicy")
    roles_seen, serve_ids = {}, {}
    for rel, d in deployments:
        where = "%s Deployment/%s" % (rel, d["metadata"]["name"])
        pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
        if not isinstance(pod, dict):
            continue
        pod_labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        psc = pod.get("securityContext") or {}
        volumes = {v.get("name"): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
        for c in pod.get("containers") or []:
            if not isinstance(c, dict):
                continue
            cw = "%s container %s" % (where, c.get("name"))
            check_container_common(c, cw, psc, image_uid, errors)
            argv = list(c.get("command") or []) + list(c.get("args") or [])
            binary = os.path.basename(argv[0]) if argv else ""
            if binary not in SERVERS:
                errors.add(cw, "command %r is not a qeff server (%s)" % (binary, ", ".join(SERVERS)))
                continue
            role, service = SERVERS[binary]
            roles_seen.setdefault(role, []).append((d, pod_labels))
            flags = parse_flags(argv[1:])
            check_server_flags(c, cw, flags, role, service, volumes, pvcs, errors)
            if role in ("runner", "qeffd"):
                specs = flags.get("--serve", [])
                if role == "runner" and len(specs) != 1:
                    errors.add(cw, "a runner Deployment serves exactly one model: one --serve 'MODEL,id=NAME' "
                               "(has %d)" % len(specs))
                for spec in specs:
                    model, opts, err = parse_serve(spec)
                    if err:
                        errors.add(cw, "--serve %r: %s" % (spec, err))
                        continue
                    if "id" not in opts:
                        errors.add(cw, "--serve %r: give the model id clients use (,id=NAME)" % spec)
                    mid = opts.get("id", model)
                    if mid in serve_ids:
                        errors.add(cw, "model id %r is also served by %s: one Deployment per model" % (mid, serve_ids[mid]))
                    serve_ids[mid] = d["metadata"]["name"]
                    if model.startswith("/"):
                        if not any(under(model, m.get("mountPath", "")) and m.get("readOnly") for m in
                                   c.get("volumeMounts") or []):
                            errors.add(cw, "--serve model %s is not on a read-only volume" % model)
                    elif not re.match(r"^[\w.-]+/[\w.-]+$", model):
                        errors.add(cw, "--serve model %r is neither org/name (HF cache) nor an absolute path" % model)
                    elif not env_under_readonly(c, "HF_HOME"):
                        errors.add(cw, "--serve %s (org/name) needs HF_HOME on a read-only models volume" % model)

    for role in ("exporter", "compiler", "runner"):
        if role not in roles_seen:
            errors.add("deploy/k8s", "no %s Deployment" % role)
    # Services: every runner Deployment (one model each) has a Service selecting only its pods.
    all_pods = [(rel, d, ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {})
                for rel, d in deployments if isinstance(d.get("spec"), dict)]
    for rel, s in services:
        sel = (s.get("spec") or {}).get("selector") or {}
        where = "%s Service/%s" % (rel, s["metadata"]["name"])
        hits = [d for _, d, labels in all_pods if sel and all(labels.get(k) == v for k, v in sel.items())]
        if not hits:
            errors.add(where, "selects no Deployment's pods")
            continue
        if len(hits) > 1:
            errors.add(where, "selects the pods of %d Deployments (%s): a Load and the next Generate could "
                       "land on pods serving different models" % (len(hits), ", ".join(h["metadata"]["name"] for h in hits)))
        names = {p.get("name") for h in hits for c in h["spec"]["template"]["spec"].get("containers") or []
                 for p in c.get("ports") or []}
        for p in (s.get("spec") or {}).get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
                errors.add(where, "targetPort %r is not a container port name" % p["targetPort"])
    for d, labels in roles_seen.get("runner", []) + roles_seen.get("exporter", []) + roles_seen.get("compiler", []):
        if not any(all(labels.get(k) == v for k, v in ((s.get("spec") or {}).get("selector") or {}).items())
                   and (s.get("spec") or {}).get("selector") for _, s in services):
            errors.add("deploy/k8s Deployment/%s" % d["metadata"]["name"], "no Service selects its pods")
    # NetworkPolicies: exporter and compiler reachable only from qeff pods.
    for role in ("exporter", "compiler"):
        for d, labels in roles_seen.get(role, []):
            dname = d["metadata"]["name"]
            mine = [(rel, p) for rel, p in policies
                    if all(labels.get(k) == v for k, v in
                           (((p.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}).items())]
            if not mine:
                errors.add("deploy/k8s Deployment/%s" % dname, "no NetworkPolicy selects the %s pods" % role)
            for rel, p in mine:
                where = "%s NetworkPolicy/%s" % (rel, p["metadata"]["name"])
                spec = p.get("spec") or {}
                if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
                    errors.add(where, "does not restrict Ingress")
                for i, rule in enumerate(spec.get("ingress") or []):
                    peers = (rule or {}).get("from") or []
                    if not peers:
                        errors.add(where, "ingress[%d] allows every source: the %s must be reachable only "
                                   "from qeff pods" % (i, role))
                    for peer in peers:
                        if not isinstance(peer, dict):
                            continue
                        if "ipBlock" in peer or "podSelector" not in peer or \
                                not (peer["podSelector"] or {}).get("matchLabels"):
                            errors.add(where, "ingress[%d] admits more than labelled qeff pods: %s" % (i, peer))


def env_under_readonly(c, var):
    env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e, dict)}
    val = env.get(var)
    return bool(val) and any(under(val, m.get("mountPath", "")) and m.get("readOnly")
                             for m in c.get("volumeMounts") or [] if isinstance(m, dict))


def check_container_common(c, cw, psc, image_uid, errors):
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        got = res.get(part) or {}
        for r in ("cpu", "memory"):
            if r not in got:
                errors.add(cw, "resources.%s.%s missing" % (part, r))
    sc = c.get("securityContext") or {}

    def eff(key):
        return sc.get(key, psc.get(key))
    if eff("runAsNonRoot") is not True:
        errors.add(cw, "securityContext.runAsNonRoot must be true")
    uid = eff("runAsUser")
    if not isinstance(uid, int) or isinstance(uid, bool) or uid == 0:
        errors.add(cw, "securityContext.runAsUser must be a fixed non-zero uid (got %r)" % (uid,))
    elif image_uid is not None and uid != image_uid:
        errors.add(cw, "runAsUser %d differs from the Dockerfile's USER %d" % (uid, image_uid))
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.add(cw, "securityContext.allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        errors.add(cw, "securityContext.readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        errors.add(cw, "securityContext.capabilities.drop must include ALL")
    if (eff("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        errors.add(cw, "seccompProfile RuntimeDefault missing (Pod Security 'restricted')")
    for probe in ("livenessProbe", "readinessProbe"):
        if not c.get(probe):
            errors.add(cw, "%s missing" % probe)


def check_server_flags(c, cw, flags, role, service, volumes, pvcs, errors):
    mounts = [m for m in c.get("volumeMounts") or [] if isinstance(m, dict)]
    ports = {p.get("containerPort") for p in c.get("ports") or [] if isinstance(p, dict)}

    def mount_of(path):
        best = None
        for m in mounts:
            if under(path, m.get("mountPath", "")) and (best is None or len(m["mountPath"]) > len(best["mountPath"])):
                best = m
        return best

    def one(flag):
        v = flags.get(flag)
        if not v:
            return None
        if len(v) != 1:
            errors.add(cw, "%s given %d values" % (flag, len(v)))
        return v[0]

    for flag in SECRET_FLAGS:
        path = one(flag)
        if path is None:
            errors.add(cw, "%s FILE missing" % flag)
            continue
        m = mount_of(path)
        vol = volumes.get(m.get("name")) if m else None
        if not vol or "secret" not in vol:
            errors.add(cw, "%s %s is not on a Secret volume" % (flag, path))
            continue
        items = (vol["secret"] or {}).get("items")
        relp = os.path.relpath(path, m["mountPath"])
        if items and relp not in {i.get("path") for i in items if isinstance(i, dict)}:
            errors.add(cw, "%s %s: the Secret volume %s has no item with path %s" % (flag, path, m["name"], relp))
    listen = one("--listen")
    if listen is None or port_of(listen) not in ports:
        errors.add(cw, "--listen %s: its port is not a containerPort" % listen)
    health = one("--health-listen")
    if health is None:
        errors.add(cw, "--health-listen HOST:PORT missing (plaintext grpc.health.v1 for the kubelet's probes)")
    hport = port_of(health) if health else None
    for probe in ("livenessProbe", "readinessProbe"):
        g = (c.get(probe) or {}).get("grpc")
        if not isinstance(g, dict):
            errors.add(cw, "%s must be a grpc probe (grpc.health.v1)" % probe)
            continue
        if hport is not None and g.get("port") != hport:
            errors.add(cw, "%s probes port %s, not the --health-listen port %s" % (probe, g.get("port"), hport))
    g = (c.get("readinessProbe") or {}).get("grpc") or {}
    if isinstance(g, dict) and g.get("service") != service:
        errors.add(cw, "readinessProbe must check service %s (got %r)" % (service, g.get("service")))
    cache = one("--cache-dir")
    m = mount_of(cache) if cache else None
    vol = volumes.get(m.get("name")) if m else None
    if not vol or "persistentVolumeClaim" not in vol or m.get("readOnly"):
        errors.add(cw, "--cache-dir %s must be on a writable PersistentVolumeClaim volume" % cache)
    else:
        claim = vol["persistentVolumeClaim"].get("claimName")
        pvc = pvcs.get(claim)
        if pvc is None:
            errors.add(cw, "cache claim %s is not defined in deploy/k8s" % claim)
        elif "ReadWriteMany" not in ((pvc.get("spec") or {}).get("accessModes") or []):
            errors.add(cw, "cache claim %s must be ReadWriteMany (shared by every stage and replica)" % claim)
    for m in mounts:
        vol = volumes.get(m.get("name")) or {}
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and claim not in pvcs:
            errors.add(cw, "volume %s claims %s, which is not defined in deploy/k8s" % (m.get("name"), claim))
    if role in ("exporter", "qeffd"):
        roots = flags.get("--model-root") or []
        if not roots:
            errors.add(cw, "--model-root DIR missing: the exporter must read models only from its volume")
        for r in roots:
            m = mount_of(r)
            vol = volumes.get(m.get("name")) if m else None
            if not m or not m.get("readOnly") or not vol or "persistentVolumeClaim" not in vol:
                errors.add(cw, "--model-root %s must be on a read-only mounted PersistentVolumeClaim volume" % r)
            elif not vol["persistentVolumeClaim"].get("readOnly"):
                errors.add(cw, "--model-root %s: set persistentVolumeClaim.readOnly: true on volume %s"
                           % (r, m.get("name")))


# --------------------------------------------------------------------------------------------
# compose.yaml.

COMPOSE_TOP = {"version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models"}
COMPOSE_SERVICE = set("""annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpus cpuset
credential_spec depends_on deploy develop device_cgroup_rules devices dns dns_opt dns_search domainname driver_opts
entrypoint env_file environment expose extends external_links extra_hosts gpus group_add healthcheck hostname image
init ipc isolation labels label_file links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
models network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop
privileged profiles provider pull_policy pull_refresh_after read_only restart runtime scale secrets security_opt
shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits use_api_socket user
userns_mode uts volumes volumes_from working_dir""".split())
COMPOSE_BUILD = set("""context dockerfile dockerfile_inline args ssh labels cache_from cache_to no_cache
additional_contexts network pull target shm_size extra_hosts isolation privileged secrets tags ulimits platforms
entitlements""".split())
COMPOSE_HEALTH = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
COMPOSE_VOLUME_LONG = {"type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs", "image"}
COMPOSE_PORT_LONG = {"name", "target", "published", "host_ip", "protocol", "app_protocol", "mode"}
COMPOSE_SECRET_TOP = {"file", "environment", "external", "name", "labels", "driver", "driver_opts", "template_driver"}
DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}


def interpolate(text, env):
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                    continue
                if text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                raise ValueError("unclosed ${ in %r" % text)
            body = text[i + 2:j - 1]
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", body, re.S)
            if not m:
                raise ValueError("invalid interpolation ${%s}" % body)
            name, op, arg = m.group(1), m.group(2), m.group(3) or ""
            val = env.get(name)
            if op is None:
                out.append(val or "")
            elif op in (":-", "-"):
                use_default = val is None or (op == ":-" and val == "")
                out.append(interpolate(arg, env) if use_default else val)
            elif op in (":?", "?"):
                if val is None or (op == ":?" and val == ""):
                    raise ValueError("required variable %s is not set: %s" % (name, arg))
                out.append(val)
            else:  # :+ / +
                out.append(interpolate(arg, env) if val else "")
            i = j
            continue
        m = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:])
        if m:
            out.append(env.get(m.group(1)) or "")
            i += len(m.group(0))
            continue
        raise ValueError("a lone $ in %r (write $$)" % text)
    return "".join(out)


def interpolate_all(node, env, path, errors):
    if isinstance(node, dict):
        return {k: interpolate_all(v, env, "%s.%s" % (path, k), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_all(v, env, "%s[%d]" % (path, i), errors) for i, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env)
        except ValueError as e:
            errors.add(path, str(e))
            return node
    return node


def parse_short_port(spec):
    """'[HOST_IP:][HOST:]CONTAINER[/proto]' -> (host_ip or None, published or None, target)."""
    s = spec.split("/")[0]
    if s.startswith("["):  # [v6]:host:container
        host_ip, _, rest = s[1:].partition("]:")
        pub, _, tgt = rest.rpartition(":")
        return host_ip, pub or None, tgt
    parts = s.split(":")
    if len(parts) == 1:
        return None, None, parts[0]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def check_compose(root, errors, image):
    rel = "deploy/compose.yaml"
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        errors.add(rel, "missing")
        return
    docs = load_docs(path, errors, rel)
    if docs is None:
        return
    if len(docs) != 1 or not isinstance(docs[0], dict):
        errors.add(rel, "must be one YAML mapping")
        return
    raw = docs[0]
    for k in raw:
        if k not in COMPOSE_TOP and not str(k).startswith("x-"):
            errors.add(rel, "unknown top-level key %r" % k)
    cf = interpolate_all(raw, {}, rel, errors)  # as with no variables set: the defaults
    compose_dir = os.path.dirname(path)
    services = cf.get("services")
    if not isinstance(services, dict) or not services:
        errors.add(rel, "no services")
        return
    top_secrets = cf.get("secrets") or {}
    top_volumes = cf.get("volumes") or {}
    for name, sec in top_secrets.items():
        if not isinstance(sec, dict):
            errors.add("%s secrets.%s" % (rel, name), "must be a mapping")
            continue
        for k in sec:
            if k not in COMPOSE_SECRET_TOP:
                errors.add("%s secrets.%s" % (rel, name), "unknown key %r" % k)
        if "file" not in sec and "environment" not in sec and not sec.get("external"):
            errors.add("%s secrets.%s" % (rel, name), "needs file, environment or external")
    for sname, svc in services.items():
        where = "%s services.%s" % (rel, sname)
        if not isinstance(svc, dict):
            errors.add(where, "must be a mapping")
            continue
        for k in svc:
            if k not in COMPOSE_SERVICE and not str(k).startswith("x-"):
                errors.add(where, "unknown key %r (docker compose rejects it)" % k)
        build = svc.get("build")
        if not isinstance(build, dict) or "context" not in build or "dockerfile" not in build:
            errors.add(where, "build: {context: .., dockerfile: deploy/Dockerfile} missing")
        else:
            for k in build:
                if k not in COMPOSE_BUILD:
                    errors.add(where + ".build", "unknown key %r" % k)
            ctx = os.path.normpath(os.path.join(compose_dir, build["context"]))
            if os.path.normpath(ctx) != os.path.normpath(root):
                errors.add(where + ".build.context", "%r is not the repository root" % build["context"])
            if not os.path.exists(os.path.join(ctx, build["dockerfile"])):
                errors.add(where + ".build.dockerfile", "%s does not exist in the context" % build["dockerfile"])
        user = str(svc.get("user", ""))
        uname = user.split(":")[0]
        if not user:
            errors.add(where, "user missing (run as the image's non-root uid)")
        elif uname in ("root", "0"):
            errors.add(where, "user %s is root" % user)
        elif image and image.get("uid") is not None and uname.isdigit() and int(uname) != image["uid"]:
            errors.add(where, "user %s differs from the Dockerfile's USER %s" % (user, image["uid"]))
        if svc.get("read_only") is not True:
            errors.add(where, "read_only: true missing (read-only root filesystem)")
        if svc.get("privileged") or svc.get("network_mode") == "host":
            errors.add(where, "privileged / host networking")
        # healthcheck
        hc = svc.get("healthcheck")
        if not isinstance(hc, dict) or not hc.get("test"):
            errors.add(where, "healthcheck missing")
        else:
            for k in hc:
                if k not in COMPOSE_HEALTH:
                    errors.add(where + ".healthcheck", "unknown key %r" % k)
            for k in ("interval", "timeout", "start_period", "start_interval"):
                if k in hc and not DURATION_RE.match(str(hc[k])):
                    errors.add(where + ".healthcheck." + k, "%r is not a duration" % hc[k])
            test = hc["test"]
            if isinstance(test, list):
                if test[0] not in ("CMD", "CMD-SHELL", "NONE") or len(test) < 2:
                    errors.add(where + ".healthcheck.test", "must start with CMD or CMD-SHELL")
                elif test[0] == "CMD" and image is not None:
                    prog = test[1]
                    installed = any(prog in a.split() or ("/" + prog) in a or a.endswith(" " + prog)
                                    for a in image.get("copied", []))
                    if not installed:
                        errors.add(where + ".healthcheck.test", "%s is not installed by deploy/Dockerfile" % prog)
        # flags
        argv = [str(a) for a in (svc.get("entrypoint") or [])] + [str(a) for a in (svc.get("command") or [])]
        if not argv or os.path.basename(argv[0]) not in SERVERS:
            errors.add(where, "entrypoint must start a qeff server (%s)" % ", ".join(SERVERS))
            continue
        role, _ = SERVERS[os.path.basename(argv[0])]
        flags = parse_flags(argv[1:])
        svc_secrets = {}
        for s in svc.get("secrets") or []:
            src = s if isinstance(s, str) else (s or {}).get("source")
            tgt = s if isinstance(s, str) else (s or {}).get("target", src)
            if src not in top_secrets:
                errors.add(where + ".secrets", "%s is not declared under the top-level secrets" % src)
            tgt = tgt if str(tgt).startswith("/") else "/run/secrets/" + str(tgt)
            svc_secrets[tgt] = src
        for flag in SECRET_FLAGS:
            vals = flags.get(flag) or []
            if not vals:
                errors.add(where, "%s FILE missing" % flag)
            elif vals[0] not in svc_secrets:
                errors.add(where, "%s %s is not one of the service's secrets (%s)"
                           % (flag, vals[0], ", ".join(sorted(svc_secrets)) or "none"))
        health = (flags.get("--health-listen") or [None])[0]
        if not health:
            errors.add(where, "--health-listen missing (the healthcheck's plaintext port)")
        elif isinstance(hc, dict) and isinstance(hc.get("test"), list) and len(hc["test"]) > 2 \
                and hc["test"][2] != health:
            errors.add(where + ".healthcheck", "checks %s, not the --health-listen %s" % (hc["test"][2], health))
        # volumes
        mounts = []
        for i, v in enumerate(svc.get("volumes") or []):
            if isinstance(v, str):
                parts = v.split(":")
                if len(parts) < 2:
                    mounts.append({"source": None, "target": parts[0], "read_only": False})
                    continue
                mounts.append({"type": "bind" if parts[0].startswith((".", "/", "~")) else "volume",
                               "source": parts[0], "target": parts[1],
                               "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
            elif isinstance(v, dict):
                for k in v:
                    if k not in COMPOSE_VOLUME_LONG:
                        errors.add("%s.volumes[%d]" % (where, i), "unknown key %r" % k)
                if "target" not in v:
                    errors.add("%s.volumes[%d]" % (where, i), "target missing")
                mounts.append(v)
            else:
                errors.add("%s.volumes[%d]" % (where, i), "must be a string or a mapping")
        for m in mounts:
            if m.get("type", "volume") == "volume" and m.get("source") and m["source"] not in top_volumes:
                errors.add(where + ".volumes", "named volume %s is not declared under the top-level volumes"
                           % m["source"])
        roots = flags.get("--model-root") or []
        if role in ("exporter", "qeffd") and not roots:
            errors.add(where, "--model-root DIR missing")
        for r in roots:
            if not any(under(r, str(m.get("target", ""))) and m.get("read_only") for m in mounts):
                errors.add(where, "--model-root %s is not on a read-only volume" % r)
        # ports: never on all interfaces unless a variable says so
        for i, p in enumerate(svc.get("ports") or []):
            pw = "%s.ports[%d]" % (where, i)
            raw_p = ((raw.get("services") or {}).get(sname) or {}).get("ports") or []
            raw_p = raw_p[i] if i < len(raw_p) else p
            if isinstance(p, dict):
                for k in p:
                    if k not in COMPOSE_PORT_LONG:
                        errors.add(pw, "unknown key %r" % k)
                host_ip = p.get("host_ip")
                explicit = isinstance(raw_p, dict) and "$" in str(raw_p.get("host_ip", ""))
            elif isinstance(p, str):
                host_ip, _, _ = parse_short_port(p)
                explicit = isinstance(raw_p, str) and raw_p.startswith("$")
            else:
                errors.add(pw, "%r must be a quoted string (YAML reads 50061:50051 as a base-60 number)" % (p,))
                continue
            if not host_ip:
                errors.add(pw, "%r publishes on every interface (0.0.0.0): give 127.0.0.1:HOST:CONTAINER" % (p,))
            elif host_ip not in LOOPBACK:
                errors.add(pw, "%r publishes on %s by default; use 127.0.0.1 (or ${VAR:-127.0.0.1} for an "
                           "explicit opt-in)" % (raw_p, host_ip))
            elif explicit and role in ("exporter", "compiler"):
                errors.add(pw, "the %s is internal: publish it on loopback only, without a variable" % role)


def check_secrets_script(root, errors):
    script = os.path.join(root, "deploy", "make-dev-secrets.sh")
    if not os.path.exists(script):
        errors.add("deploy/make-dev-secrets.sh", "missing")
        return
    if not shutil.which("openssl"):
        print("SKIP make-dev-secrets.sh: no openssl here")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "secrets")
        r = subprocess.run(["bash", script, out], capture_output=True, text=True)
        if r.returncode != 0:
            errors.add("deploy/make-dev-secrets.sh", "failed: %s" % (r.stderr or r.stdout))
            return
        cf = yaml.load(open(os.path.join(root, "deploy", "compose.yaml")), Loader=StrictLoader) or {}
        for name, sec in (cf.get("secrets") or {}).items():
            f = os.path.basename(str((sec or {}).get("file", "")))
            if f and not os.path.exists(os.path.join(out, f)):
                errors.add("deploy/make-dev-secrets.sh", "does not make %s (compose secret %s)" % (f, name))
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(out, "ca.crt"),
                            os.path.join(out, "tls.crt"), os.path.join(out, "client.crt")],
                           capture_output=True, text=True)
        if v.returncode != 0:
            errors.add("deploy/make-dev-secrets.sh", "certificates do not verify: %s" % v.stdout + v.stderr)
        else:
            print("ok: make-dev-secrets.sh makes every compose secret; its certificates verify")


def check_health_script(root, errors, server):
    script = os.path.join(root, "deploy", "qeff-health")
    if not shutil.which("curl"):
        print("SKIP qeff-health against a server: no curl here")
        return
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--cache-dir", os.path.join(tmp, "cache")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline().strip()
            m = re.match(r"^listening on (\S+)$", line)
            if not m:
                errors.add("deploy/qeff-health", "the server did not start (%r)" % line)
                return
            addr = m.group(1)

            def run(*args):
                return subprocess.run(["bash", script, addr] + list(args), capture_output=True, text=True,
                                      timeout=30).returncode
            if run("qeff.v1.Compiler") != 0 or run() != 0:
                errors.add("deploy/qeff-health", "does not report SERVING for a serving qeff-compiler")
            if run("qeff.v1.NoSuchService") == 0:
                errors.add("deploy/qeff-health", "reports SERVING for an unknown service")
            else:
                print("ok: qeff-health gets SERVING from a real server and fails for an unknown service")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_kubectl(root, errors, objects):
    kubectl = shutil.which("kubectl")
    k8s_dir = os.path.join(root, "deploy", "k8s")
    if not kubectl:
        print("SKIP kubectl: not installed; the offline schema check above validated the manifests")
        return
    r = subprocess.run([kubectl, "kustomize", k8s_dir], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        errors.add("deploy/k8s", "kubectl kustomize failed: %s" % r.stderr.strip())
        return
    rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
    want = sorted((d["kind"], d["metadata"]["name"]) for _, d in objects)
    got = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    if want != got:
        errors.add("deploy/k8s", "kubectl kustomize leaves out %s and adds %s"
                   % (sorted(set(want) - set(got)) or "nothing", sorted(set(got) - set(want)) or "nothing"))
    for d in rendered:
        if d["kind"] != "Namespace" and not d["metadata"].get("namespace"):
            errors.add("deploy/k8s", "%s/%s has no namespace after kustomize" % (d["kind"], d["metadata"]["name"]))
    print("ok: kubectl kustomize renders all %d objects" % len(rendered))
    v = subprocess.run([kubectl, "version", "-o", "json", "--request-timeout=5s"], capture_output=True, text=True,
                       timeout=60)
    server = None
    try:
        server = json.loads(v.stdout).get("serverVersion")
    except ValueError:
        pass
    if not server:
        print("SKIP kubectl apply --dry-run=client: no Kubernetes API server reachable (kubectl downloads the "
              "schema from the API server even for a client dry run); the offline schema check stands in")
        return
    r = subprocess.run([kubectl, "apply", "--dry-run=client", "--validate=strict", "-k", k8s_dir],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        errors.add("deploy/k8s", "kubectl apply --dry-run=client failed: %s" % r.stderr.strip())
    else:
        print("ok: kubectl apply --dry-run=client --validate=strict against %s" % server.get("gitVersion"))


def guarded(errors, what, fn, *args, default=None):
    """Runs one checker; a structure it did not expect (a list where a mapping belongs...) is reported
    as a failure of the file rather than a traceback."""
    try:
        return fn(*args)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
        errors.add(what, "malformed structure (%s: %s)" % (type(e).__name__, e))
        return default


def check_all(root, binaries=None, externals=True):
    errors = Errors()
    image = guarded(errors, "deploy/Dockerfile", check_dockerfile, root, errors, binaries if externals else None)
    objects = guarded(errors, "deploy/k8s", load_k8s, root, errors, default=[])
    guarded(errors, "deploy/k8s", check_k8s_properties, objects, errors, image.get("uid") if image else None)
    guarded(errors, "deploy/compose.yaml", check_compose, root, errors, image)
    if externals:
        check_secrets_script(root, errors)
        if binaries and binaries.get("qeff-compiler"):
            check_health_script(root, errors, binaries["qeff-compiler"])
        else:
            print("SKIP qeff-health against a server: no --binary qeff-compiler=PATH")
        check_kubectl(root, errors, objects)
    return errors.items


# --------------------------------------------------------------------------------------------
# Self-check: broken copies must be reported.

MUTATIONS = [
    # (file, old text, new text, an error message must contain[, "all": replace every occurrence])
    ("deploy/k8s/runner-gpt2.yaml", "          resources:\n            requests:\n              cpu: \"2\"\n"
     "              memory: 2Gi\n            limits:\n              cpu: \"2\"\n              memory: 4Gi\n", "",
     "resources.requests.cpu missing"),
    ("deploy/k8s/compiler.yaml", "            limits:\n", "            limit:\n", "unknown field 'limit'"),
    ("deploy/k8s/runner-gpt2.yaml", "replicas: 2", "replicas: \"2\"", "expected an integer"),
    ("deploy/k8s/exporter.yaml", "apiVersion: apps/v1\n", "", "missing apiVersion"),
    ("deploy/k8s/exporter.yaml", "  name: qeff-exporter\n  labels:\n    app.kubernetes.io/part-of: qeff\n"
     "    app.kubernetes.io/component: exporter\n    app.kubernetes.io/instance: qeff-exporter\nspec:\n  replicas",
     "  labels:\n    app.kubernetes.io/part-of: qeff\n    app.kubernetes.io/component: exporter\n"
     "    app.kubernetes.io/instance: qeff-exporter\nspec:\n  replicas", "missing metadata.name"),
    ("deploy/k8s/compiler.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot must be true", "all"),
    ("deploy/k8s/compiler.yaml", "type: RuntimeDefault", "type: Unconfined", "seccompProfile RuntimeDefault", "all"),
    ("deploy/k8s/compiler.yaml", "            readOnlyRootFilesystem: true\n", "",
     "readOnlyRootFilesystem must be true"),
    ("deploy/k8s/exporter.yaml", "          readinessProbe:\n            grpc:\n              port: 8081\n"
     "              service: qeff.v1.Exporter\n            periodSeconds: 5\n            timeoutSeconds: 5\n", "",
     "readinessProbe missing"),
    ("deploy/k8s/runner-gpt2.yaml", "              service: qeff.v1.Runner", "              service: \"\"",
     "readinessProbe must check service qeff.v1.Runner"),
    ("deploy/k8s/exporter.yaml", "            - --model-root=/models\n", "", "--model-root DIR missing"),
    ("deploy/k8s/exporter.yaml", "            - name: models\n              mountPath: /models\n"
     "              readOnly: true\n", "            - name: models\n              mountPath: /models\n",
     "must be on a read-only mounted"),
    ("deploy/k8s/runner-gpt2.yaml", "            - --tls-key=/etc/qeff/tls/tls.key\n", "", "--tls-key FILE missing"),
    ("deploy/k8s/runner-gpt2.yaml", "--auth-token-file=/etc/qeff/auth/tokens", "--auth-token-file=/tmp/tokens",
     "is not on a Secret volume"),
    ("deploy/k8s/compiler.yaml", "        - name: tls\n          secret:\n            secretName: qeff-tls\n",
     "        - name: tls\n          emptyDir: {}\n          secret:\n            secretName: qeff-tls\n",
     "a volume needs exactly one of"),
    ("deploy/k8s/runner-gpt2.yaml", "            - --serve=openai-community/gpt2,id=gpt2,ctx_len=1024,prefill_seq_len=32,"
     "full_batch_size=8\n", "", "serves exactly one model"),
    ("deploy/k8s/runner-gpt2.yaml", "openai-community/gpt2,id=gpt2,", "openai-community/gpt2,",
     "give the model id clients use"),
    ("deploy/k8s/runner-minilm.yaml", "id=all-minilm-l6-v2", "id=gpt2", "one Deployment per model"),
    ("deploy/k8s/runner-gpt2.yaml", "  selector:\n    app.kubernetes.io/component: runner\n"
     "    app.kubernetes.io/instance: qeff-runner-gpt2\n", "  selector:\n    app.kubernetes.io/component: runner\n",
     "selects the pods of 2 Deployments"),
    ("deploy/k8s/network-policy.yaml", "      app.kubernetes.io/component: compiler\n",
     "      app.kubernetes.io/component: nothing\n", "no NetworkPolicy selects the compiler pods"),
    ("deploy/k8s/network-policy.yaml", "    - from:\n        - podSelector:\n            matchLabels:\n"
     "              app.kubernetes.io/part-of: qeff\n      ports:\n        - protocol: TCP\n          port: 50051\n"
     "  egress:\n    - ports:\n        - protocol: UDP\n          port: 53\n        - protocol: TCP\n          port: 53\n"
     "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: qeff-compiler",
     "    - ports:\n        - protocol: TCP\n          port: 50051\n"
     "  egress:\n    - ports:\n        - protocol: UDP\n          port: 53\n        - protocol: TCP\n          port: 53\n"
     "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: qeff-compiler",
     "allows every source"),
    ("deploy/k8s/cache-pvc.yaml", "    - ReadWriteMany", "    - ReadWriteOnce", "must be ReadWriteMany"),
    ("deploy/k8s/kustomization.yaml", "  - runner-minilm.yaml\n", "", "does not list runner-minilm.yaml"),
    ("deploy/k8s/compiler.yaml", "  name: qeff-compiler\n  labels:", "  name: qeff-compiler\n  name: x\n  labels:",
     "duplicate key"),
    ("deploy/k8s/models-pvc.yaml", "storage: 500Gi", "storage: 500 GB", "is not a quantity"),
    ("deploy/compose.yaml", "      - \"127.0.0.1:50062:50051\"", "      - \"0.0.0.0:50062:50051\"",
     "publishes on 0.0.0.0"),
    ("deploy/compose.yaml", "      - \"127.0.0.1:50062:50051\"", "      - \"50062:50051\"", "every interface"),
    ("deploy/compose.yaml", "      - \"127.0.0.1:50062:50051\"", "      - 2222:22", "must be a quoted string"),
    ("deploy/compose.yaml", "  user: \"10001:10001\"\n", "", "user missing"),
    ("deploy/compose.yaml", "  user: \"10001:10001\"\n", "  user: root\n", "is root"),
    ("deploy/compose.yaml", "  build:\n    context: ..\n    dockerfile: deploy/Dockerfile\n", "",
     "build: {context"),
    ("deploy/compose.yaml", "    volumes:\n      - type: volume\n        source: cache\n        target: /cache\n"
     "    ports:\n      - \"127.0.0.1:50062:50051\"",
     "    volumes: [cache:/cache, ${HF_HOME:-~/.cache/huggingface}:/models:ro]\n    ports:\n"
     "      - \"127.0.0.1:50062:50051\"", "invalid YAML"),
    ("deploy/compose.yaml", "      - --tls-client-ca=/run/secrets/tls-client-ca\n      - --auth-token-file",
     "      - --tls-client-ca=/etc/ca.crt\n      - --auth-token-file", "is not one of the service's secrets"),
    ("deploy/compose.yaml", "        target: /models\n        read_only: true\n    ports:\n      - \"127.0.0.1:50061",
     "        target: /models\n    ports:\n      - \"127.0.0.1:50061", "is not on a read-only volume"),
    ("deploy/compose.yaml", "    healthcheck:\n      test: [\"CMD\", \"qeff-health\", \"127.0.0.1:8081\", "
     "\"qeff.v1.Compiler\"]", "    healthchek:\n      test: [\"CMD\", \"qeff-health\", \"127.0.0.1:8081\", "
     "\"qeff.v1.Compiler\"]", "unknown key 'healthchek'"),
    ("deploy/Dockerfile", "USER 10001:10001\n", "", "no USER"),
    ("deploy/Dockerfile", "USER 10001:10001\n", "USER root\n", "USER root is root"),
    ("deploy/Dockerfile", "--uid 10001", "--uid 10002", "is not created in the final stage"),
]


def self_check(root):
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "repo")
        shutil.copytree(os.path.join(root, "deploy"), os.path.join(base, "deploy"),
                        ignore=shutil.ignore_patterns("secrets"))
        clean = check_all(base, externals=False)
        if clean:
            print("SELF-CHECK FAILED: the unmodified copy reports %s" % clean)
            return 1
        for i, (rel, old, new, expect, *how) in enumerate(MUTATIONS):
            work = os.path.join(tmp, "m%d" % i)
            shutil.copytree(base, work)
            path = os.path.join(work, rel)
            text = open(path, encoding="utf-8").read()
            if old not in text:
                print("SELF-CHECK FAILED: mutation %d: %s no longer contains %r (update MUTATIONS)" % (i, rel, old))
                failures += 1
                continue
            open(path, "w", encoding="utf-8").write(text.replace(old, new, -1 if how == ["all"] else 1))
            errs = check_all(work, externals=False)
            if not any(expect in e for e in errs):
                print("SELF-CHECK FAILED: breaking %s (%r -> %r) was not reported as %r; got %s"
                      % (rel, old[:60], new[:60], expect, errs))
                failures += 1
            shutil.rmtree(work)
    if not failures:
        print("ok: self-check: all %d broken copies were reported" % len(MUTATIONS))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--binary", action="append", default=[], metavar="NAME=PATH",
                    help="a built server binary (runtime-package and qeff-health checks)")
    ap.add_argument("--no-self-check", action="store_true")
    a = ap.parse_args()
    root = os.path.abspath(a.source_dir)
    binaries = dict(b.split("=", 1) for b in a.binary)
    errs = check_all(root, binaries)
    for e in errs:
        print("FAIL " + e)
    if not errs:
        print("ok: deploy/ files: YAML, Kubernetes schema and properties, compose, Dockerfile")
    failed = len(errs)
    if not a.no_self_check:
        failed += self_check(root)
    print("deploy_files_test: %s" % ("passed" if not failed else "%d problem(s)" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
