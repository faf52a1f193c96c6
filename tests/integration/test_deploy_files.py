"""The deploy files (issue 17, item 5), checked as far as this machine can without a container
engine or a cluster:

- every Kubernetes manifest in deploy/k8s against the official Kubernetes JSON schemas
  (`kubernetes-validate`, which bundles them per release; strict: unknown fields are errors),
  for the oldest and the newest release it carries;
- deploy/compose.yaml against the Compose Specification's JSON schema of the compose-go module
  (the library Docker Compose loads files with; iopcare.devtools.compose_schema fetches it from
  the Go module proxy), after the variable interpolation compose does;
- deploy/compose.yaml loaded by compose-go's own loader (deploy/check, built with `go build`):
  interpolation, schema and the project model's checks, as Docker Compose loads it;
- the cross-references no schema sees: Services and PodDisruptionBudgets select existing pods,
  probes and Services hit declared ports, NetworkPolicies select existing pods and let in
  exactly who they should (evaluated rule by rule), every environment variable of an iopcare
  container is one the settings read, files named by settings lie in mounted volumes, the
  migration Jobs run the real `iopcare migrate`, and the topic script creates every topic with 6
  partitions and the project's topic configuration.

What this does not prove (docs/operations.md, "Deploy"): that the images build, that the pods
start and become ready on a cluster, that a network plugin enforces the policies, or that the
compose file runs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from sqlalchemy import create_engine, inspect

from iopcare.devtools.compose_schema import ensure_compose_checker, load_compose_schema
from iopcare.gateway.settings import GatewaySettings
from iopcare.kit import topics
from iopcare.kit.settings import REPO_ROOT, ServiceSettings, Settings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
SERVICES = {"careplan": 50051, "scheduling": 50052, "notes": 50053}
GATEWAY_PORT = 8080
#: The oldest and newest Kubernetes releases whose schemas kubernetes-validate carries.
K8S_VERSIONS = ("1.34.0", "1.37.0")
#: Where a pod's connection may come from, for the NetworkPolicy evaluation.
OUTSIDE = {"namespace": "ingress-nginx", "labels": {}}
MONITORING = {"namespace": "monitoring", "labels": {}}

Doc = dict[str, Any]


# -- loading ---------------------------------------------------------------------------------


def k8s_documents() -> list[Doc]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc.setdefault("metadata", {})["_file"] = path.name
                documents.append(doc)
    return documents


def without_file(doc: Doc) -> Doc:
    clean = copy.deepcopy(doc)
    clean["metadata"].pop("_file", None)
    return clean


def of_kind(documents: list[Doc], kind: str) -> list[Doc]:
    return [d for d in documents if d["kind"] == kind]


def named(documents: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_templates(documents: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod template) of every Deployment and Job."""
    for doc in documents:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]


def containers(template: Doc) -> list[Doc]:
    return list(template["spec"]["containers"])


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def selected_templates(documents: list[Doc], selector: Doc) -> list[Doc]:
    return [t for _, t in pod_templates(documents) if matches(selector, t["metadata"]["labels"])]


def declared_ports(template: Doc) -> dict[str, int]:
    return {
        port.get("name", str(port["containerPort"])): port["containerPort"]
        for container in containers(template)
        for port in container.get("ports", [])
    }


def env_of(container: Doc) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }


# -- what the settings read -----------------------------------------------------------------


def setting_names() -> set[str]:
    """Every environment variable a setting of an iopcare process is read from."""

    def names(model: Any, prefix: str) -> set[str]:
        found = set()
        for field_name, field in model.model_fields.items():
            found.add(f"{prefix}{field_name}".upper())
            alias = field.validation_alias
            if alias is not None:
                for choice in getattr(alias, "choices", [alias]):
                    found.add(str(choice).upper())
        return found

    allowed = names(Settings, "IOPCARE_") | names(GatewaySettings, "IOPCARE_GATEWAY_")
    for service in SERVICES:
        allowed |= names(ServiceSettings, f"IOPCARE_{service.upper()}_")
    return allowed


def is_iopcare_image(image: str) -> bool:
    return image.split(":")[0].rsplit("/", 1)[-1] == "iopcare"


# -- Kubernetes: schemas ----------------------------------------------------------------------


