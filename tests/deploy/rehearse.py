"""Rehearses a rendered overlay: starts every flash-sale workload as the cluster would,
as a local process, and checks that it becomes ready on the probe the manifest declares.

    rehearse.py --manifests RENDERED.yaml --values VALUES.json --binary FLASH_SALE \
                [--only api,edge] [--expect-failure TEXT]

What is taken from the manifests, verbatim: the container's command and arguments, its
environment (env and envFrom, ConfigMaps and Secrets in Kubernetes' order of
precedence), its volumes at their mount paths (ConfigMaps and Secrets as files, emptyDir
and claims as empty directories), the user and group it runs as, a read-only root
filesystem, its init containers (each must exit 0 first), and its startup and readiness
probes (port by name, path, thresholds).

What is taken from deploy/Dockerfile: the final stage of the image (app or edge) lays out
its files (each COPY, from the build stages mapped to the local build: the binary given
here and the built pages in static/), its ENV, USER, ENTRYPOINT and CMD.

What stands in for the cluster (said here because the real thing cannot run without a
container runtime): the machine's own Debian bookworm /usr and /etc under the image's
files (the images are Debian bookworm too), a private mount namespace and chroot per
container instead of a container runtime, the machine's network (every workload binds
its declared port on this machine, one at a time), /etc/hosts naming the Services this
machine answers for instead of cluster DNS, and the deployment-specific values of
VALUES.json in place of the placeholders in flash-sale-endpoints and flash-sale-secrets
(a null value removes a key). Images that are not ours (the stores of overlays/local)
are not started: the machine's stores stand in for them.

Needs root (mount namespaces, chroot, setpriv), as a container runtime does.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The debian base image's own ENV.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def say(message):
    print(f"[rehearse] {message}", flush=True)


class Failure(Exception):
    pass


# --- deploy/Dockerfile --------------------------------------------------------------------


def dockerfile_stages(path):
    """Instructions per stage name, continuation lines joined, comments dropped."""
    stages, current, pending = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = (pending + line).strip(), ""
            if not line:
                continue
            op, _, rest = line.partition(" ")
            op = op.upper()
            if op == "FROM":
                words = rest.split()
                current = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
                stages[current] = []
            elif current is not None:
                stages[current].append((op, rest.strip()))
    return stages


def image_of(stage_lines, sources):
    """ENV, USER, ENTRYPOINT, CMD and the files (local source, image path) of a stage."""
    image = {"env": {}, "user": None, "entrypoint": [], "cmd": [], "files": []}
    for op, rest in stage_lines:
        if op == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                image["env"][key] = value
        elif op == "USER":
            image["user"] = rest
        elif op in ("ENTRYPOINT", "CMD"):
            image["entrypoint" if op == "ENTRYPOINT" else "cmd"] = json.loads(rest)
            if op == "ENTRYPOINT":
                image["cmd"] = []
        elif op == "COPY":
            words = rest.split()
            origin = None
            while words[0].startswith("--"):
                flag = words.pop(0)
                if flag.startswith("--from="):
                    origin = flag.split("=", 1)[1]
            *srcs, dest = words
            for src in srcs:
                key = f"{origin}:{src}" if origin else src
                if origin:
                    if key not in sources:
                        raise Failure(f"Dockerfile copies {key}, which this rehearsal cannot map to the local build")
                    local = sources[key]
                else:
                    local = os.path.join(ROOT, src)
                if not os.path.exists(local):
                    raise Failure(f"Dockerfile copies {src} ({local}): it does not exist")
                image["files"].append((local, dest))
    return image


# --- the rendered manifests ------------------------------------------------------------------


def load_objects(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(objects, kind, name):
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise Failure(f"the manifests have no {kind} {name}")


def secret_data(secret):
    import base64

    data = dict(secret.get("stringData") or {})
    for key, value in (secret.get("data") or {}).items():
        data[key] = base64.b64decode(value).decode()
    return data


def with_values(objects, values):
    """The placeholders of the deployment-specific ConfigMaps and Secrets replaced."""
    for obj in objects:
        if obj["kind"] not in ("ConfigMap", "Secret"):
            continue
        name = obj["metadata"]["name"]
        for base, overrides in values.get(obj["kind"], {}).items():
            # Generated names carry a hash suffix: flash-sale-endpoints-2466mbfhm2.
            if name != base and not (name.startswith(base + "-") and len(name) == len(base) + 11):
                continue
            data = obj.get("data") or {} if obj["kind"] == "ConfigMap" else secret_data(obj)
            for key, value in overrides.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            if obj["kind"] == "ConfigMap":
                obj["data"] = data
            else:
                obj.pop("data", None)
                obj["stringData"] = data
    return objects


def config_values(objects, kind, name):
    obj = find(objects, kind, name)
    return obj.get("data") or {} if kind == "ConfigMap" else secret_data(obj)


def container_env(objects, container, image):
    env = {"PATH": BASE_PATH, "HOME": "/"}
    env.update(image["env"])
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            values = config_values(objects, "ConfigMap", source["configMapRef"]["name"])
        else:
            values = config_values(objects, "Secret", source["secretRef"]["name"])
        env.update({prefix + k: str(v) for k, v in values.items()})
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "valueFrom" in item:
            ref = item["valueFrom"]
            if "secretKeyRef" in ref:
                values = config_values(objects, "Secret", ref["secretKeyRef"]["name"])
                env[item["name"]] = values[ref["secretKeyRef"]["key"]]
            elif "configMapKeyRef" in ref:
                values = config_values(objects, "ConfigMap", ref["configMapKeyRef"]["name"])
                env[item["name"]] = values[ref["configMapKeyRef"]["key"]]
            else:
                raise Failure(f"env {item['name']}: valueFrom {list(ref)} is not rehearsed")
    return env


def command_line(container, image):
    # Kubernetes: command replaces ENTRYPOINT (and drops CMD); args replace CMD.
    if "command" in container:
        return container["command"] + container.get("args", [])
    return image["entrypoint"] + container.get("args", image["cmd"])


# --- the container's filesystem --------------------------------------------------------------


def copy_into(layer, local, dest):
    target = layer + dest
    if os.path.isdir(local):
        shutil.copytree(local, target, dirs_exist_ok=True, symlinks=True)
    else:
        if dest.endswith("/"):
            target = os.path.join(target, os.path.basename(local))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(local, target)


def volume_dirs(objects, pod, container, work):
    """(host dir, mount path, read only) per volume mount, made in WORK."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        host = os.path.join(work, "volumes", container["name"], mount["name"])
        os.makedirs(host, exist_ok=True)
        read_only = bool(mount.get("readOnly"))
        if "configMap" in volume or "secret" in volume:
            if "configMap" in volume:
                files = config_values(objects, "ConfigMap", volume["configMap"]["name"])
            else:
                files = config_values(objects, "Secret", volume["secret"]["secretName"])
            for key, value in files.items():
                with open(os.path.join(host, key), "w", encoding="utf-8") as f:
                    f.write(value)
                os.chmod(os.path.join(host, key), 0o644)
            os.chmod(host, 0o755)
            # Kubernetes mounts both read-only whatever the mount says.
            read_only = True
        elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
            os.chmod(host, 0o777)
        else:
            raise Failure(f"volume {mount['name']}: {list(volume)} is not rehearsed")
        mounts.append((host, mount["mountPath"], read_only))
    return mounts


