"""A user's model deployed as the README shows it: from a `.keras` file whose custom layer lives in the user's own
module, exported into a folder outside this repository, to `sam build` of an image that serves it (issue 22).

The README's block is read from README.md and run as pasted, in one shell, up to (not including) `sam deploy`. One
thing differs: SAM_BUILD_ARGS points `make sam-build` at a copy of template.yaml on the local Debian base image,
since nothing can be pulled here (as the other sam tests build). What the built image must answer is training's
own: `model.predict` in tests/support/user_project.py, never the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.docs.snippets import Block, blocks
from tests.env.sam.conftest import FUNCTION, _test_template, _trust_host_ca_certificates
from tests.support.docker_engine import DockerEngine, Step
from tests.support.samcli import ROOT, ensure_sam_cli, sam_env
from tests.support.user_project import UserProject, assert_predictions, write_project

pytestmark = pytest.mark.sam

ARTIFACT = Path("/tmp/artifacts/scorer")  # where the README's export writes
STAGED = ROOT / "build-inputs" / "models"  # where `make sam-build` stages it (the Makefile's STAGED_MODELS)
DEPLOY = ".venv-sam/bin/sam deploy "
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Built:
    project: UserProject
    env: dict[str, str]  # what the README's commands ran with
    template: Path  # template.yaml on the local base image
    work: Path
    output: str  # everything the README's commands printed
    deploy_command: str  # the README's last line
    image: str

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((ARTIFACT / "manifest.json").read_text())
        return data


def _readme_block() -> Block:
    found = [b for b in blocks(ROOT / "README.md") if "make sam-build" in b.text and "skewless export" in b.text]
    assert len(found) == 1, f"README.md should have one block from `skewless export` to `make sam-build`: {found}"
    return found[0]


@pytest.fixture(scope="module")
def built(
    engine: DockerEngine, base_image: str, step: Step, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    commands = [c.text for c in _readme_block().commands]
    assert commands[-1].startswith(DEPLOY), f"the README's block should end with `{DEPLOY}...`: {commands[-1]}"
    home = tmp_path_factory.mktemp("home")  # ~ of the README: ~/my_project is the user's, ~/skewless this checkout
    project = write_project(home / "my_project", module="my_layers")
    (home / "skewless").symlink_to(ROOT)
    work = tmp_path_factory.mktemp("sam-user")
    template = _test_template(work, base_image)
    ensure_sam_cli(step)
    _trust_host_ca_certificates()
    build_args = f"-t {template} --base-dir {ROOT} --build-dir {work / 'build'}"
    env = sam_env(DOCKER_HOST=engine.host, HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", SAM_BUILD_ARGS=build_args)
    script = "set -e\n" + "\n".join(commands[:-1]) + "\n"
    try:
        with step("the README's way from a user's .keras file to `make sam-build` (about 30 s; minutes if uncached)"):
            done = subprocess.run(
                ["bash", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=1800
            )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"the README's block failed ({done.returncode}):\n{output[-6000:]}"
        images = set(re.findall(r"ImageUri:\s*(\S+)", (work / "build" / "template.yaml").read_text()))
        assert len(images) == 1, f"sam build made {len(images)} images: {sorted(images)}"
        yield Built(project, env, template, work, output, commands[-1], images.pop())
    finally:
        shutil.rmtree(STAGED, ignore_errors=True)
        shutil.rmtree(ARTIFACT, ignore_errors=True)
        with contextlib.suppress(OSError):  # /tmp/artifacts, if the README's export made it and it is empty now
            ARTIFACT.parent.rmdir()


def test_the_readme_way_builds_an_image_whose_golden_replay_ran_on_the_users_model(built: Built) -> None:
    out = built.output
    assert f"exported scorer version 1 to {ARTIFACT}:" in out and "carried in code/: my_layers" in out, out[-6000:]
    digest = built.manifest["digest"]
    assert f"\nscorer {digest}\n" in out, out[-6000:]  # what make sam-build staged, read from the manifest itself
    # The image build's own replay, on the runtime it is built for (tensorflow), then on the one that serves (auto).
    for runtime in ("tensorflow", "litert"):
        assert f"all 2 golden cases of 'scorer' match training on {runtime}" in out, out[-6000:]
    assert "golden cases of 'churn'" not in out, "the image should hold the user's model only"
    # The deploy line make prints is the README's, with the digest in place of its `...`.
    printed = re.search(r"^built; deploy with: (.*)$", out, re.M)
    assert printed is not None, out[-3000:]
    assert printed[1] == built.deploy_command.replace("sha256:...", digest), (printed[1], built.deploy_command)
    assert "ModelDigest=" in built.deploy_command and DIGEST.fullmatch(digest)


def test_the_built_function_answers_as_training_and_serves_only_the_users_artifact(
    built: Built, engine: DockerEngine
) -> None:
    env = engine.run("image", "inspect", "--format", "{{json .Config.Env}}", built.image).stdout
    assert f"MODEL_DIGEST={built.manifest['digest']}" in json.loads(env), env  # pinned to the user's artifact
    probe = engine.run(
        "run", "--rm", "--network", "none", "--entrypoint", "python", built.image,
        "-c", "import importlib.util as u; print(u.find_spec('my_layers'))", check=False,
    )  # fmt: skip
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr
    # The function as the template runs it (MODEL_DIR from ModelName, the digest pinned), invoked directly.
    done, answer = _invoke(built, "three_rows", f"ModelName=scorer ModelDigest={built.manifest['digest']}")
    assert_predictions(answer, built.project.expected["three_rows"], "sam local invoke of the user's model")
    # The template hands ModelDigest to the function: pinned to another valid artifact's digest, it refuses to serve.
    other = json.loads((ROOT / "model_artifacts" / "churn" / "manifest.json").read_text())["digest"]
    done, answer = _invoke(built, "three_rows", f"ModelName=scorer ModelDigest={other}")
    assert answer["errorType"] == "ModelUnavailable", answer
    assert json.loads(answer["errorMessage"])["code"] == "artifacts_invalid", answer
    assert f"MODEL_DIGEST pins {other[:19]}..., but the artifact in /var/task/model_artifacts/scorer is" in done.stderr


def _invoke(built: Built, case: str, overrides: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`sam local invoke` of the built function with one of the user's requests as its event (a direct invoke)."""
    event = built.work / f"{case}.json"
    event.write_text(json.dumps(built.project.requests[case]))
    done = subprocess.run(
        [
            str(ROOT / ".venv-sam" / "bin" / "sam"), "local", "invoke", FUNCTION, "-t",
            str(built.work / "build" / "template.yaml"), "-e", str(event), "--parameter-overrides", overrides,
            "--skip-pull-image",
        ],
        capture_output=True, text=True, env=built.env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done, json.loads([line for line in done.stdout.splitlines() if line.strip()][-1])


def _tampered(built: Built, tmp_path: Path, name: str) -> tuple[Path, str]:
    """A copy of the user's artifact, outside the repository, with one file changed; and the refusal it must get."""
    copy = Path(shutil.copytree(ARTIFACT, tmp_path / "scorer"))
    path = copy / name
    text = path.read_text()
    changed = text.replace("factor: float = 3.0", "factor: float = 2.0") if name.startswith("code/") else None
    if changed is None:  # golden.json: training's answer to the first case, made another
        golden = json.loads(text)
        golden["cases"][0]["expected"]["output_0"][0][0] += 0.5
        changed = json.dumps(golden)
    assert changed != text, f"nothing changed in {name}"
    path.write_text(changed)
    actual, expected = hashlib.sha256(changed.encode()).hexdigest(), built.manifest["files"][name]
    return copy, (
        f"error: artifact {name} does not match manifest.json (sha256 {actual[:12]}..., expected {expected[:12]}...): "
        f"it was changed after export; re-export the model or restore the file"
    )


@pytest.mark.parametrize("name", ["golden.json", "code/my_layers.py"])
def test_a_tampered_artifact_fails_the_build_with_one_line(built: Built, tmp_path: Path, name: str) -> None:
    copy, refusal = _tampered(built, tmp_path, name)
    # As the README runs it: make sam-build checks the folder before any image is built.
    done = subprocess.run(
        ["make", "--no-print-directory", "sam-build", f"MODEL_DIR={copy}"],
        capture_output=True, text=True, env=built.env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode != 0 and refusal in done.stderr.splitlines(), done.stdout[-3000:] + done.stderr[-3000:]
    assert "Building codeuri" not in done.stdout + done.stderr, "sam build ran on a tampered artifact"
    # Staged by hand, past that check: the image build's own replay refuses it, with the same line.
    shutil.rmtree(STAGED, ignore_errors=True)
    shutil.copytree(copy, STAGED / "scorer")
    done = subprocess.run(
        [
            str(ROOT / ".venv-sam" / "bin" / "sam"), "build", "-t", str(built.template), "--base-dir", str(ROOT),
            "--build-dir", str(tmp_path / "build"), "--parameter-overrides", "ModelDir=build-inputs/models",
        ],
        capture_output=True, text=True, env=built.env, cwd=ROOT, timeout=1800,
    )  # fmt: skip
    log = ANSI.sub("", done.stdout + done.stderr)  # docker colours a build step's stderr
    assert done.returncode != 0 and refusal in log.splitlines(), log[-5000:]
