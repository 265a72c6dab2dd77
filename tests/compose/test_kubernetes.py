"""Checks deploy/kubernetes/ without a cluster.

The core kinds (Deployment, ConfigMap, Service) are validated against the
Kubernetes OpenAPI schemas that the kubernetes-validate package carries
(offline, strict: an unknown field is an error). KEDA's kinds
(ScaledObject, TriggerAuthentication) are custom resources that package has
no schema for: their required fields and the triggers' metadata keys are
checked here by hand, after KEDA's documentation. Then the pieces are
checked against each other and against hopper: names that refer to each
other exist, the Service selects the pods, the pipeline in each ConfigMap
passes `hopper validate`. The tagging pipeline's stages run in Deployments
of their own (HOPPER_STAGE): together they run every stage once, each with
the pipeline file as it is in pipelines/, and each is scaled by a
ScaledObject on its input (the lag of its via's topic, in the via's group,
or the backlog of its via's table).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "deploy" / "kubernetes"
K8S_VERSION = os.environ.get("HOPPER_K8S_VERSION", "1.30.0")
CORE = {("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment")}
KEDA = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def manifests():
    docs = []
    for path in sorted(KDIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = manifests()


def of_kind(kind):
    return [d for _, d in DOCS if d["kind"] == kind]


def ids(docs=DOCS):
    return [f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in docs]


def test_every_file_is_in_the_kustomization():
    k = yaml.safe_load((KDIR / "kustomization.yaml").read_text())
    files = {p.name for p in KDIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files


@pytest.mark.parametrize("name,doc", DOCS, ids=ids())
def test_known_kind_with_metadata(name, doc):
    assert (doc["apiVersion"], doc["kind"]) in CORE | KEDA
    assert doc["metadata"]["name"]
    assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "hopper"


CORE_DOCS = [(f, d) for f, d in DOCS if (d["apiVersion"], d["kind"]) in CORE]


@pytest.mark.parametrize("name,doc", CORE_DOCS, ids=ids(CORE_DOCS))
def test_core_kinds_against_the_openapi_schema(name, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_mistake():
    doc = json.loads(json.dumps(of_kind("Deployment")[0]))
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# The trigger metadata keys KEDA documents for the scalers used here.
TRIGGER_KEYS = {
    "kafka": ({"bootstrapServers", "consumerGroup", "topic", "lagThreshold"},
              {"activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers",
               "scaleToZeroOnInvalidOffset", "excludePersistentLag",
               "limitToPartitionsWithLag", "partitionLimitation", "version", "sasl", "tls"}),
    "postgresql": ({"query", "targetQueryValue"},
                   {"activationTargetQueryValue", "connectionFromEnv", "host", "port",
                    "userName", "dbName", "sslmode", "passwordFromEnv"}),
    "cpu": ({"value"}, {"containerName"}),
}
TRIGGER_SPEC = {"type", "metadata", "authenticationRef", "metricType", "name", "useCachedMetrics"}
SCALEDOBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "idleReplicaCount",
                     "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
                     "initialCooldownPeriod"}


@pytest.mark.parametrize("so", of_kind("ScaledObject"), ids=lambda d: d["metadata"]["name"])
def test_scaledobject(so):
    spec = so["spec"]
    assert set(spec) <= SCALEDOBJECT_SPEC, set(spec) - SCALEDOBJECT_SPEC
    ref = spec["scaleTargetRef"]
    deployments = {d["metadata"]["name"] for d in of_kind("Deployment")}
    assert ref["kind"] == "Deployment" and ref["name"] in deployments
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    auths = {d["metadata"]["name"] for d in of_kind("TriggerAuthentication")}
    assert spec["triggers"]
    for t in spec["triggers"]:
        assert set(t) <= TRIGGER_SPEC, set(t) - TRIGGER_SPEC
        required, optional = TRIGGER_KEYS[t["type"]]
        meta = t["metadata"]
        assert required <= set(meta), required - set(meta)
        assert set(meta) <= required | optional, set(meta) - required - optional
        # KEDA's metadata values are strings.
        assert all(isinstance(v, str) for v in meta.values()), meta
        if "authenticationRef" in t:
            assert t["authenticationRef"]["name"] in auths
        if t["type"] == "postgresql":
            assert "authenticationRef" in t or "connectionFromEnv" in meta
        if t["type"] == "cpu":
            # KEDA's CPU scaler cannot scale to zero; it needs a request.
            assert t["metricType"] == "Utilization" and spec["minReplicaCount"] >= 1


@pytest.mark.parametrize("ta", of_kind("TriggerAuthentication"), ids=lambda d: d["metadata"]["name"])
def test_trigger_authentication(ta):
    refs = ta["spec"]["secretTargetRef"]
    assert refs and all({"parameter", "name", "key"} <= set(r) for r in refs)


def test_kafka_scaling_matches_the_pipeline():
    """The lag trigger watches the group and topic the pods consume, and
    there are never more pods than a group can use (one per partition is
    the most that get work; six partitions in compose.yaml)."""
    so = next(d for d in of_kind("ScaledObject")
              if any(t["type"] == "kafka" for t in d["spec"]["triggers"]))
    dep = next(d for d in of_kind("Deployment") if d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"])
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    kafka = next(t for t in so["spec"]["triggers"] if t["type"] == "kafka")["metadata"]
    assert kafka["consumerGroup"] == env["GROUP"] and kafka["topic"] == env["TOPIC"]
    assert kafka["bootstrapServers"] == env["KAFKA"]
    assert so["spec"]["maxReplicaCount"] <= 6


@pytest.mark.parametrize("dep", of_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_deployment_wiring(dep):
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    c = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == 9464
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    listen = next(e["value"] for e in c["env"] if e["name"] == "HOPPER_LISTEN")
    assert listen.endswith(":9464")
    # hopper drains for --grace (30 s) on SIGTERM, then stops workers.
    assert pod["spec"]["terminationGracePeriodSeconds"] > 30
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    configmaps = {d["metadata"]["name"]: d for d in of_kind("ConfigMap")}
    for v in pod["spec"]["volumes"]:
        if "configMap" in v:
            assert v["configMap"]["name"] in configmaps
            pipeline = json.loads(configmaps[v["configMap"]["name"]]["data"]["pipeline.json"])
            if "stages" in pipeline:
                # Stages without a size share the pod's CPUs (its limit).
                continue
            # The pod's own autoscaler is on, and has a core per worker.
            assert 1 <= pipeline["min_workers"] <= pipeline["max_workers"]
            assert pipeline["max_workers"] <= int(c["resources"]["limits"]["cpu"])
    services = [s for s in of_kind("Service")
                if s["spec"]["selector"].items() <= pod["metadata"]["labels"].items()]
    if dep["metadata"]["name"] == "hopper-thumbnails":
        assert services and services[0]["spec"]["ports"][0]["targetPort"] == "metrics"


@pytest.mark.parametrize("cm", of_kind("ConfigMap"), ids=lambda d: d["metadata"]["name"])
def test_pipeline_passes_hopper_validate(cm, tmp_path):
    text = cm["data"]["pipeline.json"]
    json.loads(text)
    hopper = os.environ.get("HOPPER") or str(ROOT / "build" / "hopper")
    if not (os.access(hopper, os.X_OK) or shutil.which(hopper)):
        pytest.skip("no hopper binary to validate with (make)")
    path = tmp_path / "pipeline.json"
    path.write_text(text)
    env = dict(os.environ, KAFKA="kafka:9092", DATABASE_URL="postgres://u:p@db/app")
    r = subprocess.run([hopper, "validate", str(path)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- the tagging pipeline, a Deployment per part ----------------------------

STAGED = ROOT / "pipelines" / "tagging_staged.json"


def env_of(dep):
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def configmap_of(dep):
    vols = dep["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in vols if "configMap" in v)
    return next(d for d in of_kind("ConfigMap") if d["metadata"]["name"] == name)


STAGE_DEPS = [d for d in of_kind("Deployment") if "HOPPER_STAGE" in env_of(d)]


def expand(value, env):
    """${VAR} and ${VAR:-default} as hopper expands them, from env."""
    def one(m):
        v = env.get(m.group(1))
        return v if v else (m.group(3) or "")
    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", one, value)


def via_of(stage, env):
    """A stage's via as (kind, topic or table, partitions), or None."""
    via = stage.get("via")
    if via is None:
        return None
    if isinstance(via, str):
        via = {"type": via.split(":", 1)[0], "url": via}
    if via["type"] == "kafka":
        url = expand(via["url"], env)
        return "kafka", url.rsplit("/", 1)[1], via.get("partitions")
    return "postgres", expand(via.get("table", "hopper_to_%s"), env), None