def run_script(layer, rootfs, mounts, user, env, argv):
    """Shell run in a private mount namespace: builds the read-only root, then execs."""
    q = shlex.quote
    lines = [
        "set -e",
        f"mount -t tmpfs -o mode=755 tmpfs {q(rootfs)}",
        f"cd {q(rootfs)}",
        "mkdir -p usr etc proc dev tmp run var",
        "ln -s usr/lib lib; ln -s usr/lib64 lib64; ln -s usr/bin bin; ln -s usr/sbin sbin",
    ]
    for top in sorted(os.listdir(layer)):
        if top in ("usr", "etc"):
            # The image's files over the machine's Debian (the base image's stand-in).
            lines.append(
                f"mount -t overlay overlay -o lowerdir={q(layer + '/' + top)}:/{top} {q(rootfs + '/' + top)}"
            )
        else:
            lines.append(f"mkdir -p {q(rootfs + '/' + top)}")
            lines.append(f"mount --bind {q(layer + '/' + top)} {q(rootfs + '/' + top)}")
    for name in ("usr", "etc"):
        if not os.path.isdir(os.path.join(layer, name)):
            lines.append(f"mount --bind -o ro /{name} {q(rootfs + '/' + name)}")
    lines += [
        f"mount -t proc proc {q(rootfs + '/proc')}",
        f"mount --rbind /dev {q(rootfs + '/dev')}",
    ]
    for host, path, read_only in mounts:
        lines.append(f"mount --bind {q(host)} {q(rootfs + path)}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q(rootfs + path)}")
    lines.append(f"mount -o remount,bind,ro {q(rootfs)}")
    uid, gid, groups = user
    env_args = " ".join(q(f"{k}={v}") for k, v in sorted(env.items()))
    lines.append(
        f"exec chroot {q(rootfs)} setpriv --reuid {uid} --regid {gid} "
        f"--groups {','.join(map(str, groups)) or gid} --no-new-privs "
        f"env -i {env_args} {' '.join(map(q, argv))}"
    )
    return "\n".join(lines)


