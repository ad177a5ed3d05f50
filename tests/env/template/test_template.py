"""template.yaml: `sam validate --lint`, SAM's transform with every option, least-privilege IAM, and what is
secure by default (issue 23): who may call under each ApiAuth, the ceilings, the data's expiry and encryption,
the S3 trigger's on-failure destination, the alarms and whom they reach. Every check reads SAM's transformed
output, which is what CloudFormation deploys."""

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
        "BulkMaxConcurrency=1000",
        "BulkBatchSize=1024",
        "BulkToleratedFailurePercentage=5",
        "BulkResultsPrefix=scored/bulk/",
        "LabelsPrefix=ground-truth/",
        "QualityAlarmThreshold=2",
    ],
    "public_function_url": ["ApiAuth=NONE", "EnableFunctionUrl=true"],
    "iam_auth": ["ApiAuth=AWS_IAM"],
    "jwt_auth": ["ApiAuth=JWT", "JwtIssuer=https://issuer.example.com", "JwtAudience=skewless-api,skewless-batch"],
    "api_key_auth": ["ApiAuth=API_KEY", "EnableFunctionUrl=true", "ApiKeyQuotaLimit=500", "ApiKeyQuotaPeriod=WEEK"],
    "no_auth": ["ApiAuth=NONE"],
    "no_reserved_concurrency": [
        "ReservedConcurrency=0",
        "ApiGatewayCloudWatchRoleArn=arn:aws:iam::123456789012:role/x",
    ],
}


@pytest.fixture(scope="module")
def sam() -> Path:
    return ensure_sam_cli()


_TRANSLATED: dict[tuple[str, ...], str] = {}


def _translate(parameters: list[str]) -> dict[str, Any]:
    """SAM's transformed template for these parameters (each set transformed once per session, a new copy each call)."""
    key = tuple(parameters)
    if key not in _TRANSLATED:
        _TRANSLATED[key] = _run_transform(parameters)
    data: dict[str, Any] = json.loads(_TRANSLATED[key])
    return data


def _run_transform(parameters: list[str]) -> str:
    script = ROOT / "tests" / "support" / "translate_template.py"
    done = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), str(script), str(TEMPLATE), *parameters],
        capture_output=True,
        text=True,
        env=sam_env(),
    )
    assert done.returncode == 0, f"SAM's transform refused the template with {parameters}:\n{done.stderr[-3000:]}"
    return done.stdout


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


# Actions with no resource-level permissions, the only ones a statement may grant on "*": X-Ray's two writes, and
# CloudWatch Logs' log delivery that Step Functions' logging goes through (its documented list).
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_no_iam_statement_allows_every_resource_except_xray_and_log_delivery(translated: dict[str, Any]) -> None:
    for statement in _statements(translated):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources:
            actions = set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
            assert actions <= XRAY or actions <= LOG_DELIVERY, f"'*' resource for {actions}"
    role = _of_type(translated, "AWS::IAM::Role")
    # The function's, the pre-traffic gate's, CodeDeploy's, the bulk state machine's and API Gateway's logging roles,
    # all written by hand: none generated by SAM.
    assert sorted(role) == [
        "ApiGatewayCloudWatchRole",
        "BulkInferenceRole",
        "DeploymentRole",
        "FunctionRole",
        "PreTrafficGateRole",
    ], f"SAM generated a role (with managed '*' policies): {list(role)}"
    for name, props in role.items():
        assert not props["Properties"].get("ManagedPolicyArns"), name


