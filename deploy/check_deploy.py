"""Checks behind scripts/check-deploy that need more than a shell: run by it, one command each.

    kube-schemas DIR VERSION...   lay out kubeconform schemas from kubernetes-validate's package
    values-schema SCHEMA VALUES...  values.schema.json is valid draft-07 and accepts the
                                  VALUES files merged
    dashboard JSON RULES_OUT      lint the Grafana dashboard; write its queries as a rule file
                                  (for `promtool check rules`: PromQL syntax)
    same-rules RULES RENDERED     the rendered PrometheusRule carries exactly RULES' groups
    same-dashboard JSON RENDERED  the rendered dashboard ConfigMap carries exactly JSON
    rendered RENDERED VALUES...   the rendered chart meets notifier's own expectations

Needs PyYAML and jsonschema (and, for kube-schemas, the kubernetes-validate package's data).
Exits 1 with the reasons on stderr when a check fails.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# Every metric the dashboard must show (deploy/grafana/notifier-dashboard.json).
DASHBOARD_METRICS = (
    "notifier_deliveries_total",
    "notifier_delivery_latency_seconds_bucket",
    "notifier_failovers_total",
    "notifier_bounces_total",
    "notifier_contact_points",
    "notifier_send_requests_total",
    "notifier_consumer_lag",
    "notifier_provider_request_seconds_count",
    "notifier_retries_total",
    "notifier_unknown_outcome_total",
    "notifier_provider_circuit_open",
)
DATASOURCE_UID = "${DS_PROMETHEUS}"
# Grafana's variables, replaced by plausible values before promtool parses a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "$namespace": ".*",
}


class Failed(Exception):
    pass


def main(argv: list[str]) -> int:
    commands = {
        "kube-schemas": kube_schemas,
        "values-schema": values_schema,
        "dashboard": dashboard,
        "same-rules": same_rules,
        "same-dashboard": same_dashboard,
        "rendered": rendered,
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]](*argv[2:])
    except Failed as failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


# --- kubeconform schemas ---------------------------------------------------------------------


def kube_schemas(target: str, *versions: str) -> None:
    """kubernetes-validate ships strict JSON schemas of every core kind per Kubernetes version,
    but with "$ref": "/api/_definitions.json#..." under "$id": "https://kubernetes.io/api/...",
    which kubeconform would fetch over the network. Rewrite them to a relative, offline
    reference, in kubeconform's layout: TARGET/v1.30.0-standalone-strict/<kind>-<group>-<v>.json.
    A directory already made from the same package version (its .complete marker) is kept."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise Failed(
            "the Python package kubernetes-validate is not installed "
            "(pip install kubernetes-validate==1.37.0)"
        )
    source_root = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    package_version = importlib.metadata.version("kubernetes-validate")
    for version in versions:
        source = source_root / f"v{version}-local-strict"
        if not source.is_dir():
            known = sorted(p.name for p in source_root.glob("v*-local-strict"))
            raise Failed(f"kubernetes-validate has no schemas for {version}; it has {known}")
        destination = Path(target) / f"v{version}-standalone-strict"
        marker = destination / ".complete"
        made_from = f"kubernetes-validate {package_version}: {source}\n"
        if marker.exists() and marker.read_text() == made_from:
            continue
        destination.mkdir(parents=True, exist_ok=True)
        for stale in destination.glob("*.json"):
            stale.unlink()
        for path in source.glob("*.json"):
            document = _offline(json.loads(path.read_text()))
            (destination / path.name).write_text(json.dumps(document))
        marker.write_text(made_from)


def _offline(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("/api/_definitions.json#", "_definitions.json#")
                if key == "$ref" and isinstance(value, str)
                else _offline(value)
            )
            for key, value in node.items()
            if key != "$id"
        }
    if isinstance(node, list):
        return [_offline(item) for item in node]
    return node


# --- values.schema.json -------------------------------------------------------------------------


def values_schema(schema_path: str, *values_paths: str) -> None:
    """The schema is draft-07 and accepts the VALUES files merged as Helm merges them."""
    import jsonschema

    schema = json.loads(Path(schema_path).read_text())
    if schema.get("$schema") != "http://json-schema.org/draft-07/schema#":
        raise Failed(f"{schema_path}: $schema is not JSON Schema draft-07")
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise Failed(f"{schema_path}: not a valid draft-07 schema: {error.message}") from error
    values = _merged(values_paths)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(values))
    if errors:
        where = " + ".join(values_paths)
        raise Failed("\n".join(f"{where}: {e.json_path}: {e.message}" for e in errors))