def test_every_manifest_is_valid_for_the_kubernetes_api() -> None:
    documents = k8s_documents()
    kinds = {d["kind"] for d in documents}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
        "ConfigMap",
    } <= kinds
    for version in K8S_VERSIONS:
        for doc in documents:
            where = f"{doc['metadata']['_file']}: {doc['kind']}/{doc['metadata']['name']}"
            try:
                kubernetes_validate.validate(without_file(doc), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{where} invalid for Kubernetes {version} at {path}: {exc.message}")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["spec"].__setitem__("replicas", "two"), "a string where an integer goes"),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "livenessProbes", {}
            ),
            "a misspelt field",
        ),
        (lambda d: d["spec"].pop("selector"), "a required field missing"),
    ],
)
def test_the_schema_check_catches_a_broken_manifest(change: Any, why: str) -> None:
    deployment = without_file(named(k8s_documents(), "Deployment", "iopcare-careplan"))
    kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    change(deployment)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


# -- Kubernetes: cross-references -------------------------------------------------------------


def test_the_gateway_and_every_service_are_deployed_with_probes_resources_and_a_budget() -> None:
    documents = k8s_documents()
    for name in [*SERVICES, "gateway"]:
        deployment = named(documents, "Deployment", f"iopcare-{name}")
        template = deployment["spec"]["template"]
        assert matches(deployment["spec"]["selector"], template["metadata"]["labels"])
        (container,) = containers(template)
        assert container["args"] == ["iopcare", "serve", name]
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{name}: no {probe}"
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]
        budget = named(documents, "PodDisruptionBudget", f"iopcare-{name}")
        covered = selected_templates(documents, budget["spec"]["selector"])
        assert covered == [template], f"{name}: the budget selects {len(covered)} templates"
        assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
        named(documents, "Service", f"iopcare-{name}")


def test_services_probes_select_pods_and_hit_declared_ports() -> None:
    documents = k8s_documents()
    for service in of_kind(documents, "Service"):
        selected = selected_templates(documents, {"matchLabels": service["spec"]["selector"]})
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for template in selected:
                target = port["targetPort"]
                ports = declared_ports(template)
                assert target in ports or target in ports.values(), (
                    f"Service {service['metadata']['name']} targets undeclared port {target}"
                )
    for workload, template in pod_templates(documents):
        ports = declared_ports(template)
        for container in containers(template):
            env = env_of(container)
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(probe_name)
                if probe is None:
                    continue
                if "grpc" in probe:
                    port = probe["grpc"]["port"]
                    assert port in ports.values(), f"{probe_name} of an undeclared port {port}"
                    # ...and the one the service listens on.
                    (listen,) = [
                        v
                        for k, v in env.items()
                        if re.fullmatch(r"IOPCARE_(CAREPLAN|SCHEDULING|NOTES)_PORT", k)
                    ]
                    assert int(listen) == port
                    assert probe["grpc"].get("service", "") in ("", "liveness")
                else:
                    port = probe["httpGet"]["port"]
                    assert port in ports or port in ports.values()
                    assert ports.get(port, port) == int(env["IOPCARE_GATEWAY_PORT"])
                    # The gateway's own probes (outside its FHIR base): readiness follows the
                    # services' health, liveness only the process.
                    expected = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
                    assert probe["httpGet"]["path"] == expected[probe_name]
        assert workload["kind"] != "Deployment" or ports, "a Deployment declares no port"


def test_every_env_var_of_an_iopcare_container_is_a_setting() -> None:
    documents = k8s_documents()
    allowed = setting_names()
    config_maps = {c["metadata"]["name"]: c for c in of_kind(documents, "ConfigMap")}
    for workload, template in pod_templates(documents):
        for container in containers(template):
            if not is_iopcare_image(container["image"]):
                continue
            names = set(env_of(container))
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]["name"]
                assert ref in config_maps, f"{workload['metadata']['name']}: no ConfigMap {ref}"
                names |= set(config_maps[ref]["data"])
            unknown = names - allowed
            assert not unknown, f"{workload['metadata']['name']}: not settings: {sorted(unknown)}"


