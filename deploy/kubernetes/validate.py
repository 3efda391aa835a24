"""Validates the manifests of deploy/kubernetes offline (run by ./check).

- Kubernetes' own kinds: against the schemas kubernetes-validate bundles, in
  strict mode (an unknown field is an error, as `kubectl apply` makes it), for
  each Kubernetes version in VERSIONS.
- Knative's Service: against the CRD's own schema, vendored in schemas/, made
  strict the same way (the API server rejects unknown fields of a CRD too).
- kustomization.yaml: every resource it lists exists and is one of the files
  checked here (kustomize itself is not available offline).
- Any other kind is an error: nothing goes unchecked silently.

Prints one line per resource and exits 1 if anything failed.
"""

import copy
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
# The oldest version the manifests claim (preStop's sleep action is on by
# default from 1.30) and the newest the bundled schemas know.
VERSIONS = ["1.30.0", "1.37.0"]
CRD_SCHEMAS = {
    ("serving.knative.dev/v1", "Service"): "schemas/knative-serving-service-crd.yaml",
}


def strict(schema):
    """The schema with unknown fields refused wherever the CRD lists the
    fields and does not ask to keep unknown ones."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def crd_schema(path, api_version):
    crd = yaml.safe_load((HERE / path).read_text())
    version = api_version.split("/")[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return strict(v["schema"]["openAPIV3Schema"])
    raise SystemExit(f"{path} has no version {version}")


def check_kustomization(path, doc, checked):
    errors = []
    for r in doc.get("resources", []):
        target = (path.parent / r).resolve()
        if not target.exists():
            errors.append(f"resource {r} does not exist")
        elif target.is_file() and target not in checked:
            errors.append(f"resource {r} is not among the files checked")
    return errors


def main(files):
    paths = [pathlib.Path(f).resolve() for f in files]
    shown = {p: p.relative_to(HERE) if p.is_relative_to(HERE) else p for p in paths}
    failed = 0
    for path in paths:
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as e:
            print(f"FAIL {shown[path]}: not YAML: {e}")
            failed += 1
            continue
        if not docs:
            print(f"FAIL {shown[path]}: no resource in it")
            failed += 1
        for doc in docs:
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = f"{shown[path]} {kind}/{doc.get('metadata', {}).get('name', '')}"
            if kind == "Kustomization":
                errors = check_kustomization(path, doc, set(paths))
            elif (api, kind) in CRD_SCHEMAS:
                v = jsonschema.Draft7Validator(crd_schema(CRD_SCHEMAS[(api, kind)], api))
                errors = [
                    f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                    for e in v.iter_errors(doc)
                ]
            else:
                errors = []
                for version in VERSIONS:
                    try:
                        kubernetes_validate.validate(doc, version, strict=True)
                    except kubernetes_validate.SchemaNotFoundError:
                        errors.append(f"no schema for {api} {kind} (Kubernetes {version})")
                    except kubernetes_validate.ValidationError as e:
                        where = ".".join(map(str, e.path)) or "(top)"
                        errors.append(f"Kubernetes {version}: {where}: {e.message}")
            for e in errors:
                print(f"FAIL {name}: {e}")
            print(f"{'FAIL' if errors else 'ok  '} {name}")
            failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