# --- Grafana dashboard --------------------------------------------------------------------------


def dashboard(dashboard_path: str, rules_out: str) -> None:
    problems: list[str] = []
    board = json.loads(Path(dashboard_path).read_text())
    if not isinstance(board.get("schemaVersion"), int) or board["schemaVersion"] < 36:
        problems.append("schemaVersion missing or below 36")
    for key in ("uid", "title"):
        if not board.get(key):
            problems.append(f"no {key}")
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    source = variables.get("DS_PROMETHEUS")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append(
            "no templated data source variable DS_PROMETHEUS (type datasource, prometheus)"
        )
    for name, variable in variables.items():
        if (
            variable.get("type") == "query"
            and variable.get("datasource", {}).get("uid") != DATASOURCE_UID
        ):
            problems.append(f"variable {name} does not query {DATASOURCE_UID}")

    panels = _panels(board.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids missing or repeated: {ids}")
    expressions: list[tuple[str, str]] = []
    for panel in panels:
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
            problems.append(f"panel {title!r}: data source is not {DATASOURCE_UID}")
        if not panel.get("targets"):
            problems.append(f"panel {title!r}: no query")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != DATASOURCE_UID:
                query = target.get("refId")
                problems.append(
                    f"panel {title!r} query {query}: data source is not {DATASOURCE_UID}"
                )
            expressions.append((title, target.get("expr", "")))
    _check_layout(panels, problems)
    shown = " ".join(expr for _, expr in expressions)
    for metric in DASHBOARD_METRICS:
        if not re.search(rf"\b{metric}\b", shown):
            problems.append(f"no panel shows {metric}")
    if problems:
        raise Failed("\n".join(f"{dashboard_path}: {p}" for p in problems))

    # Every query as a recording rule: `promtool check rules` then parses each one.
    rules = []
    for number, (title, expr) in enumerate(expressions):
        for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(variable, value)
        if "$" in expr:
            raise Failed(f"{dashboard_path}: panel {title!r}: unknown variable in {expr}")
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    Path(rules_out).write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]})
    )


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def _check_layout(panels: list[dict[str, Any]], problems: list[str]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"panel {panel.get('title')!r}: no gridPos")
            continue
        if grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel.get('title')!r}: wider than the 24-column grid")
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    problems.append(f"panels {cells[(x, y)]!r} and {panel.get('title')!r} overlap")
                    return
                cells[(x, y)] = panel.get("title", "?")


# --- the chart's copies ---------------------------------------------------------------------------


def _documents(rendered_path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(Path(rendered_path).read_text()) if d]


def _only(documents: list[dict[str, Any]], kind: str, name_part: str = "") -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and name_part in d["metadata"]["name"]]
    if len(found) != 1:
        raise Failed(f"expected one {kind} {name_part!r} in the rendered chart, found {len(found)}")
    return found[0]


def same_rules(rules_path: str, rendered_path: str) -> None:
    rule = _only(_documents(rendered_path), "PrometheusRule")
    expected = yaml.safe_load(Path(rules_path).read_text())
    if rule["spec"] != expected:
        raise Failed(f"the rendered PrometheusRule's spec differs from {rules_path}")


def same_dashboard(dashboard_path: str, rendered_path: str) -> None:
    config_map = _only(_documents(rendered_path), "ConfigMap", "-dashboard")
    data = config_map.get("data", {})
    if list(data) != ["notifier-dashboard.json"]:
        raise Failed(f"the dashboard ConfigMap's keys are {list(data)}")
    if json.loads(data["notifier-dashboard.json"]) != json.loads(Path(dashboard_path).read_text()):
        raise Failed(f"the rendered dashboard ConfigMap differs from {dashboard_path}")


# --- the rendered chart ---------------------------------------------------------------------------


