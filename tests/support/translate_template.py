"""Run SAM's transform on template.yaml, as CloudFormation would, and print the result as JSON.

A template that declares `AWS::LanguageExtensions` first goes through the SAM CLI's local
implementation of that transform (the one `sam build --language-extensions` uses), which resolves
`Fn::If` on parameter-only conditions before SAM's transform sees them, as CloudFormation does.

Runs with the SAM CLI venv's Python (samtranslator lives there). Usage:
    .venv-sam/bin/python translate_template.py TEMPLATE [Param=Value ...]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# What `sam deploy` fills in after pushing the image; the transform insists on it.
PLACEHOLDER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/skewless:latest"


class _NoManagedPolicies:
    """The template attaches no AWS managed policy by name, so there is nothing to look up."""

    def load(self) -> dict[str, str]:
        return {}


def _language_extensions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """AWS::LanguageExtensions as the SAM CLI applies it locally (a no-op if the template lacks it)."""
    # This script's folder holds tests/support/samcli.py, which would shadow the SAM CLI package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.modules.pop("samcli", None)
    from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions

    expanded: dict[str, Any] = expand_language_extensions(template, parameters, enabled=True).expanded_template
    return expanded


def main(argv: list[str]) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(argv[0]) as fh:
        template: dict[str, Any] = yaml_parse(fh.read())
    parameters = dict(arg.split("=", 1) for arg in argv[1:])
    template = _language_extensions(template, parameters)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and resource["Properties"].get("PackageType") == "Image":
            resource["Properties"].setdefault("ImageUri", PLACEHOLDER_IMAGE)
    print(json.dumps(transform(template, parameters, _NoManagedPolicies()), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
