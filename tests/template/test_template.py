"""template.yaml: `sam validate --lint`, SAM's transform with every option, least-privilege IAM."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from tests.support.samcli import ROOT, SAM_VENV, ensure_sam_cli, sam_env

TEMPLATE = ROOT / "template.yaml"
OPTIONS = {
    "defaults": [],
    "everything_on": [
        "ApiAuth=AWS_IAM",
        "EnableFunctionUrl=true",
        "ProvisionedConcurrency=2",
        "PreloadModel=true",
        "EnableTracing=true",
        "LogLevel=DEBUG",
        "DriftAlarmEmail=ops@example.com",
        "CaptureSampleRate=0.05",
        "DriftWindow=500",
    ],
    "public_function_url": ["EnableFunctionUrl=true"],
    "iam_auth": ["ApiAuth=AWS_IAM"],
}


@pytest.fixture(scope="module")
def sam() -> Path:
    return ensure_sam_cli()


def _translate(parameters: list[str]) -> dict[str, Any]:
    script = ROOT / "tests" / "support" / "translate_template.py"
    done = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), str(script), str(TEMPLATE), *parameters],
        capture_output=True,
        text=True,
        env=sam_env(),
    )
    assert done.returncode == 0, f"SAM's transform refused the template with {parameters}:\n{done.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(scope="module")
def translated(sam: Path) -> dict[str, Any]:
    return _translate([])


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for role in _of_type(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            out.extend(policy["PolicyDocument"]["Statement"])
    for policy in _of_type(template, "AWS::IAM::RolePolicy").values():
        out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_sam_validate_lint_passes(sam: Path) -> None:
    done = subprocess.run(
        [str(sam), "validate", "--lint", "-t", str(TEMPLATE)], capture_output=True, text=True, env=sam_env(), cwd=ROOT
    )
    assert done.returncode == 0, f"sam validate --lint:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_sam_transform_accepts_every_option(sam: Path, name: str) -> None:
    """`validate --lint` checks the defaults only; the transform must accept each option too."""
    assert "InferenceFunction" in _translate(OPTIONS[name])["Resources"]


def test_no_iam_statement_allows_every_resource_except_xray(translated: dict[str, Any]) -> None:
    for statement in _statements(translated):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all(a.startswith("xray:") for a in actions), f"'*' resource for {actions}"
    role = _of_type(translated, "AWS::IAM::Role")
    assert list(role) == ["FunctionRole"], f"SAM generated a role (with managed '*' policies): {list(role)}"
    assert not role["FunctionRole"]["Properties"].get("ManagedPolicyArns")


def test_s3_access_is_read_input_prefix_write_output_prefix(translated: dict[str, Any]) -> None:
    s3 = [s for s in _statements(translated) if any(str(a).startswith("s3:") for a in _as_list(s["Action"]))]
    by_sid = {s["Sid"]: s for s in s3}
    assert set(by_sid) == {"ReadInputPrefix", "WriteOutputPrefix", "ReadOwnOutputMarkers", "ListOutputPrefixOnly"}
    assert _as_list(by_sid["ReadInputPrefix"]["Action"]) == ["s3:GetObject"]
    assert json.dumps(by_sid["ReadInputPrefix"]["Resource"]).endswith(_prefix("InputPrefix") + '*"')
    for sid in ("WriteOutputPrefix", "ReadOwnOutputMarkers"):
        assert json.dumps(by_sid[sid]["Resource"]).endswith(_prefix("OutputPrefix") + '*"'), sid
    assert "s3:PutObject" not in json.dumps([by_sid["ReadInputPrefix"], by_sid["ReadOwnOutputMarkers"]])
    listing = by_sid["ListOutputPrefixOnly"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == _prefix("OutputPrefix") + "*", listing


def _prefix(parameter: str) -> str:
    """A prefix parameter's default: AWS::LanguageExtensions substitutes parameter values, as
    CloudFormation does, before SAM's transform runs (the raw template is checked in tests/security)."""
    default: str = _raw_template()["Parameters"][parameter]["Default"]
    assert default.endswith("/") and "*" not in default, default
    return default