def rendered(rendered_path: str, *values_paths: str) -> None:
    """What notifier needs of its pods, beyond what the Kubernetes schemas can say."""
    values = _merged(values_paths)
    documents = _documents(rendered_path)
    problems: list[str] = []
    expect = _expect(problems)
    partitions = values["kafka"]["sendRequestsPartitions"]
    port = values["httpPort"]

    for component in ("consumer", "http"):
        deployment = _only(documents, "Deployment", f"-{component}")
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        where = f"Deployment {name}"
        expect(
            container.get("command", []) + container.get("args", [])
            == ["notifier", "run", "--only", component],
            where,
            "run `notifier run --only " + component + "`",
        )
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        # What the pod binds to, not a bind here.
        all_interfaces = "0.0.0.0"  # noqa: S104
        expect(env.get("NOTIFIER_HTTP_HOST") == all_interfaces, where, "listen on all interfaces")
        expect(env.get("NOTIFIER_HTTP_PORT") == str(port), where, f"set NOTIFIER_HTTP_PORT={port}")
        expect(
            {"name": "http", "containerPort": port, "protocol": "TCP"}
            in container.get("ports", []),
            where,
            f"name its port {port} 'http'",
        )
        refs = container.get("envFrom", [])
        expect(
            {"secretRef": {"name": values["existingSecret"]}} in refs,
            where,
            "load existingSecret with envFrom",
        )
        expect(any("configMapRef" in r for r in refs), where, "load the ConfigMap with envFrom")
        expect(
            not any(
                "secretKeyRef" in str(e) or e["name"] in SECRET_NAMES
                for e in container.get("env", [])
            ),
            where,
            "take no secret from plain env",
        )
        expect(
            _probe(container, "livenessProbe") == "/healthz", where, "probe liveness on /healthz"
        )
        expect(
            _probe(container, "readinessProbe") == "/readyz", where, "probe readiness on /readyz"
        )
        expect(
            pod.get("terminationGracePeriodSeconds", 30) >= 30,
            where,
            "give 30 s to stop (the app takes 25)",
        )
        _check_security(pod, container, where, expect)
        replicas = deployment["spec"].get("replicas")
        if component == "consumer":
            keda = values["consumer"]["keda"]["enabled"]
            expect(
                (replicas is None) == keda, where, "leave replicas to KEDA exactly when KEDA is on"
            )
            expect(
                replicas is None or replicas <= partitions,
                where,
                f"have at most {partitions} replicas",
            )
        else:
            expect(
                (replicas is None) == values["http"]["autoscaling"]["enabled"],
                where,
                "leave replicas to the HPA exactly when autoscaling is on",
            )
        service = _only(documents, "Service", f"-{component}")
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        expect(
            ports.get("metrics", {}).get("targetPort") == "http",
            f"Service {service['metadata']['name']}",
            "have a metrics port to the pods' http port",
        )
        if component == "http":
            expect("http" in ports, f"Service {service['metadata']['name']}", "have the http port")
        if values[component]["podDisruptionBudget"]["enabled"]:
            _only(documents, "PodDisruptionBudget", f"-{component}")

    config = _only(documents, "ConfigMap", "-config")["data"]
    for name in config:
        expect(name not in SECRET_NAMES, "ConfigMap", f"hold no secret ({name})")
    expect(
        config.get("NOTIFIER_KAFKA_GROUP_ID") == values["kafka"]["consumerGroup"],
        "ConfigMap",
        "set the group id",
    )

    if values["migration"]["enabled"]:
        job = _only(documents, "Job", "-migrate")
        annotations = job["metadata"].get("annotations", {})
        expect(
            annotations.get("helm.sh/hook") == "pre-install,pre-upgrade",
            "Job",
            "be a pre-install,pre-upgrade hook",
        )
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        expect(
            container.get("command", []) + container.get("args", []) == ["notifier", "migrate"],
            "Job",
            "run `notifier migrate`",
        )
        expect(
            not any("configMapRef" in r for r in container.get("envFrom", [])),
            "Job",
            "not read the chart's ConfigMap (a pre-install hook runs before it exists)",
        )
        _check_security(pod, container, "Job", expect)
        expect(
            config.get("NOTIFIER_DATABASE_MIGRATE_ON_START") == "false",
            "ConfigMap",
            "turn migrate-on-start off while the Job migrates",
        )

    if values["http"]["autoscaling"]["enabled"]:
        hpa = _only(documents, "HorizontalPodAutoscaler")
        expect(
            hpa["spec"]["scaleTargetRef"]["name"].endswith("-http"),
            "HPA",
            "scale the HTTP Deployment",
        )
        expect(hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu", "HPA", "scale on CPU")
    if values["consumer"]["keda"]["enabled"]:
        scaled = _only(documents, "ScaledObject")
        spec = scaled["spec"]
        (trigger,) = spec["triggers"]
        expect(scaled["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject", "be keda.sh/v1alpha1")
        expect(
            spec["scaleTargetRef"]["name"].endswith("-consumer"),
            "ScaledObject",
            "scale the consumer",
        )
        expect(
            spec["maxReplicaCount"] == partitions,
            "ScaledObject",
            f"stop at the {partitions} partitions",
        )
        expect(
            1 <= spec["minReplicaCount"] <= partitions, "ScaledObject", "keep at least one consumer"
        )
        expect(trigger["type"] == "kafka", "ScaledObject", "scale on a kafka trigger")
        meta = trigger["metadata"]
        expect(
            meta.get("topic") == values["kafka"]["sendRequestsTopic"],
            "ScaledObject",
            "watch the send-requests topic",
        )
        expect(
            meta.get("consumerGroup") == values["kafka"]["consumerGroup"],
            "ScaledObject",
            "watch notifier's group",
        )
        expect(
            all(isinstance(v, str) for v in meta.values()),
            "ScaledObject",
            "have string trigger metadata",
        )
    if values["metrics"]["serviceMonitor"]["enabled"]:
        monitor = _only(documents, "ServiceMonitor")
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [
            d
            for d in documents
            if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
        ]
        expect(len(selected) == 2, "ServiceMonitor", "select both Services")
        expect(
            [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"],
            "ServiceMonitor",
            "scrape the metrics port",
        )
    if values["metrics"]["dashboard"]["enabled"]:
        dashboard_map = _only(documents, "ConfigMap", "-dashboard")
        expect(
            dashboard_map["metadata"]["labels"].get("grafana_dashboard") == "1",
            "dashboard ConfigMap",
            'carry the sidecar label grafana_dashboard: "1"',
        )
    if values["networkPolicy"]["enabled"]:
        for component in ("consumer", "http"):
            _only(documents, "NetworkPolicy", f"-{component}")
    if problems:
        raise Failed("\n".join(f"{rendered_path}: {p}" for p in problems))


SECRET_NAMES = frozenset(
    {
        "NOTIFIER_DATABASE_URL",
        "NOTIFIER_TWILIO_AUTH_TOKEN",
        "NOTIFIER_SENDGRID_API_KEY",
        "NOTIFIER_SENDGRID_INBOUND_SECRET",
        "NOTIFIER_DELIVERY_RESUME_LINK_SECRET",
        "NOTIFIER_DELIVERY_REPLY_ADDRESS_SECRET",
        "NOTIFIER_DEEPL_AUTH_KEY",
        "NOTIFIER_GOOGLE_API_KEY",
    }
)


Expect = Callable[[Any, str, str], None]


def _expect(problems: list[str]) -> Expect:
    def expect(condition: Any, where: str, what: str) -> None:
        if not condition:
            problems.append(f"{where} should {what}")

    return expect


def _probe(container: dict[str, Any], kind: str) -> str | None:
    path = container.get(kind, {}).get("httpGet", {}).get("path")
    return str(path) if path is not None else None


def _check_security(
    pod: dict[str, Any], container: dict[str, Any], where: str, expect: Expect
) -> None:
    pod_sc = pod.get("securityContext", {})
    sc = container.get("securityContext", {})
    expect(
        pod_sc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is True,
        where,
        "run as non-root",
    )
    expect(sc.get("runAsUser", pod_sc.get("runAsUser")) == 10001, where, "run as uid 10001")
    expect(sc.get("readOnlyRootFilesystem") is True, where, "have a read-only root filesystem")
    expect(sc.get("allowPrivilegeEscalation") is False, where, "forbid privilege escalation")
    expect(sc.get("capabilities", {}).get("drop") == ["ALL"], where, "drop ALL capabilities")
    expect(
        sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault",
        where,
        "use the RuntimeDefault seccomp profile",
    )
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    tmp = "/tmp"  # noqa: S108 - the pods' writable /tmp, checked, not used
    expect(
        tmp in mounts and "emptyDir" in volumes.get(mounts[tmp], {}),
        where,
        "mount an emptyDir on /tmp",
    )
    expect(container.get("resources", {}).get("requests"), where, "request resources")


def _merged(values_paths: tuple[str, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in values_paths:
        _merge(merged, yaml.safe_load(Path(path).read_text()) or {})
    return merged


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


if __name__ == "__main__":
    sys.exit(main(sys.argv))
