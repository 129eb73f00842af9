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
    assert re.search(rf"^FROM python:{re.escape(python)}-slim", DOCKERFILES["cpu"].read_text(), re.M)
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


# ---- Kubernetes ----


def manifests() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def test_manifests_pass_strict_schema_validation(tmp_path):
    files = [str(K8S / name) for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]]
    sh(str(BIN / "kubernetes-validate"), "--strict", "--quiet", *files)
    broken = tmp_path / "broken.yaml"  # The validator must be able to say no.
    broken.write_text((K8S / "censor.yaml").read_text().replace("replicas: 1", "replicas: one"))
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
        assert container["image"] == "gore-censor-models", "the model store is baked into the image"
        assert f"service:{name.capitalize()}" in container["command"]
    censor = deployments["censor"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in censor["resources"].get("limits", {})
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["GORE_CLASSIFIER_URL"].startswith("http://classifier.") and config["GORE_SEGMENTER_URL"].startswith(
        "http://segmenter."
    )


def test_pods_are_hardened_and_the_censor_runs_alone_on_its_volume():
    """Non-root, no privilege escalation, no capability, a read-only root with writable volumes only
    where BentoML and the data need them, no service-account token; and one censor replica (its
    SQLite stores are not safe across hosts), never two at once, even while rolling out."""
    deployments = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "Deployment"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
        [container] = pod["containers"]
        hardening = container["securityContext"]
        assert hardening["allowPrivilegeEscalation"] is False and hardening["readOnlyRootFilesystem"] is True, name
        assert hardening["capabilities"]["drop"] == ["ALL"], name
        writable = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/tmp" in writable and "/var/lib/gore-censor/data" in writable, name
    censor = deployments["censor"]["spec"]
    assert censor["replicas"] == 1 and censor["strategy"]["type"] == "Recreate"
    claim = next(d for d in manifests() if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_only_the_censor_reaches_the_model_services():
    [policy] = [
        d for d in manifests() if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].startswith("model-services")
    ]
    [selector] = policy["spec"]["podSelector"]["matchExpressions"]
    assert set(selector["values"]) == {"classifier", "segmenter"}
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "censor"
    assert "namespaceSelector" not in source and "ipBlock" not in source


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