def test_s3_access_is_read_input_prefix_write_output_prefix(translated: dict[str, Any]) -> None:
    # The function's role (BulkInferenceRole's S3 access is checked in test_bulk_inference_*).
    function_role = {"Resources": {"FunctionRole": translated["Resources"]["FunctionRole"]}}
    s3 = [s for s in _statements(function_role) if any(str(a).startswith("s3:") for a in _as_list(s["Action"]))]
    by_sid = {s["Sid"]: s for s in s3}
    assert set(by_sid) == {
        "ReadInputPrefix",
        "WriteOutputPrefix",
        "ReadOwnOutputMarkers",
        "ReleaseOwnLeases",
        "ListOutputPrefixOnly",
        "FindOrphanUploads",
        "ReadLabelsPrefix",
        "ReadCapturedRowsForLabels",
    }
    assert _as_list(by_sid["FindOrphanUploads"]["Action"]) == ["s3:ListBucketMultipartUploads"]
    assert _as_list(by_sid["ReadInputPrefix"]["Action"]) == ["s3:GetObject"]
    assert json.dumps(by_sid["ReadInputPrefix"]["Resource"]).endswith(_prefix("InputPrefix") + '*"')
    assert json.dumps(by_sid["WriteOutputPrefix"]["Resource"]).endswith(_prefix("OutputPrefix") + '*"')
    # Under the output prefix the function reads back only its completion markers and leases (the suffixes the S3
    # path names), and deletes only leases: not the predictions, not the captured rows.
    code = "\n".join(path.read_text() for path in sorted((ROOT / "handler/triggers/s3").glob("*.py")))
    suffixes = dict(re.findall(r'^(MARKER_SUFFIX|CHECKPOINT_SUFFIX) = "([^"]+)"', code, re.M))
    assert set(suffixes) == {"MARKER_SUFFIX", "CHECKPOINT_SUFFIX"}, "handler/triggers/s3 names its suffixes"
    reads = [json.dumps(r) for r in _as_list(by_sid["ReadOwnOutputMarkers"]["Resource"])]
    wanted = [_prefix("OutputPrefix") + "*" + suffixes[k] + '"' for k in ("MARKER_SUFFIX", "CHECKPOINT_SUFFIX")]
    assert len(reads) == 2 and all(r.endswith(w) for r, w in zip(reads, wanted, strict=True)), reads
    assert _as_list(by_sid["ReleaseOwnLeases"]["Action"]) == ["s3:DeleteObject"]
    assert json.dumps(by_sid["ReleaseOwnLeases"]["Resource"]).endswith(wanted[1])
    assert "s3:PutObject" not in json.dumps([by_sid["ReadInputPrefix"], by_sid["ReadOwnOutputMarkers"]])
    # The labels trigger reads the labels, and of the output prefix only the captured rows they join.
    assert _as_list(by_sid["ReadLabelsPrefix"]["Action"]) == _as_list(by_sid["ReadCapturedRowsForLabels"]["Action"])
    assert _as_list(by_sid["ReadLabelsPrefix"]["Action"]) == ["s3:GetObject"]
    assert json.dumps(by_sid["ReadLabelsPrefix"]["Resource"]).endswith(_prefix("LabelsPrefix") + '*"')
    assert json.dumps(by_sid["ReadCapturedRowsForLabels"]["Resource"]).endswith(_prefix("OutputPrefix") + 'capture/*"')
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
    # {proxy+} matches no request for the root itself: GET / (KServe v1's liveness) has its own route on both.
    assert "get" in http.get("/", {}) and "get" in rest.get("/", {}), (http.get("/"), rest.get("/"))


def test_s3_notification_is_limited_to_the_input_and_the_labels_prefix(translated: dict[str, Any]) -> None:
    bucket = translated["Resources"]["DataBucket"]["Properties"]
    inputs, labels = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert inputs["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": _prefix("InputPrefix")}]
    assert labels["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": _prefix("LabelsPrefix")}]
    assert inputs["Function"] == labels["Function"]
    # S3 refuses two configurations of one event whose prefixes overlap; the settings refuse it too.
    prefixes = [_prefix(p) for p in ("InputPrefix", "OutputPrefix", "LabelsPrefix", "BulkResultsPrefix")]
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and a.startswith(b)], prefixes


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


@pytest.mark.parametrize("name", ["defaults", "iam_auth", "everything_on"])
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


def test_api_auth_none_leaves_both_apis_open(sam: Path) -> None:
    template = _translate(OPTIONS["no_auth"])
    operations = _function_operations(template)
    assert {where.split()[0] for where, *_ in operations} == {"HttpApi", "RestApi"}
    for where, security, _, body in operations:
        assert not security and not _sigv4_schemes(body), f"{where}: {security}"
    for kind in ("AWS::ApiGateway::Method", "AWS::ApiGatewayV2::Route"):
        assert not _of_type(template, kind), kind


