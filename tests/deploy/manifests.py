"""Checks of the rendered Kubernetes manifests (run by scripts/test-deploy.sh).

    manifests.py policy FILE...        every workload container follows the policy below
    manifests.py self-test             the policy catches each violation it names
    manifests.py same A.yaml B.yaml    two renders hold the same objects (generated names
                                       differ only in their hash suffix)

Policy, for every container of every Deployment, StatefulSet, DaemonSet, Job and CronJob:
CPU and memory requests and limits; readiness and liveness probes (long-running
containers, not init containers or Jobs); a non-root user; a read-only root filesystem;
no privilege escalation; all capabilities dropped. Pods mount no service-account token.
"""

import copy
import json
import re
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(obj):
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def violations(objects):
    found = []
    for obj in objects:
        if obj.get("kind") not in WORKLOADS:
            continue
        name = f'{obj["kind"]}/{obj["metadata"]["name"]}'
        pod = pod_spec(obj)
        pod_sc = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            found.append(f"{name}: mounts a service-account token (automountServiceAccountToken)")
        long_running = obj["kind"] not in {"Job", "CronJob"}
        containers = [(c, False) for c in pod.get("initContainers") or []]
        containers += [(c, long_running) for c in pod.get("containers") or []]
        for container, needs_probes in containers:
            where = f'{name} container {container["name"]}'
            res = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in (res.get(kind) or {}):
                        found.append(f"{where}: no {what} {kind[:-1]}")
            if needs_probes:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        found.append(f"{where}: no {probe}")
            sc = container.get("securityContext") or {}
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            if user == 0 or non_root is not True or user is None:
                found.append(f"{where}: may run as root (runAsNonRoot and a non-zero runAsUser)")
            if sc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{where}: root filesystem is writable (readOnlyRootFilesystem)")
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allows privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                found.append(f"{where}: keeps capabilities (drop ALL)")
    return found


def policy(paths):
    bad = []
    count = 0
    for path in paths:
        objects = load(path)
        count += sum(1 for o in objects if o.get("kind") in WORKLOADS)
        bad += [f"{path}: {v}" for v in violations(objects)]
    for line in bad:
        print(line, file=sys.stderr)
    if count == 0:
        print("policy: no workloads found", file=sys.stderr)
        return 1
    print(f"policy: {count} workloads in {len(paths)} files, {len(bad)} violations")
    return 1 if bad else 0


GOOD = yaml.safe_load("""
kind: Deployment
metadata: {name: good}
spec:
  template:
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      containers:
        - name: app
          resources: {requests: {cpu: 1, memory: 1Mi}, limits: {cpu: 1, memory: 1Mi}}
          readinessProbe: {tcpSocket: {port: 1}}
          livenessProbe: {tcpSocket: {port: 1}}
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
""")


def self_test():
    """Each broken copy of a compliant workload is caught, with the reason named."""
    assert violations([GOOD]) == [], violations([GOOD])

    def broken(change):
        obj = copy.deepcopy(GOOD)
        change(obj["spec"]["template"]["spec"], obj["spec"]["template"]["spec"]["containers"][0])
        return " | ".join(violations([obj]))

    cases = {
        "no memory limit": lambda p, c: c["resources"]["limits"].pop("memory"),
        "no cpu limit": lambda p, c: c.pop("resources"),
        "no readinessProbe": lambda p, c: c.pop("readinessProbe"),
        "no livenessProbe": lambda p, c: c.pop("livenessProbe"),
        "may run as root": lambda p, c: p["securityContext"].update(runAsUser=0),
        "root filesystem is writable": lambda p, c: c["securityContext"].pop("readOnlyRootFilesystem"),
        "allows privilege escalation": lambda p, c: c["securityContext"].update(allowPrivilegeEscalation=True),
        "keeps capabilities": lambda p, c: c["securityContext"]["capabilities"].update(drop=[]),
        "mounts a service-account token": lambda p, c: p.pop("automountServiceAccountToken"),
    }
    for reason, change in cases.items():
        found = broken(change)
        assert reason in found, f"{reason!r} not reported: {found!r}"
    # A non-root image user is not enough on its own: the manifest must say so.
    found = broken(lambda p, c: p["securityContext"].pop("runAsNonRoot"))
    assert "may run as root" in found, found
    print(f"policy self-test: {len(cases) + 1} violations caught")
    return 0


GENERATED = re.compile(r"-[a-z0-9]{10}$")


def normalise(objects):
    for obj in objects:
        # Older kustomize writes empty labels/annotations on merged generators.
        meta = obj["metadata"]
        for key in [k for k, v in meta.items() if v in ({}, [], None)]:
            del meta[key]
    text = json.dumps(objects, sort_keys=True)
    names = {
        o["metadata"]["name"]
        for o in objects
        if o["kind"] in ("ConfigMap", "Secret") and GENERATED.search(o["metadata"]["name"])
    }
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(f'"{name}"', f'"{GENERATED.sub("-HASH", name)}"')
    out = json.loads(text)
    return {(o["kind"], o["metadata"]["name"]): o for o in out}


def same(a, b):
    left, right = normalise(load(a)), normalise(load(b))
    if left == right:
        print(f"same: {a} and {b} hold the same {len(left)} objects")
        return 0
    for key in sorted(set(left) | set(right)):
        if left.get(key) != right.get(key):
            print(f"differs: {key}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) >= 2 and argv[1] == "policy":
        return policy(argv[2:])
    if argv[1:] == ["self-test"]:
        return self_test()
    if len(argv) == 4 and argv[1] == "same":
        return same(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
