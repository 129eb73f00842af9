"""Deployment: the bento, the images, docker compose and Kubernetes agree with each other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml
from serving import BENTOML, REPO, bentoml_server, grant

BIN = Path(sys.executable).parent
BENTOFILE = yaml.safe_load((REPO / "bentofile.yaml").read_text())
DOCKERFILES = {"cpu": REPO / "docker" / "Dockerfile", "gpu": REPO / "docker" / "Dockerfile.gpu"}
K8S = REPO / "docker" / "kubernetes"


def sh(*args, env=None, cwd=REPO, timeout=600):
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


# ---- the bento ----


@pytest.fixture(scope="module")
def demo_bento():
    """`make bento PROFILE=demo`, step by step, into the session's model store."""
    sh(str(BIN / "gore-censor"), "models", "build", "--profile", "demo", "--weights", "none")
    shutil.rmtree(REPO / "dist", ignore_errors=True)
    sh(str(BIN / "pip"), "wheel", "--quiet", "--no-deps", "-w", "dist", ".")
    out = sh(BENTOML, "build", "--output", "tag", env={"GORE_PROFILE": "demo"})
    return re.search(r"__tag__:(\S+)", out).group(1)


def test_the_bento_holds_the_services_and_the_demo_models(demo_bento):
    # Wide columns: BentoML prints through rich, which wraps long strings at 80 and breaks the YAML.
    info = yaml.safe_load(sh(BENTOML, "get", demo_bento, "-o", "yaml", env={"COLUMNS": "1000"}))
    services = {service["name"]: service for service in info["services"]}
    assert set(services) == {"Censor", "Classifier", "Segmenter"}
    assert services["Classifier"]["models"][0]["tag"].startswith("gore-classifier-demo:")
    assert services["Segmenter"]["models"][0]["tag"].startswith("gore-segmenter-demo:")


def test_the_exported_bento_serves_from_a_machine_that_never_had_the_models(demo_bento, sample_images, tmp_path):
    archive = tmp_path / "gore-censor.bento"
    sh(BENTOML, "export", demo_bento, str(archive))
    fresh = {"BENTOML_HOME": tempfile.mkdtemp(prefix="gore-test-fresh-")}
    sh(BENTOML, "import", str(archive), env=fresh)
    env = {**fresh, "GORE_ALLOW_UNTRAINED": "1", "GORE_DATA_DIR": str(tmp_path / "data")}
    with bentoml_server(env, tmp_path / "serve.log", target=demo_bento, cwd=tmp_path) as url:
        response = httpx.post(
            f"{url}/censor",
            files={"image": ("g.png", sample_images.green.read_bytes())},
            timeout=120,
            headers=grant(tmp_path / "data", "ingest"),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["demo"] is True
        and body["dry_run"] is True
        and body["models"]["classifier"].startswith("gore-classifier-demo:")
    )


# ---- the images ----


def test_dockerfiles_use_the_bentofile_python_and_pins():
    python = BENTOFILE["docker"]["python_version"]
    assert BENTOFILE["python"]["requirements_txt"] == "./requirements.txt"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILES["cpu"].read_text(), re.M), "the base built from Debian"
    assert f"python{python} " in DOCKERFILES["gpu"].read_text()
    for dockerfile in DOCKERFILES.values():
        text = dockerfile.read_text()
        assert "COPY requirements.txt" in text and "pip install -r requirements.txt" in text
        assert "pip install --no-deps ." in text, "the library itself, without re-resolving pins"
        assert f'"{BENTOFILE["service"]}"' in text, "the default command serves the bentofile's service"
        assert "/readyz" in text


def test_the_gpu_base_image_has_the_cuda_tensorflow_and_bentoml_need():
    from importlib.metadata import requires

    from bentoml._internal.container.frontend.dockerfile import SUPPORTED_CUDA_VERSIONS

    cuda = re.search(r"^FROM nvidia/cuda:(\d+\.\d+\.\d+)-cudnn-runtime", DOCKERFILES["gpu"].read_text(), re.M).group(1)
    needed = next(r for r in requires("tensorflow") if r.startswith("nvidia-cuda-runtime-cu12"))
    minimum = re.search(r">=(\d+)\.(\d+)", needed).groups()
    assert tuple(map(int, cuda.split(".")[:2])) >= tuple(map(int, minimum))
    assert cuda in SUPPORTED_CUDA_VERSIONS


