"""The SAM CLI (in its own venv: its boto3 pin conflicts with ours) and the Lambda runtime
interface emulator binary that its wheel ships."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.docker_engine import Step, silent_step

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "scripts" / "requirements-sam.txt"
SAM_VENV = Path(os.environ.get("SAM_VENV", ROOT / ".venv-sam"))
RIE_DIR = ROOT / ".work" / "rie"
RIE_MEMBER = "samcli/local/rapid/aws-lambda-rie-x86_64"


def sam_pin() -> str:
    """`aws-sam-cli==X.Y.Z`, the one line of scripts/requirements-sam.txt."""
    return REQUIREMENTS.read_text().strip()


# Host variables a `sam` command may see. SAM copies any host variable that the template also
# declares (MODEL_DIR, POWERTOOLS_*, ...) into the function, so the rest stay out.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "DOCKER_HOST", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def sam_env(**extra: str) -> dict[str, str]:
    """The environment for every `sam` command: no telemetry, no AWS account, and no HTTPS
    anywhere (its version check and any AWS call fail at once on a refused proxy; it talks to
    Docker over a unix socket and to the containers over plain HTTP)."""
    return {
        **{k: v for k, v in os.environ.items() if k in _PASSED_THROUGH},
        "SAM_CLI_TELEMETRY": "0",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }


def ensure_sam_cli(step: Step = silent_step) -> Path:
    """Path of `sam`, creating its venv when it is missing or at another version."""
    sam = SAM_VENV / "bin" / "sam"
    version = sam_pin().split("==")[1]
    if sam.exists():
        done = subprocess.run([str(sam), "--version"], capture_output=True, text=True, env=sam_env())
        if done.returncode == 0 and version in done.stdout:
            return sam
    with step(f"installing the SAM CLI {version} into {SAM_VENV} (about 40 s)"):
        if not (SAM_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(SAM_VENV)], check=True)
        subprocess.run(
            [str(SAM_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True
        )
    return sam


def rie_binary() -> Path:
    """The emulator, unzipped from the aws-sam-cli wheel (downloaded once, about a second)."""
    binary = RIE_DIR / "aws-lambda-rie-x86_64"
    if binary.exists():
        return binary
    RIE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(RIE_DIR), sam_pin()], check=True
    )
    wheel = next(RIE_DIR.glob("aws_sam_cli-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        binary.write_bytes(zf.read(RIE_MEMBER))
    binary.chmod(0o755)
    wheel.unlink()
    return binary