# --- probes -------------------------------------------------------------------------------------


def port_number(container, port):
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    raise Failure(f"container {container['name']}: no port named {port}")


def probe_once(container, probe):
    if "httpGet" in probe:
        get = probe["httpGet"]
        url = f"http://127.0.0.1:{port_number(container, get['port'])}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as answer:
                return 200 <= answer.status < 400, f"{url} answered {answer.status}"
        except urllib.error.HTTPError as e:
            return False, f"{url} answered {e.code}: {e.read()[-600:]!r}"
        except OSError as e:
            return False, f"{url}: {e}"
    if "tcpSocket" in probe:
        port = port_number(container, probe["tcpSocket"]["port"])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True, f"port {port} accepts"
        except OSError as e:
            return False, f"port {port}: {e}"
    raise Failure(f"container {container['name']}: probe {list(probe)} is not rehearsed")


def wait_for(process, container, probe, what, budget_secs):
    deadline = time.monotonic() + budget_secs
    period = probe.get("periodSeconds", 10)
    last = "never probed"
    time.sleep(probe.get("initialDelaySeconds", 0))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"exited with {process.returncode} before its {what} probe passed ({last})")
        ok, last = probe_once(container, probe)
        if ok:
            return last
        time.sleep(min(period, 1))
    raise Failure(f"{what} probe never passed in {budget_secs} s: {last}")


def port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


# --- one workload ---------------------------------------------------------------------------