def test_language_extensions_run_before_sams_transform() -> None:
    """CloudFormation applies transforms in order: SAM's alone refuses the APIs' `!If` Auth (the
    local translation above applies the language extensions whatever the order, so check it here)."""
    assert _raw_template()["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def _function_and_version(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The dimensions of the function's own metrics for the version 'live' executes: its name, the new version."""
    return [
        {"Name": "function", "Value": {"Ref": "InferenceFunction"}},
        {"Name": "version", "Value": {"Fn::GetAtt": [_version_id(template), "Version"]}},
    ]


@pytest.mark.parametrize("alarm", ["FeatureDriftAlarm", "PredictionDriftAlarm"])
def test_drift_alarms_watch_the_new_versions_count_of_drifted_features(translated: dict[str, Any], alarm: str) -> None:
    """An alarm reads one series with fixed dimensions: the per-window count of drifted features (or outputs), each
    judged by the function against its own threshold, of this function's new version: during a canary the old
    version's traffic does not feed it, nor another stack's. One drifted feature is enough (above 0)."""
    props = translated["Resources"][alarm]["Properties"]
    env = translated["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    metric = {"FeatureDriftAlarm": "DriftedFeatures", "PredictionDriftAlarm": "DriftedPredictions"}[alarm]
    assert (props["Namespace"], props["MetricName"]) == (env["POWERTOOLS_METRICS_NAMESPACE"], metric)
    assert props["Dimensions"] == [
        {"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]},
        *_function_and_version(translated),
    ]
    assert float(props["Threshold"]) == 0 and props["Statistic"] == "Maximum"
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["TreatMissingData"] == "notBreaching"
    assert "AlarmActions" not in props, "without DriftAlarmEmail the alarms notify no one"


@pytest.mark.parametrize(("given", "env_value"), [([], "0"), (["DriftThreshold=0.2"], "0.2")])
def test_the_drift_threshold_parameter_reaches_the_function(sam: Path, given: list[str], env_value: str) -> None:
    """0 (the default): each feature's calibrated threshold (Settings reads 0 as none); a number: that one for all."""
    env = _translate(given)["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    assert str(env["DRIFT_THRESHOLD"]) == env_value


def test_drift_alarms_notify_the_sns_topic_only_when_an_email_is_given(sam: Path) -> None:
    template = _translate(["DriftAlarmEmail=ops@example.com"])
    topic = template["Resources"]["DriftAlarmTopic"]
    assert topic["Condition"] == "HasDriftAlarmTopic"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": "ops@example.com"}]
    for alarm in ("FeatureDriftAlarm", "PredictionDriftAlarm", "ModelQualityAlarm"):
        assert template["Resources"][alarm]["Properties"]["AlarmActions"] == [{"Ref": "DriftAlarmTopic"}]


@pytest.mark.parametrize(("given", "threshold"), [([], 1.0), (["QualityAlarmThreshold=2.5"], 2.5)])
def test_the_quality_alarm_watches_the_new_versions_degradation_at_its_parameter(
    sam: Path, given: list[str], threshold: float
) -> None:
    """Labels arrive when they do: the alarm reads the version's worst metric over its threshold, and no labels is no
    alarm. The function learns the labels prefix the bucket notifies it for."""
    template = _translate(given)
    props = template["Resources"]["ModelQualityAlarm"]["Properties"]
    env = template["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    assert (props["Namespace"], props["MetricName"]) == (env["POWERTOOLS_METRICS_NAMESPACE"], "ModelQualityDegradation")
    assert props["Dimensions"] == [
        {"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]},
        *_function_and_version(template),
    ]
    assert float(props["Threshold"]) == threshold and props["Statistic"] == "Maximum"
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["TreatMissingData"] == "notBreaching"
    assert env["LABELS_PREFIX"] == _prefix("LabelsPrefix")


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


# --- Safe deployments: the live alias, CodeDeploy, the pre-traffic gate, the rollback alarms -----------

# CodeDeploy's predefined Lambda deployment configurations, as AWS documents them (CodeDeployDefault.Lambda<type>).
CODEDEPLOY_LAMBDA_TYPES = {
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
}
ROLLBACK_ALARMS = [
    "ErrorRateAlarm",
    "Http5xxRateAlarm",
    "FeatureDriftAlarm",
    "PredictionDriftAlarm",
    "ModelQualityAlarm",
]


def _sub_text(value: Any) -> str:
    """A resource string as written: plain, or the text of a !Sub (the local language extensions may unwrap it)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _version_id(template: dict[str, Any]) -> str:
    (version,) = [k for k, v in _of_type(template, "AWS::Lambda::Version").items()]
    assert template["Resources"][version]["Properties"]["FunctionName"] == {"Ref": "InferenceFunction"}
    return version


def test_the_live_alias_moves_through_codedeploy_with_the_gate_before_traffic(translated: dict[str, Any]) -> None:
    (alias_id,) = _of_type(translated, "AWS::Lambda::Alias")
    alias = translated["Resources"][alias_id]
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [_version_id(translated), "Version"]}
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update == {
        "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
        "DeploymentGroupName": {"Ref": "InferenceFunctionDeploymentGroup"},
        "BeforeAllowTrafficHook": {"Ref": "PreTrafficGateFunction"},
    }, update
    app = translated["Resources"]["ServerlessDeploymentApplication"]
    assert app["Type"] == "AWS::CodeDeploy::Application" and app["Properties"]["ComputePlatform"] == "Lambda"


def test_the_deployment_group_shifts_by_the_parameter_and_rolls_back_on_the_alarms(translated: dict[str, Any]) -> None:
    group = translated["Resources"]["InferenceFunctionDeploymentGroup"]
    assert group["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    props = group["Properties"]
    assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert props["AlarmConfiguration"] == {"Enabled": True, "Alarms": [{"Name": {"Ref": a}} for a in ROLLBACK_ALARMS]}
    rollback = props["AutoRollbackConfiguration"]
    assert rollback["Enabled"] and {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])
    assert props["ServiceRoleArn"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]}
    assert "CodeDeployServiceRole" not in translated["Resources"], "SAM's role attaches a managed '*' policy"


def test_deployment_type_lists_codedeploys_predefined_types_and_all_at_once_is_one(sam: Path) -> None:
    parameter = _raw_template()["Parameters"]["DeploymentType"]
    assert (
        set(parameter["AllowedValues"]) == CODEDEPLOY_LAMBDA_TYPES and parameter["Default"] == "Canary10Percent5Minutes"
    )
    group = _translate(["DeploymentType=AllAtOnce"])["Resources"]["InferenceFunctionDeploymentGroup"]
    assert group["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"


def test_the_error_rate_alarm_divides_the_new_versions_errors_by_its_invocations(translated: dict[str, Any]) -> None:
    """On the alias and the version it executes: a canary's share is judged alone, not diluted by the old version."""
    props = translated["Resources"]["ErrorRateAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in props["Metrics"]}
    assert [m["Id"] for m in props["Metrics"] if m.get("ReturnData")] == ["rate"]
    assert metrics["rate"]["Expression"].replace(" ", "") == "100*FILL(errors,0)/invocations"
    version = {"Fn::GetAtt": [_version_id(translated), "Version"]}
    for metric_id, name in (("errors", "Errors"), ("invocations", "Invocations")):
        stat = metrics[metric_id]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == ("AWS/Lambda", name)
        assert (stat["Stat"], stat["Period"]) == ("Sum", 60)
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert dims["FunctionName"] == {"Ref": "InferenceFunction"}
        assert _sub_text(dims["Resource"]) == "${InferenceFunction}:live"
        assert dims["ExecutedVersion"] == version, dims
    default = float(_raw_template()["Parameters"]["ErrorRateThreshold"]["Default"])
    assert float(props["Threshold"]) == default and props["ComparisonOperator"] == "GreaterThanThreshold"
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"], props["TreatMissingData"]) == (2, 2, "notBreaching")


def test_the_gate_runs_the_functions_image_against_its_new_version(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    gate, function = resources["PreTrafficGateFunction"], resources["InferenceFunction"]
    # The same build metadata: `sam build` builds one image for both, so the gate's golden cases are the served model's.
    assert gate["Metadata"] == function["Metadata"]
    props = gate["Properties"]
    assert props["PackageType"] == "Image" and props["ImageConfig"]["Command"] == ["handler.deploy_gate.lambda_handler"]
    assert props["Architectures"] == function["Properties"]["Architectures"]
    env = props["Environment"]["Variables"]
    assert env["TARGET_VERSION_ARN"] == {"Ref": _version_id(translated)}
    assert env["GOLDEN_MODEL_DIR"] == function["Properties"]["Environment"]["Variables"]["MODEL_DIR"]
    assert props["Role"] == {"Fn::GetAtt": ["PreTrafficGateRole", "Arn"]}
    assert _sub_text(props["FunctionName"]) == "${AWS::StackName}-pretraffic-gate"
    # No event, permission, alias or version of its own: nothing invokes the gate but CodeDeploy, with its role.
    generated = [k for k in resources if k.startswith("PreTrafficGateFunction") and k != "PreTrafficGateFunction"]
    assert not generated, generated


def _role_grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """{action: resources as written} over every statement of the role's inline policies."""
    grants: dict[str, set[str]] = {}
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            assert st["Effect"] == "Allow" and "Condition" not in st, st
            for action in _as_list(st["Action"]):
                grants.setdefault(action, set()).update(_sub_text(r) for r in _as_list(st["Resource"]))
    return grants


def test_the_gate_may_invoke_only_this_functions_versions_and_report_only_to_its_deployment_group(
    translated: dict[str, Any],
) -> None:
    group_arn = (
        "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
        "${ServerlessDeploymentApplication}/${InferenceFunctionDeploymentGroup}"
    )
    assert _role_grants(translated, "PreTrafficGateRole") == {
        "logs:CreateLogStream": {json.dumps({"Fn::GetAtt": ["PreTrafficGateLogGroup", "Arn"]}, sort_keys=True)},
        "logs:PutLogEvents": {json.dumps({"Fn::GetAtt": ["PreTrafficGateLogGroup", "Arn"]}, sort_keys=True)},
        "lambda:InvokeFunction": {"${InferenceFunction.Arn}:*"},
        "codedeploy:PutLifecycleEventHookExecutionStatus": {group_arn},
        "codedeploy:GetDeployment": {group_arn},
    }
    # The names in that ARN are the resources SAM generated, the ones the alias deploys through.
    assert translated["Resources"]["InferenceFunctionDeploymentGroup"]["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    role = translated["Resources"]["PreTrafficGateRole"]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert translated["Resources"]["PreTrafficGateFunction"]["Properties"]["LoggingConfig"] == {
        "LogGroup": {"Ref": "PreTrafficGateLogGroup"}
    }


def test_codedeploys_role_reaches_only_the_alias_the_gate_and_the_alarms(translated: dict[str, Any]) -> None:
    function_arn = json.dumps({"Fn::GetAtt": ["InferenceFunction", "Arn"]}, sort_keys=True)
    alarms = {json.dumps({"Fn::GetAtt": [a, "Arn"]}, sort_keys=True) for a in ROLLBACK_ALARMS}
    gate = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-pretraffic-gate"
    assert _role_grants(translated, "DeploymentRole") == {
        "lambda:GetAlias": {function_arn, "${InferenceFunction.Arn}:live"},
        "lambda:UpdateAlias": {function_arn, "${InferenceFunction.Arn}:live"},
        "lambda:GetProvisionedConcurrencyConfig": {"${InferenceFunction.Arn}:*"},
        "lambda:InvokeFunction": {gate},
        "cloudwatch:DescribeAlarms": alarms,
    }
    trust = translated["Resources"]["DeploymentRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "codedeploy.amazonaws.com"}]
    # Only CodeDeploy acting for this account may assume it (the confused deputy).
    assert all(s["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}} for s in trust)


# --- The BulkInference state machine --------------------------------------------------------------------


def _bulk_definition(template: dict[str, Any], substitute: bool = False) -> dict[str, Any]:
    """The state machine definition as SAM writes it (a Fn::Join of JSON lines), optionally with the
    DefinitionSubstitutions that are plain values put in, as Step Functions does at create time."""
    machine = template["Resources"]["BulkInference"]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    separator, lines = machine["Properties"]["DefinitionString"]["Fn::Join"]
    text = separator.join(lines)
    if substitute:
        for name, value in machine["Properties"]["DefinitionSubstitutions"].items():
            if isinstance(value, (str, int, float)):
                text = text.replace("${" + name + "}", str(value))
    data: dict[str, Any] = json.loads(text)
    return data


ROW_MAPS = {"RowsOfACsv": "CSV", "RowsOfJsonLines": "JSONL", "RowsOfAParquet": "PARQUET"}


def test_bulk_inference_reads_the_rows_of_one_object_in_batches_and_every_object_of_a_prefix(
    translated: dict[str, Any],
) -> None:
    states = _bulk_definition(translated)["States"]
    choices = {c.get("Next") for c in states["WhichForm"]["Choices"]}
    assert choices == {*ROW_MAPS, "EveryObjectUnderThePrefix", "NeitherAKeyNorAPrefix"}
    assert states[states["WhichForm"]["Default"]]["Type"] == "Fail"
    assert states["NeitherAKeyNorAPrefix"]["Error"] == "InvalidInput"
    for name, kind in ROW_MAPS.items():
        state = states[name]
        assert state["Type"] == "Map" and state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED", name
        reader = state["ItemReader"]
        assert reader["Resource"] == "arn:aws:states:::s3:getObject" and reader["ReaderConfig"]["InputType"] == kind
        if kind == "CSV":
            assert reader["ReaderConfig"]["CSVHeaderLocation"] == "FIRST_ROW", "items keyed by the header's names"
        batcher = state["ItemBatcher"]
        assert batcher["MaxItemsPerBatchPath"] == "$.settings.batch_size", name
        assert batcher["MaxInputBytesPerBatch"] <= 256 * 1024, "Step Functions' payload limit"
        assert state["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"
    listing = states["EveryObjectUnderThePrefix"]
    assert listing["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert "ItemBatcher" not in listing, "one object per child, through the S3 path"
    # Each child gets an EventBridge "Object Created" event, which handler/triggers/s3/job.py reads.
    event = listing["ItemSelector"]
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["object"] == {
        "key.$": "$$.Map.Item.Value.Key",
        "etag.$": "$$.Map.Item.Value.Etag",
        "size.$": "$$.Map.Item.Value.Size",
    }
    assert listing["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD", "an object may take minutes"
    for name in [*ROW_MAPS, "EveryObjectUnderThePrefix"]:
        state = states[name]
        assert state["MaxConcurrencyPath"] == "$.settings.max_concurrency", name
        assert state["ToleratedFailurePercentagePath"] == "$.settings.tolerated_failure_percentage", name
        assert state["ResultWriter"] == {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "${DataBucket}", "Prefix": "${ResultsPrefix}"},
        }, name


def _tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, state in states.items():
        if state["Type"] == "Map":
            children = state["ItemProcessor"]["States"].items()
            out.update({f"{name}/{k}": v for k, v in children if v["Type"] == "Task"})
    return out


def test_bulk_inference_invokes_the_live_alias_and_retries_lambda_faults_and_model_unavailable_never_invalid_input(
    translated: dict[str, Any],
) -> None:
    machine = translated["Resources"]["BulkInference"]["Properties"]
    assert machine["DefinitionSubstitutions"]["FunctionAlias"] == {"Ref": "InferenceFunctionAliaslive"}
    assert translated["Resources"]["InferenceFunctionAliaslive"]["Type"] == "AWS::Lambda::Alias"
    tasks = _tasks(_bulk_definition(translated)["States"])
    assert len(tasks) == 4
    for where, task in tasks.items():
        assert task["Resource"] == "arn:aws:states:::lambda:invoke", where
        assert task["Parameters"] == {"FunctionName": "${FunctionAlias}", "Payload.$": "$"}, where
        retried = {error for retrier in task["Retry"] for error in retrier["ErrorEquals"]}
        assert {"ModelUnavailable", "Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, where
        # A timeout, by the name Step Functions' guide gives it and by the one the runtime's payload gives.
        assert {"Lambda.Unknown", "Sandbox.Timedout"} <= retried, where
        assert not retried & {"InvalidInput", "States.ALL", "States.TaskFailed"}, f"{where} retries {retried}"
        assert all(r["MaxAttempts"] <= 6 for r in task["Retry"]), where
        assert "Catch" not in task, "a failed batch counts against ToleratedFailurePercentage, not swallowed"


@pytest.mark.parametrize("options", ["defaults", "everything_on"])
def test_bulk_inference_settings_are_the_template_parameters_as_numbers(sam: Path, options: str) -> None:
    """DefinitionSubstitutions are text; the Settings state parses them into the numbers the *Path fields read."""
    template = _translate(OPTIONS[options])
    given = dict(arg.split("=", 1) for arg in OPTIONS[options])
    defaults = _raw_template()["Parameters"]
    settings = _bulk_definition(template, substitute=True)["States"]["Settings"]["Parameters"]["settings.$"]
    assert settings.startswith("States.StringToJson('") and settings.endswith("')")
    parsed = json.loads(settings[len("States.StringToJson('") : -2])
    want = {
        "batch_size": "BulkBatchSize",
        "max_concurrency": "BulkMaxConcurrency",
        "tolerated_failure_percentage": "BulkToleratedFailurePercentage",
    }
    assert parsed == {key: int(given.get(p, defaults[p]["Default"])) for key, p in want.items()}
    machine = template["Resources"]["BulkInference"]["Properties"]
    prefix = given.get("BulkResultsPrefix", defaults["BulkResultsPrefix"]["Default"])
    assert machine["DefinitionSubstitutions"]["ResultsPrefix"] == prefix
    assert int(given.get("BulkBatchSize", 500)) <= int(defaults["MaxBatchSize"]["Default"]), "over MAX_BATCH_SIZE"