def _raw_template() -> dict[str, Any]:
    data, problems = decode(str(TEMPLATE))
    assert not problems and data is not None, problems
    return dict(data)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_sqs_trigger_reports_partial_batch_failures_and_dead_letters(translated: dict[str, Any]) -> None:
    (mapping,) = _of_type(translated, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = translated["Resources"]["RequestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["RequestDeadLetterQueue", "Arn"]}


def test_both_apis_reach_the_same_proxy_route(translated: dict[str, Any]) -> None:
    http = translated["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]
    rest = translated["Resources"]["RestApi"]["Properties"]["Body"]["paths"]
    assert "/{proxy+}" in http and "/{proxy+}" in rest, (list(http), list(rest))


def test_s3_notification_is_limited_to_the_input_prefix(translated: dict[str, Any]) -> None:
    bucket = translated["Resources"]["DataBucket"]["Properties"]
    (config,) = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": _prefix("InputPrefix")}]


def test_function_environment_names_only_variables_the_app_reads(translated: dict[str, Any]) -> None:
    variables = translated["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    read = set(re.findall(r'env\.get\("([A-Z_]+)"|_\w+\(env, "([A-Z_]+)"', (ROOT / "handler/settings.py").read_text()))
    names = {a or b for a, b in read}
    ours = {v for v in variables if not v.startswith("POWERTOOLS_")}
    assert ours <= names, f"set in the template but not read by handler/settings.py: {sorted(ours - names)}"


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}


def _function_operations(template: dict[str, Any]) -> list[tuple[str, list[Any], dict[str, Any], dict[str, Any]]]:
    """(where, effective security, operation, OpenAPI body) for every API operation that invokes the function."""
    out = []
    for kind in ("AWS::ApiGateway::RestApi", "AWS::ApiGatewayV2::Api"):
        for name, api in _of_type(template, kind).items():
            body = api["Properties"]["Body"]
            for path, item in body["paths"].items():
                for method, operation in item.items():
                    integration = operation.get("x-amazon-apigateway-integration", {})
                    if method in HTTP_METHODS and "InferenceFunction" in json.dumps(integration.get("uri")):
                        security = operation.get("security", body.get("security", []))
                        out.append((f"{name} {method} {path}", security, operation, body))
    return out


def _sigv4_schemes(body: dict[str, Any]) -> set[str]:
    schemes = body.get("securityDefinitions") or body.get("components", {}).get("securitySchemes", {})
    return {k for k, v in schemes.items() if v.get("x-amazon-apigateway-authtype") == "awsSigv4"}


@pytest.mark.parametrize("name", ["iam_auth", "everything_on"])
def test_api_auth_aws_iam_protects_every_api_route_to_the_function(sam: Path, name: str) -> None:
    template = _translate(OPTIONS[name])
    operations = _function_operations(template)
    apis = {where.split()[0] for where, *_ in operations}
    assert apis == {"HttpApi", "RestApi"}, f"operations reaching the function: {[w for w, *_ in operations]}"
    for where, security, operation, body in operations:
        # Any one requirement admits a request; an empty one admits anonymous requests.
        sigv4 = _sigv4_schemes(body)
        assert security and all(req and set(req) <= sigv4 for req in security), f"{where}: not SigV4 only: {security}"
        # API Gateway calls Lambda under the function's resource policy, not with the caller's credentials.
        assert "credentials" not in operation["x-amazon-apigateway-integration"], where
    for kind in ("AWS::ApiGateway::Method", "AWS::ApiGatewayV2::Route"):
        for res_name, res in _of_type(template, kind).items():
            assert res["Properties"].get("AuthorizationType") == "AWS_IAM", res_name


def test_api_auth_none_leaves_both_apis_open(translated: dict[str, Any]) -> None:
    operations = _function_operations(translated)
    assert {where.split()[0] for where, *_ in operations} == {"HttpApi", "RestApi"}
    for where, security, _, body in operations:
        assert not security and not _sigv4_schemes(body), f"{where}: {security}"
    for kind in ("AWS::ApiGateway::Method", "AWS::ApiGatewayV2::Route"):
        assert not _of_type(translated, kind), kind


def test_language_extensions_run_before_sams_transform() -> None:
    """CloudFormation applies transforms in order: SAM's alone refuses the APIs' `!If` Auth (the
    local translation above applies the language extensions whatever the order, so check it here)."""
    assert _raw_template()["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


@pytest.mark.parametrize("alarm", ["FeatureDriftAlarm", "PredictionDriftAlarm"])
def test_drift_alarms_watch_the_dimensionless_max_series_at_the_threshold_parameter(
    translated: dict[str, Any], alarm: str
) -> None:
    """An alarm reads one series with fixed dimensions: the per-window maximum over every feature (or output)."""
    props = translated["Resources"][alarm]["Properties"]
    env = translated["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    metric = {"FeatureDriftAlarm": "FeatureDriftMax", "PredictionDriftAlarm": "PredictionDriftMax"}[alarm]
    assert (props["Namespace"], props["MetricName"]) == (env["POWERTOOLS_METRICS_NAMESPACE"], metric)
    assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    default = float(_raw_template()["Parameters"]["DriftThreshold"]["Default"])
    assert float(props["Threshold"]) == default == float(env["DRIFT_THRESHOLD"])
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["TreatMissingData"] == "notBreaching"
    assert "AlarmActions" not in props, "without DriftAlarmEmail the alarms notify no one"


def test_drift_alarms_notify_the_sns_topic_only_when_an_email_is_given(sam: Path) -> None:
    template = _translate(["DriftAlarmEmail=ops@example.com"])
    topic = template["Resources"]["DriftAlarmTopic"]
    assert topic["Condition"] == "HasDriftAlarmTopic"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": "ops@example.com"}]
    for alarm in ("FeatureDriftAlarm", "PredictionDriftAlarm"):
        assert template["Resources"][alarm]["Properties"]["AlarmActions"] == [{"Ref": "DriftAlarmTopic"}]


def test_capture_is_off_by_default_and_writes_under_the_output_prefix_when_on(
    sam: Path, translated: dict[str, Any]
) -> None:
    variables = translated["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    assert "CAPTURE_S3_URI" not in variables and "CAPTURE_SAMPLE_RATE" not in variables
    on = _translate(["CaptureSampleRate=0.05"])["Resources"]["InferenceFunction"]["Properties"]["Environment"]
    uri = json.dumps(on["Variables"]["CAPTURE_S3_URI"])
    # The role already writes under the output prefix, and objects there never trigger the function.
    assert uri.endswith(f'/{_prefix("OutputPrefix")}capture/"'), uri
    assert on["Variables"]["CAPTURE_SAMPLE_RATE"] == "0.05"
