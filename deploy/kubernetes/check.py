"""What a schema cannot see in deploy/kubernetes/: the shard protocol's settings.

Run by validate.sh (with the Python that has kubernetes-validate, hence PyYAML):
    python3 check.py DIR [RENDERED.yaml ...]
DIR is the folder of manifests; each RENDERED file is `kubectl kustomize` output.
Exits 1 naming every problem.
"""

import glob
import os
import sys

import yaml

problems = []

# The Indexed Jobs of the shard protocol: one attack schedule, and a sweep across pods.
SHARD_JOBS = ("rpload-shards", "rpload-sweep-shards")


def problem(where, text):
    problems.append(f"{where}: {text}")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_shards_job(where, job):
    """The Indexed Job's N must agree in its three places, and the protocol must hold."""
    spec = job.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    if spec.get("completionMode") != "Indexed":
        problem(where, "completionMode must be Indexed (the pod's index is its shard)")
    if pod.get("restartPolicy") != "Never":
        problem(where, "restartPolicy must be Never (backoffLimitPerIndex requires it)")
    shard = None
    for c in pod.get("containers", []):
        for e in c.get("env", []):
            if e.get("name") == "RPLOAD_SHARD":
                shard = e.get("value")
    if shard is None:
        problem(where, "no RPLOAD_SHARD env (the `--shard auto/N` value)")
        return
    auto, _, n = str(shard).partition("/")
    if auto != "auto" or not n.isdigit():
        problem(where, f"RPLOAD_SHARD is {shard!r}, expected auto/N")
        return
    n = int(n)
    for field in ("completions", "parallelism"):
        if spec.get(field) != n:
            problem(where, f"spec.{field} is {spec.get(field)!r} but RPLOAD_SHARD says {n} shards")


def images(docs):
    return {
        c.get("image")
        for d in docs
        for c in (
            d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            + d.get("spec", {}).get("containers", [])
        )
    }


def main():
    root = sys.argv[1]
    rendered = sys.argv[2:]
    kustomizations = sorted(glob.glob(os.path.join(root, "**", "kustomization.yaml"), recursive=True))
    listed = set()
    image_entries = {}
    for k in kustomizations:
        (doc,) = load(k)
        base = os.path.dirname(k)
        for r in doc.get("resources", []):
            path = os.path.normpath(os.path.join(base, r))
            if not os.path.isfile(path):
                problem(k, f"resource {r} does not exist")
            listed.add(path)
        image_entries[k] = [(i.get("name"), i.get("newName"), str(i.get("newTag"))) for i in doc.get("images", [])]
    if len({tuple(v) for v in image_entries.values()}) > 1:
        problem(root, f"the kustomizations name different images: {image_entries}")

    manifests = sorted(
        p
        for p in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
        if os.path.basename(p) != "kustomization.yaml"
    )
    for m in manifests:
        if os.path.normpath(m) not in listed:
            problem(m, "not listed in any kustomization.yaml")
        docs = load(m)
        for img in images(docs):
            if img is None or img.split(":")[0] != "rpload":
                problem(m, f"image {img!r}: name it rpload:TAG so the kustomizations' images entry applies")
        for d in docs:
            if d.get("kind") == "Job" and d.get("metadata", {}).get("name") in SHARD_JOBS:
                check_shards_job(m, d)

    for r in rendered:
        jobs = [d for d in load(r) if d.get("kind") == "Job" and d["metadata"]["name"] in SHARD_JOBS]
        for j in jobs:
            check_shards_job(f"{r} (rendered)", j)

    for p in problems:
        print(f"ERROR {p}")
    if problems:
        sys.exit(1)
    checked = sum(
        1
        for m in manifests
        for d in load(m)
        if d.get("kind") == "Job" and d.get("metadata", {}).get("name") in SHARD_JOBS
    )
    if checked != len(SHARD_JOBS):
        problem(root, f"expected the shard Jobs {SHARD_JOBS}, found {checked} of them")
        for p in problems:
            print(f"ERROR {p}")
        sys.exit(1)
    print(f"OK {len(manifests)} manifests, {len(kustomizations)} kustomizations: shard settings agree")


main()