# ---- docker compose ----


def compose_config(*files: str) -> dict:
    command = shutil.which("docker-compose")
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    args = [command, *(arg for f in files for arg in ("-f", f"docker/{f}")), "config"]
    return yaml.safe_load(sh(*args, env={"GORE_PROFILE": "demo"}))


def test_compose_wires_three_services_that_scale_apart():
    config = compose_config("compose.yaml")
    services = config["services"]
    assert set(services) == {"models", "classifier", "segmenter", "censor"}
    assert "service:Classifier" in services["classifier"]["command"]
    assert "service:Segmenter" in services["segmenter"]["command"]
    censor = services["censor"]
    assert censor["environment"]["GORE_CLASSIFIER_URL"] == "http://classifier:3000"
    assert censor["environment"]["GORE_SEGMENTER_URL"] == "http://segmenter:3000"
    assert censor["depends_on"] == {
        "classifier": {"condition": "service_healthy"},
        "segmenter": {"condition": "service_healthy"},
    }
    for name in ("classifier", "segmenter", "censor"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert "ports" not in services[name] or name == "censor", "only the censor API is published"
        assert "deploy" not in services[name], "the CPU variant reserves no GPU"
    assert set(config["volumes"]) == {"model-store", "image-data"}
    assert services["classifier"]["volumes"][0].startswith("model-store:") and services["classifier"]["volumes"][
        0
    ].endswith(":ro")
    assert censor["volumes"][0].startswith("image-data:")


def test_the_gpu_variant_reserves_the_gpu_for_the_model_services_only():
    services = compose_config("compose.yaml", "compose.gpu.yaml")["services"]
    for name in ("classifier", "segmenter"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert "deploy" not in services["censor"]


def test_compose_files_hold_no_secrets():
    for path in (REPO / "docker").glob("compose*.yaml"):
        assert not re.search(r"(password|secret|token|access_key)\s*[:=]\s*\S", path.read_text(), re.I), path


# ---- docker compose, shared mode (docker/compose.shared.yaml; run for real by `make compose-test`) ----

SHARED_COMPOSE_SERVICES = {"models", "classifier", "segmenter", "postgres", "s3", "censor-a", "censor-b", "proxy"}


def shared_compose_config(env_file: bool = True) -> dict:
    command = shutil.which("docker-compose")
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    args = [command, "-f", "docker/compose.shared.yaml"]
    if env_file:
        args += ["--env-file", "docker/compose.shared.test.env"]
    return yaml.safe_load(sh(*args, "config"))


def _published(port) -> tuple[str, str]:
    """(host address, published port) from either way docker-compose writes a port."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port.get("published", ""))
    *host, published, _target = str(port).split("/")[0].split(":")
    return (host[0] if host else ""), published


def _mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """{target: (source, read-only)} from either way docker-compose writes a volume."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
        else:
            source, target, *mode = volume.split(":")
            found[target] = (source, mode == ["ro"])
    return found


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(e.split("=", 1) if "=" in e else (e, None) for e in env)


def test_shared_compose_runs_two_censor_replicas_behind_one_port():
    services = shared_compose_config()["services"]
    assert set(services) == SHARED_COMPOSE_SERVICES
    a, b = services["censor-a"], services["censor-b"]
    assert _environment(a) == _environment(b), "the replicas differ only in their scratch volume and port"
    env = _environment(a)
    assert re.fullmatch(r"postgresql://gore:[^@]+@postgres:5432/gore", env["GORE_DATABASE_URL"])
    assert env["GORE_OBJECT_STORE"].startswith("s3://") and env["GORE_S3_ENDPOINT_URL"] == "http://s3:5000"
    assert env["GORE_CLASSIFIER_URL"] == "http://classifier:3000" and env["GORE_JOBS_ROOT"] == "/srv/jobs"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(env)
    for replica in (a, b):
        assert {"classifier", "segmenter", "postgres", "s3"} <= set(replica["depends_on"])
        assert all(d["condition"] == "service_healthy" for d in replica["depends_on"].values())
        assert "/readyz" in " ".join(replica["healthcheck"]["test"]) and "service:Censor" in replica["command"]
    mounts_a, mounts_b = _mounts(a), _mounts(b)
    assert mounts_a["/srv/jobs"] == mounts_b["/srv/jobs"] and mounts_a["/srv/jobs"][1], "one jobs folder, read-only"
    data = "/var/lib/gore-censor/data"
    assert mounts_a[data][0] != mounts_b[data][0], "each replica its own scratch volume"
    # One way in: the proxy on every interface; the replicas on loopback only (checks, the test).
    published = {name: [_published(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert [host for host, _ in published["proxy"]] in ([""], ["0.0.0.0"])
    assert all(host == "127.0.0.1" for name in ("censor-a", "censor-b") for host, _ in published[name])
    assert all(not ports for name, ports in published.items() if name not in ("proxy", "censor-a", "censor-b"))
    assert set(services["proxy"]["depends_on"]) == {"censor-a", "censor-b"}
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"][0] == "postgres-data"


def test_the_proxy_round_robins_over_exactly_the_compose_replicas():
    conf = (REPO / "docker" / "shared" / "nginx.conf").read_text()
    upstream = re.search(r"upstream censor \{(.*?)\}", conf, re.S).group(1)
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream, re.M)
    assert servers == [("censor-a", "3000"), ("censor-b", "3000")]
    assert not re.search(r"\b(ip_hash|hash|least_conn|sticky)\b", upstream), "round robin: any replica answers"
    assert "proxy_pass http://censor;" in conf


def test_the_shared_compose_file_takes_its_secrets_from_the_environment():
    """No password or key in the file: GORE_POSTGRES_PASSWORD is required, the AWS keys pass through
    from the environment (unset: boto3's other sources). The test values live in their own file."""
    with pytest.raises(AssertionError, match="GORE_POSTGRES_PASSWORD"):
        shared_compose_config(env_file=False)
    text = (REPO / "docker" / "compose.shared.yaml").read_text()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert re.search(rf"^\s*- {key}$", text, re.M), f"{key} is passed through, with no value here"
    test_values = (REPO / "docker" / "compose.shared.test.env").read_text()
    assert "ONLY for a test" in test_values and "GORE_POSTGRES_PASSWORD=" in test_values


def test_every_image_runs_as_a_non_root_user_and_takes_the_ca_bundle_as_a_secret():
    for path in (REPO / "docker").glob("Dockerfile*"):
        text = path.read_text()
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        if path.name == "Dockerfile.models":  # FROM a gore-censor image: its USER (gore) holds.
            assert not users or users[-1] not in ("root", "0"), path.name
            continue
        assert users and users[-1] not in ("root", "0"), f"{path.name} ends as root"
        if "pip install" in text:
            assert "--mount=type=secret,id=ca" in text, f"{path.name}: the CA bundle comes as the build secret"
        assert not re.search(r"^(COPY|ADD)\s.*\.(crt|pem)\b", text, re.M | re.I), "no CA bundle in a layer"
        if path.name != "Dockerfile.gpu":
            assert re.search(r"^ARG BASE_IMAGE=gore-censor-base:bookworm$", text, re.M), path.name
            assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), path.name


def test_the_cpu_image_serves_the_bentofile_python():
    """The base image is Debian bookworm's python3 (make base-image): the build stops if it is not
    the bentofile's Python."""
    python = BENTOFILE["docker"]["python_version"]
    major, minor = python.split(".")
    text = DOCKERFILES["cpu"].read_text()
    assert f"sys.version_info[:2] == ({major}, {minor})" in text
    assert "bookworm" in (REPO / "docker" / "base-image.sh").read_text()  # Debian 12: Python 3.11


# ---- Kubernetes ----
#
# docker/kubernetes is the embedded mode (one censor replica), docker/kubernetes/shared the shared
# mode (several, over PostgreSQL and S3); both build on docker/kubernetes/base. CI has no kubectl,
# so kustomize() renders them here: resources, components, strategic-merge patches (merge keys as
# Kubernetes declares them for what the patches touch, null deletes, `$patch: delete`), namespace
# and images. Where kubectl or kustomize is installed, a test checks it renders the same.

SHARED = K8S / "shared"
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath"}
CENSOR_LABELS = {"app.kubernetes.io/name": "gore-censor", "app.kubernetes.io/component": "censor"}
SECRET_SETTINGS = ("GORE_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def kustomize(root: Path, docs: list[dict] | None = None, components: tuple[str, ...] = ()) -> list[dict]:
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    docs = list(docs or [])
    for entry in kustomization.get("resources", []):
        path = (root / entry).resolve()
        docs += kustomize(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for entry in [*kustomization.get("components", []), *components]:
        docs = kustomize((root / entry).resolve(), docs)
    for entry in kustomization.get("patches", []):
        patch = yaml.safe_load((root / entry["path"]).read_text())
        [at] = [i for i, d in enumerate(docs) if _ident(d) == _ident(patch)]
        if patch.get("$patch") == "delete":
            del docs[at]
        else:
            docs[at] = _merge(docs[at], patch)
    for doc in docs:
        if "namespace" in kustomization and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kustomization["namespace"]
        for container in _pod(doc).get("containers", []) if doc["kind"] == "Deployment" else []:
            for image in kustomization.get("images", []):
                if container["image"] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    return docs


def _ident(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _merge(base, patch):
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key in MERGE_KEYS and isinstance(out.get(key), list):
            by = MERGE_KEYS[key]
            old = {item[by]: item for item in out[key]}
            new = {item[by]: item for item in value}
            # The patch's new items first, then the base's in place, merged (kustomize's order varies).
            out[key] = [v for k, v in new.items() if k not in old] + [_merge(v, new.get(k, {})) for k, v in old.items()]
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _sorted(value):
    """Merged lists in one order (kustomize's depends on the order patches came in; nothing here
    depends on it: no $(VAR) refers to another variable)."""
    if isinstance(value, dict):
        return {
            k: sorted(map(_sorted, v), key=lambda item: item[MERGE_KEYS[k]]) if k in MERGE_KEYS else _sorted(v)
            for k, v in value.items()
        }
    return [_sorted(item) for item in value] if isinstance(value, list) else value


def _pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def manifests() -> list[dict]:
    """The embedded mode, as `kubectl apply -k docker/kubernetes` applies it."""
    return kustomize(K8S)


def shared(*components: str) -> list[dict]:
    """The shared mode, as `kubectl apply -k docker/kubernetes/shared` applies it."""
    return kustomize(SHARED, components=components)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_tests_render_what_kustomize_renders(tmp_path):
    tool = shutil.which("kustomize") or shutil.which("kubectl")
    if tool is None:
        pytest.skip("neither kustomize nor kubectl installed: the tests' own rendering is checked no further")
    command = [tool] if tool.endswith("kustomize") else [tool, "kustomize"]
    # The optional component, switched on as shared/kustomization.yaml says: by uncommenting it.
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    overlay = copy / "shared" / "kustomization.yaml"
    text = overlay.read_text().replace("# components:\n#   - jobs-root", "components:\n  - jobs-root")
    assert text != overlay.read_text()
    overlay.write_text(text)
    for root, ours in ((K8S, manifests()), (SHARED, shared()), (copy / "shared", shared("jobs-root"))):
        theirs = [d for d in yaml.safe_load_all(sh(*command, str(root))) if d]
        assert {_ident(d): _sorted(d) for d in theirs} == {_ident(d): _sorted(d) for d in ours}, root
        assert len(theirs) == len(ours)


def test_manifests_pass_strict_schema_validation(tmp_path):
    renders = {"embedded": manifests(), "shared": shared(), "jobs": shared("jobs-root")}
    files = []
    for name, docs in renders.items():
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(yaml.safe_dump_all(docs))
    sh(str(BIN / "kubernetes-validate"), "--strict", "--quiet", *map(str, files), str(SHARED / "secret.example.yaml"))
    broken = tmp_path / "broken.yaml"  # The validator must be able to say no.
    docs = shared()
    by_kind(docs, "Deployment")["censor"]["spec"]["replicas"] = "two"
    broken.write_text(yaml.safe_dump_all(docs))
    assert (
        subprocess.run(
            [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(broken)], capture_output=True
        ).returncode
        != 0
    )


def test_model_services_are_gpu_deployments_scaled_on_their_own():
    docs = manifests()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    autoscalers = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert set(deployments) == {"classifier", "segmenter", "censor"} and services == set(deployments)
    assert autoscalers == {"classifier", "segmenter"}
    for name in ("classifier", "segmenter"):
        pod = deployments[name]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert (
            container["resources"]["limits"]["nvidia.com/gpu"] == 1 and "nvidia.com/gpu.present" in pod["nodeSelector"]
        )
        assert container["image"].rpartition(":")[0].endswith("/gore-censor-models"), "the model store is baked in"
        assert f"service:{name.capitalize()}" in container["command"]
    censor = deployments["censor"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in censor["resources"].get("limits", {})
    assert censor["image"].rpartition(":")[0].endswith("/gore-censor")
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["GORE_CLASSIFIER_URL"].startswith("http://classifier.") and config["GORE_SEGMENTER_URL"].startswith(
        "http://segmenter."
    )


def assert_hardened(deployments: dict[str, dict]) -> None:
    """Non-root, no privilege escalation, no capability, a read-only root with writable volumes only
    where BentoML and the data need them, no service-account token."""
    assert deployments
    for name, deployment in deployments.items():
        pod = _pod(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
        [container] = pod["containers"]
        hardening = container["securityContext"]
        assert hardening.get("runAsNonRoot", True) is True and hardening.get("runAsUser", 1) != 0, name
        assert hardening["allowPrivilegeEscalation"] is False and hardening["readOnlyRootFilesystem"] is True, name
        assert hardening["capabilities"]["drop"] == ["ALL"] and "add" not in hardening["capabilities"], name
        assert "privileged" not in hardening and "hostNetwork" not in pod and "hostPID" not in pod, name
        writable = {mount["mountPath"] for mount in container["volumeMounts"] if not mount.get("readOnly")}
        assert "/tmp" in writable and "/var/lib/gore-censor/data" in writable, name


def test_pods_are_hardened_and_the_censor_runs_alone_on_its_volume():
    """Embedded mode: one censor replica (its SQLite stores are not safe across hosts), never two at
    once, even while rolling out, on a ReadWriteOnce claim; nothing scales it."""
    docs = manifests()
    deployments = by_kind(docs, "Deployment")
    assert_hardened(deployments)
    censor = deployments["censor"]["spec"]
    assert censor["replicas"] == 1 and censor["strategy"] == {"type": "Recreate"}
    [claim] = by_kind(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {"persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}, "name": "image-data"} in _pod(
        deployments["censor"]
    )["volumes"]
    assert "censor" not in {
        d["spec"]["scaleTargetRef"]["name"] for d in by_kind(docs, "HorizontalPodAutoscaler").values()
    }
    assert "GORE_DATABASE_URL" not in yaml.safe_dump_all(docs), "the embedded mode has no shared stores"
    assert "# EMBEDDED MODE" in (K8S / "base" / "censor.yaml").read_text(), "the reason for one replica, beside it"


@pytest.mark.parametrize("render", [manifests, shared], ids=["embedded", "shared"])
def test_only_the_censor_reaches_the_model_services(render):
    [policy] = [
        d for d in render() if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].startswith("model-services")
    ]
    [selector] = policy["spec"]["podSelector"]["matchExpressions"]
    assert set(selector["values"]) == {"classifier", "segmenter"} and selector["operator"] == "In"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"] == CENSOR_LABELS
    assert "namespaceSelector" not in source and "ipBlock" not in source
    assert rule["ports"] == [{"protocol": "TCP", "port": 3000}]


# ---- Kubernetes, shared mode ----


def test_shared_mode_scales_the_censor_with_no_shared_volume():
    docs = shared()
    censor = by_kind(docs, "Deployment")["censor"]
    spec = censor["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate" and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    autoscaler = by_kind(docs, "HorizontalPodAutoscaler")["censor"]["spec"]
    assert (
        autoscaler["scaleTargetRef"]["name"] == "censor" and 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    )
    budget = by_kind(docs, "PodDisruptionBudget")["censor"]["spec"]
    assert budget["selector"]["matchLabels"] == CENSOR_LABELS and budget["maxUnavailable"] < spec["replicas"]
    pod = _pod(censor)
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v], "shared state lives in PostgreSQL and S3"
    assert not by_kind(docs, "PersistentVolumeClaim"), "the embedded mode's data claim is not created"
    [container] = pod["containers"]
    data_dir = next(e["value"] for e in container["env"] if e["name"] == "GORE_DATA_DIR")
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert set(volume) == {"name", "emptyDir"}, "per-replica scratch and videos"
    # The model services are the embedded mode's, untouched.
    embedded = by_kind(manifests(), "Deployment")
    for name in ("classifier", "segmenter"):
        assert by_kind(docs, "Deployment")[name] == embedded[name]
    assert_hardened(by_kind(docs, "Deployment"))


def test_shared_mode_takes_the_database_url_and_s3_keys_from_secrets_only():
    docs = shared()
    deployments = by_kind(docs, "Deployment")
    [censor] = _pod(deployments["censor"])["containers"]
    env = {e["name"]: e for e in censor["env"]}
    for name in SECRET_SETTINGS:
        assert set(env[name]) == {"name", "valueFrom"} and set(env[name]["valueFrom"]) == {"secretKeyRef"}, name
    assert not env["GORE_DATABASE_URL"]["valueFrom"]["secretKeyRef"].get("optional", False), "no database: no start"
    # Nowhere a literal: no container sets them by value, no ConfigMap holds them, no Secret is shipped.
    for deployment in deployments.values():
        for container in _pod(deployment)["containers"]:
            assert not [e for e in container.get("env", []) if e["name"] in SECRET_SETTINGS and "value" in e]
    for config in by_kind(docs, "ConfigMap").values():
        assert not set(config["data"]) & set(SECRET_SETTINGS)
    assert not by_kind(docs, "Secret"), "the team creates the Secrets; the overlay holds no credential"
    # The example names exactly the Secrets and keys the pod reads, every value a marked placeholder.
    example = {
        (d["metadata"]["name"], key): value
        for d in yaml.safe_load_all((SHARED / "secret.example.yaml").read_text())
        for key, value in d["stringData"].items()
    }
    read = {
        (env[n]["valueFrom"]["secretKeyRef"]["name"], env[n]["valueFrom"]["secretKeyRef"]["key"])
        for n in SECRET_SETTINGS
    }
    assert set(example) == read
    assert all("CHANGE-ME" in value for value in example.values())
    assert example[next(k for k in read if k[1] == "GORE_DATABASE_URL")].startswith("postgresql://")
    # The object store's settings come from a ConfigMap the censor (and only it) reads.
    shared_config = by_kind(docs, "ConfigMap")["gore-censor-shared"]["data"]
    assert shared_config["GORE_OBJECT_STORE"].startswith("s3://") and "GORE_S3_ENDPOINT_URL" in shared_config
    assert {"configMapRef": {"name": "gore-censor-shared"}} in censor["envFrom"]
    assert {"configMapRef": {"name": "gore-censor"}} in censor["envFrom"], "the base's settings still apply"
    for name in ("classifier", "segmenter"):
        assert "gore-censor-shared" not in yaml.safe_dump(deployments[name]) and "secretKeyRef" not in yaml.safe_dump(
            deployments[name]
        )


def test_shared_mode_censor_egress_reaches_dns_models_postgresql_and_the_object_store_only():
    policies = by_kind(shared(), "NetworkPolicy")
    [egress] = [p for p in policies.values() if "Egress" in p["spec"]["policyTypes"]]
    assert egress["spec"]["podSelector"]["matchLabels"] == CENSOR_LABELS
    rules = egress["spec"]["egress"]
    assert all(rule.get("ports") for rule in rules), "no rule opens every port"
    ports = {(port["protocol"], port["port"]) for rule in rules for port in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 3000), ("TCP", 5432), ("TCP", 443)}
    [to_models] = [rule for rule in rules if rule["ports"] == [{"protocol": "TCP", "port": 3000}]]
    [peer] = to_models["to"]
    assert set(peer["podSelector"]["matchExpressions"][0]["values"]) == {"classifier", "segmenter"}
    text = (SHARED / "network.yaml").read_text()
    assert "5432" in text and "443" in text and "GORE_S3_ENDPOINT_URL" in text, "the ports are documented"


def test_shared_mode_jobs_root_is_one_read_only_many_volume_every_replica_mounts_read_only():
    docs = shared("jobs-root")
    pod = _pod(by_kind(docs, "Deployment")["censor"])
    [container] = pod["containers"]
    root = next(e["value"] for e in container["env"] if e["name"] == "GORE_JOBS_ROOT")
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == root]
    assert mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["name"] == mount["name"] and volume["persistentVolumeClaim"]["readOnly"] is True
    [claim] = by_kind(docs, "PersistentVolumeClaim").values()
    assert claim["metadata"]["name"] == volume["persistentVolumeClaim"]["claimName"]
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert_hardened(by_kind(docs, "Deployment"))
    assert "GORE_JOBS_ROOT" not in yaml.safe_dump_all(shared()), "off unless switched on"


# ---- one process per service, wired by URL (what compose and Kubernetes run) ----


def test_censor_calls_model_services_over_http_with_no_model_store_of_its_own(red_model_tags, sample_images, tmp_path):
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(
                bentoml_server({"GORE_PROFILE": "redtest"}, tmp_path / f"{name}.log", target=f"service:{name}")
            )
            for name in ("Classifier", "Segmenter")
        }
        env = {
            "BENTOML_HOME": tempfile.mkdtemp(prefix="gore-test-empty-"),
            "GORE_DATA_DIR": str(tmp_path / "data"),
            "GORE_CLASSIFIER_URL": urls["Classifier"],
            "GORE_SEGMENTER_URL": urls["Segmenter"],
        }
        censor = stack.enter_context(bentoml_server(env, tmp_path / "censor.log"))
        response = httpx.post(
            f"{censor}/censor",
            files={"image": ("r.png", sample_images.red_blob.read_bytes())},
            timeout=120,
            headers=grant(tmp_path / "data", "ingest"),
        )
    assert response.status_code == 200, response.text
    assert response.json()["gore"] is True and response.json()["models"]["classifier"] == red_model_tags["classifier"]


def test_orchestrators_wait_longer_than_the_service_takes_to_stop():
    """SIGTERM: the service finishes or refuses in-flight work and exits within GORE_SHUTDOWN_GRACE_S;
    compose and Kubernetes must not kill it before that."""
    from pipeline.config import Settings

    grace = Settings().shutdown_grace_s
    services = compose_config("compose.yaml")["services"]
    for name in ("classifier", "segmenter", "censor"):
        assert _seconds(services[name]["stop_grace_period"]) > grace, name
    for deployment in (d for d in manifests() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace
        [container] = pod["containers"]
        assert container["readinessProbe"]["timeoutSeconds"] > Settings().probe_timeout_s


def _seconds(value) -> float:
    """docker-compose config writes durations as '30s' or as nanoseconds."""
    if isinstance(value, str) and value.endswith("s"):
        return float(value[:-1])
    return float(value) / 1e9