def test_files_named_by_settings_lie_in_mounted_volumes() -> None:
    for workload, template in pod_templates(k8s_documents()):
        volumes = {v["name"] for v in template["spec"].get("volumes", [])}
        for container in containers(template):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert set(mounts.values()) <= volumes
            for name, value in env_of(container).items():
                if isinstance(value, str) and value.startswith("/etc/"):
                    assert any(value.startswith(path + "/") or value == path for path in mounts), (
                        f"{workload['metadata']['name']}: {name}={value} is in no mounted volume"
                    )


def test_the_migration_jobs_use_the_services_database_settings() -> None:
    documents = k8s_documents()
    for service in SERVICES:
        job = named(documents, "Job", f"iopcare-{service}-migrate")
        (container,) = containers(job["spec"]["template"])
        assert container["args"] == ["iopcare", "migrate", service]
        deployment = named(documents, "Deployment", f"iopcare-{service}")
        (served,) = containers(deployment["spec"]["template"])
        database = {k: v for k, v in env_of(served).items() if "_DATABASE_" in k}
        assert database, f"{service}: no database settings"
        assert {k: v for k, v in env_of(container).items() if "_DATABASE_" in k} == database
        assert env_of(served)[f"IOPCARE_{service.upper()}_DATABASE_SSLMODE"] == "verify-full"


def topic_script_commands(script: str) -> tuple[dict[str, str], dict[str, str]]:
    """(topic -> retention.ms of its `create` line, the fixed --config values of `create`)."""
    created = dict(re.findall(r"^create (\S+) (\d+)$", script, flags=re.M))
    fixed = dict(re.findall(r"--config (\S+?)=(-?\d+|delete)\b", script))
    return created, fixed


def test_the_topic_script_creates_every_topic_with_6_partitions_and_the_projects_config() -> None:
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text()
    documents = k8s_documents()
    assert (
        named(documents, "ConfigMap", "iopcare-create-topics")["data"]["create-topics.sh"] == script
    )
    created, fixed = topic_script_commands(script)
    assert set(created) == set(topics.all_topics())
    settings = Settings()
    for topic, retention in created.items():
        expected = topics.topic_config(topic, settings)
        assert retention == expected["retention.ms"]
        assert {**fixed, "retention.ms": retention} == expected
    job = named(documents, "Job", "iopcare-create-topics")
    (container,) = containers(job["spec"]["template"])
    assert env_of(container)["PARTITIONS"] == "6"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["script"]["configMap"]["name"] == "iopcare-create-topics"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["kafka-init"]["environment"]["PARTITIONS"] == "6"
    assert (DEPLOY / "compose.yaml").parent.joinpath("kafka", "create-topics.sh").is_file()


def test_the_acl_script_grants_exactly_the_services_acls() -> None:
    from kafka.admin import ACLResourcePatternType, ResourceType

    from iopcare.devtools.kafka_broker import service_acls

    script = (DEPLOY / "kafka" / "create-acls.sh").read_text()
    config_map = named(k8s_documents(), "ConfigMap", "iopcare-create-topics")
    assert config_map["data"]["create-acls.sh"] == script
    granted = set()
    for user, operation, resource in re.findall(r"^allow (\w+) (\w+) (.+)$", script, flags=re.M):
        granted.add((f"User:{user}", operation.lower(), resource))
    expected = set()
    for acl in service_acls():
        pattern = acl.resource_pattern
        if pattern.resource_type == ResourceType.TOPIC:
            resource = f"--topic {pattern.resource_name}"
        elif pattern.resource_type == ResourceType.GROUP:
            resource = f"--group {pattern.resource_name}"
        else:
            resource = "--cluster"
        if pattern.pattern_type == ACLResourcePatternType.PREFIXED:
            resource += " --resource-pattern-type prefixed"
        expected.add((acl.principal, acl.operation.name.replace("_", "").lower(), resource))
    assert granted == expected
    properties = (DEPLOY / "compose" / "kafka.properties").read_text()
    assert "allow.everyone.if.no.acl.found=false" in properties
    assert (
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        in properties
    )
    (job,) = containers(named(k8s_documents(), "Job", "iopcare-create-topics")["spec"]["template"])
    assert "create-acls.sh" in job["command"][-1]
    assert "create-acls.sh" in compose_file()["services"]["kafka-init"]["entrypoint"][-1]