def test_there_are_stage_deployments():
    assert len(STAGE_DEPS) >= 3


@pytest.mark.parametrize("dep", STAGE_DEPS, ids=lambda d: d["metadata"]["name"])
def test_a_stage_deployment_runs_the_pipeline_file_as_it_is(dep):
    cm = configmap_of(dep)
    assert cm["data"]["pipeline.json"] == STAGED.read_text()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:3] == ["run", "-f", "/etc/hopper/pipeline.json"]
    # A watched run: the stages wait for what their topics bring.
    assert "--watch" in c["args"]


def test_the_stage_deployments_run_every_stage_once():
    stages = json.loads(STAGED.read_text())["stages"]
    ran = [s for d in STAGE_DEPS for s in env_of(d)["HOPPER_STAGE"].split(",")]
    assert sorted(ran) == sorted(stages), "each stage in exactly one Deployment"


@pytest.mark.parametrize("dep", STAGE_DEPS, ids=lambda d: d["metadata"]["name"])
def test_a_stage_deployment_is_scaled_on_its_input(dep):
    """The ScaledObject that targets a Deployment watches the input of
    each stage it runs that has a via: the via's topic in the group
    hopper.STAGE (never more pods than that topic's partitions), or the
    via's table. A part with no via in (the folder's ingest) has a floor of
    one pod."""
    name = dep["metadata"]["name"]
    sos = [d for d in of_kind("ScaledObject") if d["spec"]["scaleTargetRef"]["name"] == name]
    assert len(sos) == 1, f"{name}: one ScaledObject, found {len(sos)}"
    spec = sos[0]["spec"]
    env = env_of(dep)
    stages = json.loads(STAGED.read_text())["stages"]
    mine = env["HOPPER_STAGE"].split(",")
    vias = {s: via_of(stages[s], env) for s in mine if via_of(stages[s], env)}
    kafka = [t["metadata"] for t in spec["triggers"] if t["type"] == "kafka"]
    pg = [t["metadata"] for t in spec["triggers"] if t["type"] == "postgresql"]
    for stage, (kind, where, partitions) in vias.items():
        if kind == "kafka":
            t = [m for m in kafka if m["topic"] == where]
            assert t, f"{name}: no lag trigger on {where} (stage {stage})"
            assert t[0]["consumerGroup"] == f"hopper.{stage}"
            assert t[0]["bootstrapServers"] == env["KAFKA"]
            assert spec["maxReplicaCount"] <= partitions, \
                f"{name}: more pods than {where} has partitions"
        else:
            assert any(re.search(rf"\bFROM\s+{re.escape(where)}\b", m["query"]) for m in pg), \
                f"{name}: no backlog trigger on the table {where} (stage {stage})"
    # No trigger on a topic or table that none of its stages reads.
    assert {m["topic"] for m in kafka} <= {w for k, w, _ in vias.values() if k == "kafka"}
    assert len(kafka) + len(pg) == len(vias)
    if not vias:
        assert spec["minReplicaCount"] >= 1


@pytest.mark.parametrize("dep", STAGE_DEPS, ids=lambda d: d["metadata"]["name"])
def test_a_stage_deployment_validates_its_stages(dep, tmp_path):
    hopper = os.environ.get("HOPPER") or str(ROOT / "build" / "hopper")
    if not (os.access(hopper, os.X_OK) or shutil.which(hopper)):
        pytest.skip("no hopper binary to validate with (make)")
    path = tmp_path / "pipeline.json"
    path.write_text(configmap_of(dep)["data"]["pipeline.json"])
    env = dict(os.environ, **env_of(dep))
    r = subprocess.run([hopper, "validate", str(path)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # HOPPER_STAGE kept exactly the Deployment's stages.
    kept = re.findall(r"^stage (\S+) ", r.stdout, re.M)
    assert sorted(kept) == sorted(env["HOPPER_STAGE"].split(","))