class Rehearsal:
    def __init__(self, objects, images, work, hosts):
        self.objects = objects
        self.images = images
        self.work = work
        self.hosts = hosts

    def image_for(self, reference):
        name = reference.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        return self.images.get(name)

    def layer(self, image, container, mounts):
        layer = tempfile.mkdtemp(prefix="layer-", dir=self.work)
        for local, dest in image["files"]:
            copy_into(layer, local, dest)
        # Cluster DNS's stand-in: the Services this machine answers for.
        os.makedirs(os.path.join(layer, "etc"), exist_ok=True)
        with open(os.path.join(layer, "etc", "hosts"), "w", encoding="utf-8") as f:
            f.write("127.0.0.1 localhost " + " ".join(self.hosts) + "\n::1 localhost\n")
        for _, path, _ in mounts:
            os.makedirs(layer + path, exist_ok=True)
        for top in ("tmp", "run", "proc", "dev", "var"):
            if os.path.isdir(os.path.join(layer, top)) and top in ("proc", "dev"):
                raise Failure(f"the image may not ship /{top}")
        return layer

    def user(self, pod, container, image):
        pod_sc = pod.get("securityContext") or {}
        sc = container.get("securityContext") or {}
        image_user = (image["user"] or "0:0").split(":")
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", int(image_user[0])))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", int(image_user[-1])))
        groups = [gid] + ([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else [])
        if sc.get("readOnlyRootFilesystem") is not True:
            raise Failure(f"container {container['name']}: only read-only roots are rehearsed")
        return uid, gid, groups

    def start(self, pod, container, label):
        image = self.image_for(container["image"])
        mounts = volume_dirs(self.objects, pod, container, self.work)
        layer = self.layer(image, container, mounts)
        rootfs = tempfile.mkdtemp(prefix="root-", dir=self.work)
        env = container_env(self.objects, container, image)
        env["HOSTNAME"] = label
        argv = command_line(container, image)
        user = self.user(pod, container, image)
        script = run_script(layer, rootfs, mounts, user, env, argv)
        log_path = os.path.join(self.work, f"{label}.log")
        log = open(log_path, "wb")
        # As runc does: the container's user owns its stdout and stderr, so a process
        # may reopen them (/dev/stdout).
        os.fchown(log.fileno(), user[0], user[1])
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return process, log_path, argv

    def check_nginx(self, pod, container, name):
        """`nginx -t` on the configuration as the edge container sees it."""
        test = dict(container, command=["/usr/sbin/nginx", "-t"], args=[])
        process, log_path, _ = self.start(pod, test, f"{name}-nginx-t")
        code = process.wait(timeout=30)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            output = f.read().strip()
        if code != 0:
            raise Failure(f"nginx -t failed on the edge's configuration: {output}", log_path)
        say(f"{name}: nginx -t: {output.splitlines()[-1] if output else 'ok'}")

    def workload(self, deployment):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for init in pod.get("initContainers") or []:
            process, log_path, argv = self.start(pod, init, f"{name}-init-{init['name']}")
            try:
                code = process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stop(process, 5)
                raise Failure(f"init container {init['name']} ran for 120 s", log_path)
            if code != 0:
                raise Failure(f"init container {init['name']} ({' '.join(argv)}) exited with {code}", log_path)
            say(f"{name}: init container {init['name']} ({' '.join(argv)}) exited 0")
        for container in pod["containers"]:
            if self.image_for(container["image"]) is self.images.get("flash-sale-edge"):
                self.check_nginx(pod, container, name)
            for probe_name in ("startupProbe", "readinessProbe"):
                probe = container.get(probe_name)
                if probe and "httpGet" in probe:
                    port = port_number(container, probe["httpGet"]["port"])
                    if not port_free(port):
                        raise Failure(f"port {port} is taken on this machine (make cluster or make dev running?)")
            process, log_path, argv = self.start(pod, container, f"{name}-{container['name']}")
            try:
                started = time.monotonic()
                if "startupProbe" in container:
                    probe = container["startupProbe"]
                    budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
                    wait_for(process, container, probe, "startup", budget)
                probe = container.get("readinessProbe")
                if probe is None:
                    raise Failure(f"container {container['name']} declares no readiness probe")
                result = wait_for(process, container, probe, "readiness", 60)
                say(
                    f"{name}: {' '.join(argv)} ready in {time.monotonic() - started:.1f} s ({result})"
                )
            except Failure as e:
                stop(process, 5)
                raise Failure(f"{name}/{container['name']}: {e.args[0]}", log_path) from None
            grace = pod.get("terminationGracePeriodSeconds", 30)
            code = stop(process, grace)
            if code not in (0, -signal.SIGTERM):
                raise Failure(f"{name}/{container['name']}: exit {code} on SIGTERM", log_path)
            say(f"{name}: stopped on SIGTERM within {grace} s (exit {code})")


def stop(process, grace):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "killed after the grace period"
    return process.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", required=True)
    parser.add_argument("--values", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--dockerfile", default=os.path.join(ROOT, "deploy", "Dockerfile"))
    parser.add_argument("--only", default="")
    parser.add_argument("--expect-failure", default="")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("rehearse: needs root (mount namespaces, chroot), as a container runtime does", file=sys.stderr)
        return 2

    with open(args.values, encoding="utf-8") as f:
        values = json.load(f)
    objects = with_values(load_objects(args.manifests), values)
    stages = dockerfile_stages(args.dockerfile)
    sources = {
        "build:/src/target/release/flash-sale": os.path.abspath(args.binary),
        "pages:/src/static/": os.path.join(ROOT, "static"),
    }
    images = {"flash-sale": image_of(stages["app"], sources), "flash-sale-edge": image_of(stages["edge"], sources)}
    services = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"]
    work = tempfile.mkdtemp(prefix="flash-sale-rehearsal-")
    rehearsal = Rehearsal(objects, images, work, services)
    only = [n for n in args.only.split(",") if n]
    ours = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and all(rehearsal.image_for(c["image"]) for c in o["spec"]["template"]["spec"]["containers"])
        and (not only or o["metadata"]["name"] in only)
    ]
    if not ours:
        print("rehearse: no workload of ours in the manifests", file=sys.stderr)
        return 1
    failed, log = None, ""
    try:
        for deployment in ours:
            try:
                rehearsal.workload(deployment)
            except Failure as e:
                failed = e
                if len(e.args) > 1:
                    with open(e.args[1], encoding="utf-8", errors="replace") as f:
                        log = f.read()
                break
    finally:
        if not args.keep:
            subprocess.run(["umount", "-R", "-q", work], check=False, stderr=subprocess.DEVNULL)
            shutil.rmtree(work, ignore_errors=True)
    if args.expect_failure:
        if failed is None:
            print(f"rehearse: expected a failure ({args.expect_failure}), but every workload became ready", file=sys.stderr)
            return 1
        if args.expect_failure not in failed.args[0] + log:
            print(f"rehearse: failed, but not with {args.expect_failure!r}: {failed.args[0]}\n{log[-2000:]}", file=sys.stderr)
            return 1
        say(f"failed as expected: {failed.args[0]}")
        return 0
    if failed is not None:
        print(f"rehearse: {failed.args[0]}", file=sys.stderr)
        if log:
            print("--- its last lines:\n" + "\n".join(log.splitlines()[-30:]), file=sys.stderr)
        return 1
    say(f"{len(ours)} workloads became ready: {', '.join(o['metadata']['name'] for o in ours)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