def network_allows(documents: list[Doc], source: Doc, target: Doc, port: int) -> bool:
    """Whether the NetworkPolicies let `source` (a pod's {namespace, labels}) open `port` on
    the pod template `target` (in iopcare's namespace). A pod no policy selects is open."""
    labels = target["metadata"]["labels"]
    policies = [
        p
        for p in of_kind(documents, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                namespace = peer.get("namespaceSelector")
                pods = peer.get("podSelector")
                in_namespace = (
                    matches(namespace, {"kubernetes.io/metadata.name": source["namespace"]})
                    if namespace is not None
                    else source["namespace"] == "iopcare"
                )
                if in_namespace and (pods is None or matches(pods, source["labels"])):
                    return True
    return False


def test_network_policies_let_in_only_the_gateway_from_outside() -> None:
    documents = k8s_documents()
    for policy in of_kind(documents, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert selector == {} or selected_templates(documents, selector), (
            f"{policy['metadata']['name']} selects no pod"
        )
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert selected_templates(documents, peer["podSelector"])
            for port in rule.get("ports", []):
                assert any(
                    port["port"] in declared_ports(t).values()
                    for t in selected_templates(documents, selector)
                )

    def pod(name: str) -> Doc:
        return named(documents, "Deployment", f"iopcare-{name}")["spec"]["template"]

    def inside(template: Doc) -> Doc:
        return {"namespace": "iopcare", "labels": template["metadata"]["labels"]}

    gateway = pod("gateway")
    assert network_allows(documents, OUTSIDE, gateway, GATEWAY_PORT)
    assert not network_allows(documents, OUTSIDE, gateway, 9464)
    assert network_allows(documents, MONITORING, gateway, 9464)
    jobs = [t for w, t in pod_templates(documents) if w["kind"] == "Job"]
    assert jobs
    for name, port in SERVICES.items():
        service = pod(name)
        assert not network_allows(documents, OUTSIDE, service, port), f"{name} open outside"
        assert not network_allows(documents, OUTSIDE, service, 9464)
        assert network_allows(documents, MONITORING, service, 9464)
        assert not network_allows(documents, MONITORING, service, port)
        assert network_allows(documents, inside(gateway), service, port)
        for other in SERVICES:
            assert network_allows(documents, inside(pod(other)), service, port)
        for job in jobs:
            assert not network_allows(documents, inside(job), service, port)
        # A stranger pod of the same namespace is not let in either.
        stranger = {"namespace": "iopcare", "labels": {"app": "debug"}}
        assert not network_allows(documents, stranger, service, port)


def test_the_policy_evaluation_can_fail() -> None:
    documents = k8s_documents()
    opened = [d for d in documents if d["kind"] != "NetworkPolicy"]
    opened.append(
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "oops"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
        }
    )
    careplan = named(documents, "Deployment", "iopcare-careplan")["spec"]["template"]
    assert network_allows(opened, OUTSIDE, careplan, SERVICES["careplan"])


def test_secrets_are_referenced_by_name_and_listed_in_the_operations_guide() -> None:
    documents = k8s_documents()
    assert not of_kind(documents, "Secret"), "no secret values in the repository"
    referenced = set()
    for _, template in pod_templates(documents):
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                referenced.add(volume["secret"]["secretName"])
        for container in containers(template):
            for value in env_of(container).values():
                if isinstance(value, dict) and "secretKeyRef" in value:
                    referenced.add(value["secretKeyRef"]["name"])
    guide = (REPO_ROOT / "docs" / "operations.md").read_text()
    for secret in referenced:
        generic = re.sub(r"iopcare-(careplan|scheduling|notes)-", "iopcare-<service>-", secret)
        assert f"`{generic}`" in guide, f"secret {secret} is not in docs/operations.md"


# -- Compose ----------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error},
    ${X?error}, $X; $$ is a literal $. A required variable that is unset is an error, and so
    (stricter than compose) is an unset $X."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(4) is not None:
            # $NAME: compose substitutes it (empty and a warning when unset). Stricter here: a
            # shell variable of a command written with one $ would be eaten by compose.
            if match.group(4) not in env:
                raise ValueError(
                    f"${match.group(4)} is interpolated by compose; write $$ for the shell"
                )
            return env[match.group(4)]
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if operator in (":?", "?") and (current is None or (operator == ":?" and not current)):
            raise ValueError(f"required variable {name} is not set: {argument}")
        if operator in (":-", "-") and (current is None or (operator == ":-" and not current)):
            return argument or ""
        return current or ""

    return _VARIABLE.sub(replace, value)


#: What an operator sets (compose.yaml's header).
COMPOSE_ENV = {
    "IOPCARE_SECRETS_DIR": "/srv/iopcare/secrets",
    "IOPCARE_TOKEN_ISSUER": "https://idp.example.org/realms/iopcare",
}


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = load_compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def compose_file() -> Doc:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_the_compose_file_is_valid_for_the_compose_specification(
    compose_validator: jsonschema.protocols.Validator,
) -> None:
    raw = compose_file()
    with pytest.raises(ValueError, match="write"):
        interpolate({"command": "echo $HOME"}, COMPOSE_ENV)
    assert interpolate({"command": "echo $$HOME ${X:-a}"}, COMPOSE_ENV) == {
        "command": "echo $HOME a"
    }
    with pytest.raises(ValueError, match="IOPCARE_SECRETS_DIR"):
        interpolate(raw, {k: v for k, v in COMPOSE_ENV.items() if k != "IOPCARE_SECRETS_DIR"})
    resolved = interpolate(raw, COMPOSE_ENV)
    errors = sorted(compose_validator.iter_errors(resolved), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda c: c["services"]["careplan"].__setitem__("restart", 5), "a wrong type"),
        (lambda c: c["services"]["gateway"].__setitem__("helthcheck", {}), "a misspelt key"),
        (
            lambda c: c["services"]["gateway"]["depends_on"]["careplan"].__setitem__(
                "condition", "service_ready"
            ),
            "a value outside an enumeration",
        ),
    ],
)
def test_the_compose_schema_check_catches_a_broken_file(
    compose_validator: jsonschema.protocols.Validator, change: Any, why: str
) -> None:
    resolved = interpolate(compose_file(), COMPOSE_ENV)
    change(resolved)
    assert list(compose_validator.iter_errors(resolved)), why


