#!/usr/bin/env python3
"""Render deploy/kubernetes and validate it.

1. Render with `kubectl kustomize` when kubectl is installed, else with a small pure
   renderer that supports exactly what kustomization.yaml uses (resources, labels,
   configMapGenerator with a content-hash suffix).
2. Validate every object against the Kubernetes OpenAPI schemas (`kubernetes-validate`,
   strict: unknown fields are errors).
3. Check picoclaw's deployment rules: tokens only in the Secret, delivered either as
   files of the Secret mounted as a directory (a `_FILE` variable picoclaw reads, pointing
   into the mount; never a `subPath` mount, which the kubelet does not update —
   kubernetes#50345) or as `secretKeyRef` variables, every name checked against
   `picoclaw config env`; the
   ConfigMap's config.json holds no secret and loads in picoclaw; no init container;
   readiness on /ready and liveness on /health; non-root.

4. With replicas >= 2 (deploy/kubernetes/overlays/replicas): a RollingUpdate, no
   ReadWriteOnce volume, PICOCLAW_STORAGE_URL from a Secret and the database password
   from a Secret (docs/deploy.md "Replicas").

Usage: validate.py [--picoclaw PATH] [--pure] [--root DIR]   (exit 0 = valid)
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml  # PyYAML, a dependency of kubernetes-validate

HERE = os.path.dirname(os.path.abspath(__file__))
K8S_VERSION = "1.30.0"


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(dst, src):
    """A strategic merge, as much of it as the overlays use: maps merge, `null` deletes a
    key, `$retainKeys` keeps only the listed keys, lists of named maps merge by name."""
    for key, value in src.items():
        if key == "$retainKeys":
            continue
        if value is None:
            dst.pop(key, None)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        elif (
            isinstance(value, list)
            and isinstance(dst.get(key), list)
            and all(isinstance(v, dict) and "name" in v for v in value + dst[key])
        ):
            by_name = {item["name"]: item for item in dst[key]}
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    dst[key].append(item)
        else:
            dst[key] = value
    keep = src.get("$retainKeys")
    if keep is not None:
        for key in [k for k in dst if k not in keep]:
            del dst[key]


def pure_render(root):
    kust = load_all(os.path.join(root, "kustomization.yaml"))[0]
    docs = []
    for res in kust.get("resources", []):
        path = os.path.join(root, res)
        docs.extend(pure_render(path) if os.path.isdir(path) else load_all(path))
    renames = {}
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for f in gen.get("files", []):
            key, _, src = f.partition("=")
            src = src or key
            with open(os.path.join(root, src), encoding="utf-8") as fh:
                data[os.path.basename(key)] = fh.read()
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{gen['name']}-{digest}"
        renames[gen["name"]] = name
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    for block in kust.get("labels", []):
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(block.get("pairs", {}))
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for vol in spec.get("volumes", []):
            cm = vol.get("configMap")
            if cm and cm.get("name") in renames:
                cm["name"] = renames[cm["name"]]
    for patch in kust.get("patches", []):
        for p in load_all(os.path.join(root, patch["path"])):
            target = [d for d in docs if d["kind"] == p["kind"] and d["metadata"]["name"] == p["metadata"]["name"]]
            if not target:
                raise SystemExit(f"patch {patch['path']}: no {p['kind']}/{p['metadata']['name']}")
            if p.get("$patch") == "delete":
                docs.remove(target[0])
            else:
                merge(target[0], p)
    return docs


def kubectl_render(root):
    out = subprocess.run(["kubectl", "kustomize", root], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def secret_env_names(picoclaw):
    """(every variable, secret-value variables, secret-file variables)."""
    out = subprocess.run([picoclaw, "config", "env"], capture_output=True, text=True, check=True).stdout
    names, secrets, files = set(), set(), set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3:
            names.add(cols[0])
            if cols[2] == "secret":
                secrets.add(cols[0])
            if cols[2] == "file":
                files.add(cols[0])
    return names, secrets, files


def fail(errors, msg):
    errors.append(msg)


def check(docs, picoclaw, errors):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    replicas = (by_kind.get("Deployment") or [{}])[0].get("spec", {}).get("replicas", 1)
    required = ["Deployment", "Service", "Secret", "ConfigMap"]
    if replicas < 2:
        # One replica keeps its sessions in SQLite on a volume of its own.
        required.append("PersistentVolumeClaim")
    for kind in required:
        if kind not in by_kind:
            fail(errors, f"no {kind} rendered")
    if errors:
        return
    names, secret_names, file_names = secret_env_names(picoclaw) if picoclaw else (None, None, None)

    secrets = {
        s["metadata"]["name"]: set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
        for s in by_kind["Secret"]
    }

    cm = by_kind["ConfigMap"][0]
    config_text = cm["data"]["config.json"]
    config = json.loads(config_text)

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("token", "api_key", "api_keys", "launcher_token") and v not in (None, "", []):
                    fail(errors, f"config.json in the ConfigMap holds a secret at {path + k}")
                walk(v, path + k + ".")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}].")

    walk(config, "")
    if picoclaw:
        # The ConfigMap's config.json must load in picoclaw as it is.
        with tempfile.TemporaryDirectory() as home:
            path = os.path.join(home, "config.json")
            with open(path, "w", encoding="utf-8") as f:
                f.write(config_text)
            env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "PICOCLAW_HOME": home}
            res = subprocess.run([picoclaw, "config", "show"], env=env, capture_output=True, text=True)
            if res.returncode != 0:
                fail(errors, f"picoclaw rejects the ConfigMap's config.json: {res.stderr.strip()}")

    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    if pod.get("initContainers"):
        fail(errors, "Deployment has init containers; nothing may be copied or patched at start")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        fail(errors, "pod does not set runAsNonRoot")
    cm_names = {c["metadata"]["name"] for c in by_kind["ConfigMap"]}
    for vol in pod.get("volumes", []):
        if "configMap" in vol and vol["configMap"]["name"] not in cm_names:
            fail(errors, f"volume {vol['name']} names a ConfigMap that is not rendered")
    if replicas >= 2:
        check_replicas(dep, pod, errors)
    for secret_name, secret_keys in sorted(secrets.items()):
        check_secret(pod, secret_name, secret_keys, names, secret_names, file_names, secrets, errors)
    for c in pod["containers"]:
        if c.get("envFrom"):
            fail(errors, "use explicit env entries, so every variable is named")
        ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
        live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
        if ready != "/ready" or live != "/health":
            fail(errors, f"probes: readiness {ready!r} (want /ready), liveness {live!r} (want /health)")


def check_replicas(dep, pod, errors):
    """Several replicas: a rolling update, no ReadWriteOnce volume, sessions in PostgreSQL
    with the URL and the password from a Secret."""
    strategy = dep["spec"].get("strategy", {}).get("type")
    if strategy != "RollingUpdate":
        fail(errors, f"{dep['spec']['replicas']} replicas need strategy RollingUpdate, not {strategy}")
    for vol in pod.get("volumes", []):
        if "persistentVolumeClaim" in vol:
            fail(errors, f"volume {vol['name']}: replicas share no ReadWriteOnce volume (each pod's home is its own)")
    for c in pod["containers"]:
        env = {e["name"]: e for e in c.get("env", [])}
        url = env.get("PICOCLAW_STORAGE_URL")
        if not url or not ((url.get("valueFrom") or {}).get("secretKeyRef")):
            fail(errors, f"container {c['name']}: PICOCLAW_STORAGE_URL must come from a Secret (secretKeyRef)")
        if "PICOCLAW_STORAGE_PASSWORD_FILE" not in env and not (
            (env.get("PICOCLAW_STORAGE_PASSWORD") or {}).get("valueFrom", {}).get("secretKeyRef")
        ):
            fail(errors, f"container {c['name']}: the database password must come from a Secret")


def check_secret(pod, secret_name, secret_keys, names, secret_names, file_names, secrets, errors):
    # Volumes that carry the Secret (a secret volume or a projected one with it).
    def projects_secret(vol):
        if (vol.get("secret") or {}).get("secretName") == secret_name:
            return True
        sources = (vol.get("projected") or {}).get("sources") or []
        return any((src.get("secret") or {}).get("name") == secret_name for src in sources)

    secret_volumes = {v["name"] for v in pod.get("volumes", []) if projects_secret(v)}
    for c in pod["containers"]:
        env = {e["name"]: e for e in c.get("env", [])}
        mounts = [m for m in c.get("volumeMounts", []) if m["name"] in secret_volumes]
        for m in mounts:
            if m.get("subPath") or m.get("subPathExpr"):
                fail(
                    errors,
                    f"container {c['name']} mounts the Secret with subPath at {m['mountPath']}: subPath mounts "
                    "never see an updated Secret (kubernetes#50345); mount the directory and use a _FILE variable",
                )
        delivered = set()
        for name, e in env.items():
            if not name.endswith("_FILE") or not name.startswith("PICOCLAW_"):
                continue
            if file_names is not None and name not in file_names:
                continue  # reported below as a variable picoclaw does not read
            path = e.get("value", "")
            dirs = [m["mountPath"].rstrip("/") + "/" for m in mounts]
            inside = [d for d in dirs if path.startswith(d)]
            if not inside:
                if not any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in c.get("volumeMounts", [])):
                    fail(errors, f"{name}={path!r} is not a file of a mounted Secret")
                continue
            delivered.add(path[len(inside[0]):])
        for name, e in env.items():
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("name") == secret_name:
                delivered.add(ref.get("key"))
        for name, e in env.items():
            if names is not None and name.startswith("PICOCLAW_") and name not in names:
                fail(errors, f"container {c['name']} sets {name}, which picoclaw does not read")
            is_secret = (secret_names is not None and name in secret_names) or name.endswith(("_TOKEN", "_API_KEY"))
            if is_secret:
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if "value" in e or not ref or ref.get("name") not in secrets:
                    fail(errors, f"{name} must come from the Secret {secret_name}")
        for key in sorted(secret_keys - delivered):
            fail(errors, f"Secret key {key} is not delivered to container {c['name']} (as a _FILE file or secretKeyRef)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--picoclaw", help="picoclaw binary for cross-checks")
    ap.add_argument("--pure", action="store_true", help="use the pure renderer even if kubectl exists")
    ap.add_argument("--root", default=HERE, help="the kustomization to render (default: this directory)")
    args = ap.parse_args()
    import kubernetes_validate  # noqa: E402  (imported late so --help works without it)

    renders = [("pure", pure_render(args.root))]
    if not args.pure and shutil.which("kubectl"):
        renders.append(("kubectl kustomize", kubectl_render(args.root)))
    errors = []
    for how, docs in renders:
        for d in docs:
            try:
                kubernetes_validate.validate(d, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(errors, f"[{how}] {d['kind']}/{d['metadata']['name']}: {e.message} at {list(e.path)}")
            except Exception as e:  # noqa: BLE001  (schema lookup failures are failures too)
                fail(errors, f"[{how}] {d['kind']}/{d['metadata'].get('name')}: {e}")
        check(docs, args.picoclaw, errors)
        print(f"{how}: {len(docs)} objects: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
    if errors:
        for e in errors:
            print("error:", e, file=sys.stderr)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
