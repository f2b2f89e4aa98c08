"""A small kustomize renderer for the features deploy/k8s uses, so tests need no kustomize binary.

Supported: resources (files and directories), components, patches (strategic merge or JSON 6902, from
`path` or inline `patch`, with `target` by kind / name regex / labelSelector), namespace, labels,
images and replicas. Anything else in a kustomization is an error, so the tree cannot quietly use a
feature this renderer (and therefore the tests) would ignore. When `kubectl` is installed the tests
also compare this output with `kubectl kustomize`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "namespace",
    "labels",
    "images",
    "replicas",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
MERGE_KEYS = ("name", "containerPort", "mountPath")


class KustomizeError(ValueError):
    pass


def load_kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory} has no kustomization.yaml")
    document = yaml.safe_load(path.read_text())
    unknown = set(document) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not support: {sorted(unknown)}")
    return document


def build(directory: Path) -> list[Resource]:
    """Render the kustomization in `directory` (a Kustomization, not a Component)."""
    kustomization = load_kustomization(directory)
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{directory} is a {kustomization['kind']}, not a Kustomization")
    return _render(directory, kustomization, [])


def _render(directory: Path, kustomization: dict[str, Any], inherited: list[Resource]) -> list[Resource]:
    resources = list(inherited)
    for entry in kustomization.get("resources", []):
        resources.extend(_load_resource(directory / entry))
    for entry in kustomization.get("components", []):
        component_dir = (directory / entry).resolve()
        component = load_kustomization(component_dir)
        if component.get("kind") != "Component":
            raise KustomizeError(f"{component_dir} is listed as a component but is not kind: Component")
        resources = _render(component_dir, component, resources)
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, resources)
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    for label_set in kustomization.get("labels", []):
        _apply_labels(label_set, resources)
    for image in kustomization.get("images", []):
        _apply_image(image, resources)
    for replica in kustomization.get("replicas", []):
        matches = [
            r for r in resources if r["kind"] in WORKLOADS and r["metadata"]["name"] == replica["name"]
        ]
        if not matches:
            raise KustomizeError(f"replicas: no workload named {replica['name']}")
        for resource in matches:
            resource["spec"]["replicas"] = replica["count"]
    return resources


def _load_resource(path: Path) -> list[Resource]:
    path = path.resolve()
    if path.is_dir():
        return build(path)
    if not path.is_file():
        raise KustomizeError(f"resource {path} does not exist")
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _apply_patch(directory: Path, entry: dict[str, Any], resources: list[Resource]) -> None:
    if "path" in entry:
        patch_path = directory / entry["path"]
        if not patch_path.is_file():
            raise KustomizeError(f"patch {patch_path} does not exist")
        body = yaml.safe_load(patch_path.read_text())
    else:
        body = yaml.safe_load(entry["patch"])
    target = entry.get("target")
    if target is None:
        if isinstance(body, list):
            raise KustomizeError(f"{directory}: a JSON 6902 patch needs a target")
        target = {"kind": body["kind"], "name": body["metadata"]["name"]}
    matches = [resource for resource in resources if _selected(resource, target)]
    if not matches:
        raise KustomizeError(f"{directory}: patch target {target} matches no resource")
    for resource in matches:
        if isinstance(body, list):
            for operation in body:
                _json6902(resource, operation)
        else:
            patch = copy.deepcopy(body)
            patch.pop("metadata", None)
            _strategic_merge(resource, patch)


def _selected(resource: Resource, target: dict[str, Any]) -> bool:
    metadata = resource["metadata"]
    if "kind" in target and not re.fullmatch(target["kind"], resource["kind"]):
        return False
    if "name" in target and not re.fullmatch(target["name"], metadata["name"]):
        return False
    if "labelSelector" in target:
        labels = metadata.get("labels", {})
        for requirement in target["labelSelector"].split(","):
            key, _, value = requirement.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def _strategic_merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        current = into.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _strategic_merge(current, value)
        elif isinstance(value, list) and isinstance(current, list):
            into[key] = _merge_lists(current, value)
        else:
            into[key] = copy.deepcopy(value)


def _merge_lists(current: list[Any], patch: list[Any]) -> list[Any]:
    items = current + patch
    merge_key = next(
        (key for key in MERGE_KEYS if items and all(isinstance(i, dict) and key in i for i in items)), None
    )
    if merge_key is None:
        return copy.deepcopy(patch)
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        existing = next((m for m in merged if m[merge_key] == item[merge_key]), None)
        if existing is None:
            merged.append(copy.deepcopy(item))
        else:
            _strategic_merge(existing, item)
    return merged


def _json6902(resource: Resource, operation: dict[str, Any]) -> None:
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise KustomizeError(f"unsupported JSON patch op {op}")
        return
    if op in ("add", "replace"):
        if op == "replace" and last not in node:
            raise KustomizeError(f"replace of missing path {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise KustomizeError(f"unsupported JSON patch op {op}")


def _apply_labels(label_set: dict[str, Any], resources: list[Resource]) -> None:
    if label_set.get("includeSelectors"):
        raise KustomizeError("labels with includeSelectors are not supported")
    pairs = label_set["pairs"]
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(pairs)
        if label_set.get("includeTemplates") and resource["kind"] in WORKLOADS:
            template = resource["spec"]["template"]
            template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    if resource["kind"] not in WORKLOADS:
        return None
    return resource["spec"]["template"]["spec"]


def image_name(image: str) -> str:
    """`registry/repo:tag` or `repo@sha256:...` -> the name without tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _apply_image(rule: dict[str, Any], resources: list[Resource]) -> None:
    for resource in resources:
        spec = pod_spec(resource)
        if spec is None:
            continue
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            if image_name(container["image"]) != rule["name"]:
                continue
            name = rule.get("newName", rule["name"])
            if "digest" in rule:
                container["image"] = f"{name}@{rule['digest']}"
            elif "newTag" in rule:
                container["image"] = f"{name}:{rule['newTag']}"
            else:
                old = container["image"][len(image_name(container["image"])) :]
                container["image"] = name + old