@pytest.fixture(scope="module")
def compose_check() -> Path:
    return ensure_compose_checker()


def load_with_compose_go(checker: Path, path: Path, env: dict[str, str]) -> Any:
    """compose-go's loader (deploy/check) on `path` with exactly `env`: the project as JSON, or
    the loader's error (AssertionError carrying it)."""
    result = subprocess.run(
        [str(checker), str(path)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


def test_compose_loads_with_the_loader_of_docker_compose(compose_check: Path) -> None:
    project = load_with_compose_go(compose_check, DEPLOY / "compose.yaml", COMPOSE_ENV)
    services = project["services"]
    assert set(services) == {
        "postgres",
        "kafka",
        "kafka-init",
        *(f"{name}-migrate" for name in SERVICES),
        *SERVICES,
        "gateway",
    }
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["gateway"]
    # On the host's loopback only: the hospital's TLS proxy is what the network reaches.
    assert [(p["target"], p["published"], p.get("host_ip")) for p in published["gateway"]] == [
        (8080, "8080", "127.0.0.1")
    ]
    assert project["networks"]["backend"]["internal"] is True
    for name in SERVICES:
        assert (
            services[name]["environment"]["IOPCARE_TOKEN_ISSUER"]
            == COMPOSE_ENV["IOPCARE_TOKEN_ISSUER"]
        )
        assert services[name]["depends_on"][f"{name}-migrate"]["condition"] == (
            "service_completed_successfully"
        )
    # $$ reached the shell as $.
    assert "$(cat /run/secrets/$2)" in services["kafka"]["command"][0]
    secret_files = {s["file"] for s in project["secrets"].values()}
    assert all(f.startswith(COMPOSE_ENV["IOPCARE_SECRETS_DIR"] + "/") for f in secret_files)


def test_the_loader_refuses_a_broken_compose_file(compose_check: Path, tmp_path: Path) -> None:
    without_issuer = {k: v for k, v in COMPOSE_ENV.items() if k != "IOPCARE_TOKEN_ISSUER"}
    with pytest.raises(AssertionError, match="IOPCARE_TOKEN_ISSUER"):
        load_with_compose_go(compose_check, DEPLOY / "compose.yaml", without_issuer)
    path = tmp_path / "compose.yaml"
    # The file as YAML without its anchors, somewhere else, still loads...
    path.write_text(yaml.safe_dump(compose_file()))
    load_with_compose_go(compose_check, path, COMPOSE_ENV)
    # ...and with a dependency on a service that does not exist, it does not.
    broken = compose_file()
    broken["services"]["gateway"]["depends_on"]["billing"] = {"condition": "service_healthy"}
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(AssertionError, match="billing"):
        load_with_compose_go(compose_check, path, COMPOSE_ENV)


def test_compose_runs_kafka_postgres_the_services_and_the_gateway() -> None:
    compose = compose_file()
    services = compose["services"]
    assert {"kafka", "postgres", "kafka-init", "gateway", *SERVICES} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert (
        "process.roles=broker,controller" in (DEPLOY / "compose" / "kafka.properties").read_text()
    )
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway"}, f"published besides the gateway: {published}"
    assert compose["networks"]["backend"]["internal"] is True
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in compose["secrets"], f"{name}: undefined secret {source}"
        for network in service.get("networks", []):
            assert network in compose["networks"]
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"]
    for name, port in SERVICES.items():
        service = services[name]
        assert service["command"] == ["iopcare", "serve", name]
        env = service["environment"]
        assert env[f"IOPCARE_{name.upper()}_PORT"] == str(port)
        assert service["healthcheck"]["test"][-1] == f"127.0.0.1:{port}"
        assert env[f"IOPCARE_{name.upper()}_DATABASE_SSLMODE"] == "verify-full"
        assert f"@postgres:5432/{name}" in env[f"IOPCARE_{name.upper()}_DATABASE_URL"]
        assert env["IOPCARE_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in services
        assert env["IOPCARE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        migrate = services[f"{name}-migrate"]
        assert migrate["command"] == ["iopcare", "migrate", name]
        assert service["depends_on"][f"{name}-migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert {k: v for k, v in env.items() if "_DATABASE_" in k} == {
            k: v for k, v in migrate["environment"].items() if "_DATABASE_" in k
        }
        gateway_env = services["gateway"]["environment"]
        assert gateway_env[f"IOPCARE_GATEWAY_{name.upper()}_ADDRESS"] == f"{name}:{port}"
        assert services["gateway"]["depends_on"][name] == {"condition": "service_healthy"}
    allowed = setting_names()
    for name, service in services.items():
        if is_iopcare_image(service.get("image", "")):
            unknown = set(service["environment"]) - allowed
            assert not unknown, f"compose {name}: not settings: {sorted(unknown)}"


def test_iopcare_migrate_brings_a_database_to_the_newest_schema(tmp_path: Path) -> None:
    database = tmp_path / "careplan.db"
    env = {
        **os.environ,
        "IOPCARE_DATA_DIR": str(tmp_path),
        "IOPCARE_CAREPLAN_DATABASE_URL": f"sqlite:///{database}",
    }
    command = [sys.executable, "-m", "iopcare.cli", "migrate", "careplan"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    engine = create_engine(f"sqlite:///{database}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "outbox", "audit_log"} <= tables


def test_the_compose_database_files_work_with_the_services_tls_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PostgreSQL part of compose.yaml, run here: the distribution's PostgreSQL with the
    compose file's pg_hba (deploy/compose/postgres-hba.conf) and initialisation
    (postgres-init.sql), a server certificate for the name `postgres`; each service's database
    settings from the compose file (libpq's hostaddr stands in for the compose network's name
    resolution, so verify-full still checks the name `postgres`), outside development mode:
    `iopcare migrate careplan` as a process, the others' migrations in this one."""
    import importlib

    from iopcare.kit.db import Database, migrate
    from iopcare.kit.errors import Unavailable
    from tests.support import harness
    from tests.support.postgres import PostgresServer, ServerTls, local_server_unavailable
    from tests.support.postgres import make_certificates as certificates_for

    reason = local_server_unavailable()
    if reason is not None:
        harness.missing(reason)
    pki = certificates_for(tmp_path / "pki", server_names=("postgres",), clients=tuple(SERVICES))
    tls = ServerTls(
        pki.server.cert_file,
        pki.server.key_file,
        client_ca_file=pki.ca_file,
        hba_file=DEPLOY / "compose" / "postgres-hba.conf",
    )
    compose = compose_file()["services"]
    monkeypatch.setenv("IOPCARE_DEV_MODE", "false")
    monkeypatch.setenv("IOPCARE_DATA_DIR", str(tmp_path / "data"))
    with PostgresServer(tls=tls) as server:
        server.run_sql_file(DEPLOY / "compose" / "postgres-init.sql")
        for name in SERVICES:
            prefix = f"IOPCARE_{name.upper()}_DATABASE_"
            settings = compose[f"{name}-migrate"]["environment"]
            assert settings[f"{prefix}SSLMODE"] == "verify-full"
            cert, key = pki.clients[name]
            url = settings[f"{prefix}URL"].replace("@postgres:5432/", f"@postgres:{server.port}/")
            monkeypatch.setenv(f"{prefix}URL", url + "?hostaddr=127.0.0.1")
            monkeypatch.setenv(f"{prefix}SSLMODE", settings[f"{prefix}SSLMODE"])
            monkeypatch.setenv(f"{prefix}SSLROOTCERT", str(pki.ca_file))
            monkeypatch.setenv(f"{prefix}SSLCERT", str(cert))
            monkeypatch.setenv(f"{prefix}SSLKEY", str(key))
            if name == "careplan":
                command = [sys.executable, "-m", "iopcare.cli", "migrate", name]
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
                assert result.returncode == 0, result.stderr
            else:
                service = ServiceSettings.for_service(name, Settings())
                db = Database(service.database_url)
                try:
                    migrate(db, importlib.import_module(f"iopcare.{name}.app").MIGRATIONS)
                finally:
                    db.dispose()
            service = ServiceSettings.for_service(name, Settings())
            db = Database(service.database_url)
            try:
                with db.read() as conn:
                    tables = set(inspect(conn).get_table_names())
                assert {"alembic_version", "outbox", "audit_log"} <= tables
            finally:
                db.dispose()
            # The same login without TLS: refused by the compose pg_hba.
            plain = Database(url + "?hostaddr=127.0.0.1&sslmode=disable")
            try:
                with pytest.raises(Unavailable) as refused, plain.read():
                    pass
            finally:
                plain.dispose()
            assert "no encryption" in str(refused.value.__cause__)


def test_the_gateway_answers_its_probe_paths_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paths the gateway's probes ask (Kubernetes) and the compose health check fetches are
    answered by the gateway's app without a token, as the kubelet asks them: liveness 200, and
    readiness 503 here, where no service runs behind it (tests/integration/test_gateway_probes.py
    shows it 200 with the services up, and 503 again while one is stopped)."""
    from starlette.testclient import TestClient

    from iopcare.gateway.app import build

    monkeypatch.setenv("IOPCARE_DATA_DIR", str(tmp_path))
    gateway = named(k8s_documents(), "Deployment", "iopcare-gateway")
    (container,) = containers(gateway["spec"]["template"])
    liveness = container["livenessProbe"]["httpGet"]["path"]
    readiness = container["readinessProbe"]["httpGet"]["path"]
    compose_check = compose_file()["services"]["gateway"]["healthcheck"]["test"][-1]
    assert f"127.0.0.1:8080{readiness}'" in compose_check
    # Nothing listens on these: the services are unreachable.
    monkeypatch.setenv("IOPCARE_GATEWAY_CAREPLAN_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("IOPCARE_GATEWAY_SCHEDULING_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("IOPCARE_GATEWAY_NOTES_ADDRESS", "127.0.0.1:1")
    app, service = build()
    try:
        client = TestClient(app)
        headers = {"Accept": "*/*", "User-Agent": "kube-probe/1.37"}
        alive = client.get(liveness, headers=headers)
        assert alive.status_code == 200
        assert alive.json() == {"status": "alive"}
        ready = client.get(readiness, headers=headers)
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "not ready",
            "services": {name: "UNREACHABLE" for name in ("careplan", "notes", "scheduling")},
        }
    finally:
        service.services.close()
