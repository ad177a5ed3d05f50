"""Secure by default (issue 23), on SAM's transformed template, as CloudFormation would deploy it.

- Who may call: the authorizer of every route of both APIs, and the Function URL's auth type, under each ApiAuth;
  ApiAuth=NONE is the only way to an open route, and neither the template nor samconfig.toml deploys it by default.
- Ceilings: both API stages' throttling, the function's reserved concurrency, the API key's usage plan.
- Data: the TLS-only bucket policies, the lifecycle expiry of captured rows and bulk results, the access logs (the
  bucket's, both API stages', the state machine's) and their retention.
- No job lost: the S3 trigger's on-failure destination (an encrypted queue) and the alarm on its depth.
- Alarms that reach someone: the topic's customer-managed key and a key policy that lets CloudWatch use it.
- A bad canary rolled back: the 5xx-per-version alarm on the function's own Http5xx metric.
- `sam local start-api` enforces none of it (what docs/deploy.md says): its routes have no authorizer.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.env.template.test_template import (
    LOG_DELIVERY,
    OPTIONS,
    ROLLBACK_ALARMS,
    _function_operations,
    _of_type,
    _raw_template,
    _translate,
    _version_id,
)
from tests.support.samcli import ROOT, SAM_VENV, ensure_sam_cli, sam_env

JWT = ["JwtIssuer=https://issuer.example.com", "JwtAudience=skewless-api,skewless-batch"]
# Each ApiAuth value, with the Function URL on (it follows ApiAuth too).
AUTH = {
    "AWS_IAM": ["ApiAuth=AWS_IAM", "EnableFunctionUrl=true"],
    "JWT": ["ApiAuth=JWT", *JWT, "EnableFunctionUrl=true"],
    "API_KEY": ["ApiAuth=API_KEY", "EnableFunctionUrl=true"],
    "NONE": ["ApiAuth=NONE", "EnableFunctionUrl=true"],
}
# What guards each API's routes under each ApiAuth: an API that cannot take the scheme stays on SigV4 (None: open).
GUARD = {
    "AWS_IAM": {"HttpApi": "sigv4", "RestApi": "sigv4", "FunctionUrl": "AWS_IAM"},
    "JWT": {"HttpApi": "jwt", "RestApi": "sigv4", "FunctionUrl": "AWS_IAM"},
    "API_KEY": {"HttpApi": "sigv4", "RestApi": "api_key", "FunctionUrl": "AWS_IAM"},
    "NONE": {"HttpApi": None, "RestApi": None, "FunctionUrl": "NONE"},
}


@pytest.fixture(scope="module")
def sam() -> Path:
    """The SAM CLI's venv, which the transform runs in."""
    return ensure_sam_cli()


@pytest.fixture(scope="module")
def translated(sam: Path) -> dict[str, Any]:
    return _translate([])


def _default(parameter: str) -> Any:
    return _raw_template()["Parameters"][parameter]["Default"]


def _condition(template: dict[str, Any], expr: Any) -> bool:
    """A condition of the transformed template (its parameters already put in by the language extensions)."""
    if isinstance(expr, dict):
        ((fn, args),) = expr.items()
        if fn == "Condition":
            return _condition(template, template["Conditions"][args])
        if fn == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if fn == "Fn::Not":
            return not _condition(template, args[0])
        if fn == "Fn::And":
            return all(_condition(template, a) for a in args)
        if fn == "Fn::Or":
            return any(_condition(template, a) for a in args)
    raise AssertionError(f"a condition this test cannot evaluate: {expr}")


def _created(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The resources CloudFormation would create: those whose condition holds."""
    return {
        k: v
        for k, v in template["Resources"].items()
        if "Condition" not in v or _condition(template, {"Condition": v["Condition"]})
    }


def _scheme_kind(body: dict[str, Any], name: str) -> str:
    scheme = (body.get("securityDefinitions") or body.get("components", {}).get("securitySchemes", {}))[name]
    if scheme.get("x-amazon-apigateway-authtype") == "awsSigv4":
        return "sigv4"
    if scheme.get("x-amazon-apigateway-authorizer", {}).get("type") == "jwt":
        return "jwt"
    if scheme == {"type": "apiKey", "name": "x-api-key", "in": "header"}:
        return "api_key"
    return f"unknown: {scheme}"


def _guards(template: dict[str, Any]) -> dict[str, set[str | None]]:
    """What guards the routes to the function, per API (None for an open route), and the Function URL's auth."""
    out: dict[str, set[str | None]] = {}
    for where, security, _, body in _function_operations(template):
        api = where.split()[0]
        if not security or any(not requirement for requirement in security):
            out.setdefault(api, set()).add(None)  # no requirement, or an empty one: anonymous requests pass
        for requirement in security:
            out.setdefault(api, set()).update(_scheme_kind(body, name) for name in requirement)
    created = _created(template)
    url = created.get("FunctionUrl")
    if url is not None:
        out["FunctionUrl"] = {url["Properties"]["AuthType"]}
    return out


@pytest.mark.parametrize("api_auth", sorted(AUTH))
def test_every_route_takes_the_authorizer_of_api_auth(sam: Path, api_auth: str) -> None:
    template = _translate(AUTH[api_auth])
    want = {api: {guard} for api, guard in GUARD[api_auth].items()}
    assert _guards(template) == want
    public = "FunctionUrlPublicPermission" in _created(template)
    assert public == (api_auth == "NONE"), "a resource policy for anyone exists only for an open Function URL"
    if api_auth == "JWT":
        for where, security, _, body in _function_operations(template):
            if where.startswith("HttpApi"):
                (name,) = {n for requirement in security for n in requirement}
                authorizer = body["components"]["securitySchemes"][name]["x-amazon-apigateway-authorizer"]
                assert authorizer["identitySource"] == "$request.header.Authorization", where
                assert authorizer["jwtConfiguration"] == {
                    "issuer": "https://issuer.example.com",
                    "audience": ["skewless-api", "skewless-batch"],
                }, where


def test_none_is_the_only_way_to_an_open_route(sam: Path) -> None:
    values = _raw_template()["Parameters"]["ApiAuth"]["AllowedValues"]
    assert sorted(values) == sorted(AUTH), "a new ApiAuth value needs its row in AUTH and GUARD"
    for value in values:
        template = _translate(AUTH[value])
        guards = _guards(template)
        open_routes = sorted(api for api, kinds in guards.items() if None in kinds or "NONE" in kinds)
        assert bool(open_routes) == (value == "NONE"), f"ApiAuth={value}: open {open_routes or 'nothing'}"
        if value == "NONE":
            assert open_routes == ["FunctionUrl", "HttpApi", "RestApi"], open_routes


def test_the_template_and_samconfig_deploy_closed_by_default() -> None:
    assert _default("ApiAuth") == "AWS_IAM"
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = dict(o.split("=", 1) for o in config["default"]["deploy"]["parameters"]["parameter_overrides"].split())
    assert overrides.get("ApiAuth", _default("ApiAuth")) == "AWS_IAM", overrides


def test_a_jwt_authorizer_cannot_deploy_without_an_issuer_and_an_audience() -> None:
    """CloudFormation's Rules refuse the stack before anything is created, saying which parameter is missing."""
    rule = _raw_template()["Rules"]["JwtNeedsAnIssuerAndAnAudience"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "JWT"]}
    asserted = json.dumps(rule["Assertions"])
    assert '"Ref": "JwtIssuer"' in asserted and '"Ref": "JwtAudience"' in asserted


# --- Ceilings ------------------------------------------------------------------------------------------------


def _stages(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (http,) = _of_type(template, "AWS::ApiGatewayV2::Stage").values()
    (rest,) = _of_type(template, "AWS::ApiGateway::Stage").values()
    return http["Properties"], rest["Properties"]


@pytest.mark.parametrize("given", [[], ["ApiThrottleRateLimit=7", "ApiThrottleBurstLimit=9"]])
def test_both_api_stages_throttle_every_route_at_the_parameters(sam: Path, given: list[str]) -> None:
    template = _translate(given)
    values = {**{p: _default(p) for p in ("ApiThrottleRateLimit", "ApiThrottleBurstLimit")}}
    values.update(dict(g.split("=", 1) for g in given))
    rate, burst = float(values["ApiThrottleRateLimit"]), int(values["ApiThrottleBurstLimit"])
    http, rest = _stages(template)
    route = http["DefaultRouteSettings"]
    assert (float(route["ThrottlingRateLimit"]), int(route["ThrottlingBurstLimit"])) == (rate, burst)
    (methods,) = rest["MethodSettings"]
    assert (methods["ResourcePath"], methods["HttpMethod"]) == ("/*", "*"), "every method of every resource"
    assert (float(methods["ThrottlingRateLimit"]), int(methods["ThrottlingBurstLimit"])) == (rate, burst)


def test_the_defaults_fit_together() -> None:
    """The stages' burst fits in the reserved concurrency, which Lambda accepts only below the account's 1,000 less
    the 100 it keeps unreserved (its default quota)."""
    reserved = int(_default("ReservedConcurrency"))
    assert 0 < int(_default("ApiThrottleBurstLimit")) <= reserved <= 900
    assert float(_default("ApiThrottleRateLimit")) <= int(_default("ApiThrottleBurstLimit"))


def test_the_function_has_reserved_concurrency_unless_set_to_zero(sam: Path) -> None:
    template = _translate([])
    functions = template["Resources"]
    assert functions["InferenceFunction"]["Properties"]["ReservedConcurrentExecutions"] == int(
        _default("ReservedConcurrency")
    )
    assert functions["PreTrafficGateFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1
    none = _translate(OPTIONS["no_reserved_concurrency"])["Resources"]
    for name in ("InferenceFunction", "PreTrafficGateFunction"):
        # 0 is no reservation (no ceiling), never Lambda's 0, which would stop the function.
        assert "ReservedConcurrentExecutions" not in none[name]["Properties"], name


def test_api_keys_come_with_a_usage_plan_of_a_quota_and_a_throttle(sam: Path) -> None:
    template = _translate(OPTIONS["api_key_auth"])
    created = _created(template)
    (plan_id,) = _of_type({"Resources": created}, "AWS::ApiGateway::UsagePlan")
    plan = created[plan_id]["Properties"]
    assert (int(plan["Quota"]["Limit"]), plan["Quota"]["Period"]) == (500, "WEEK")
    rate, burst = float(_default("ApiThrottleRateLimit")), int(_default("ApiThrottleBurstLimit"))
    assert (float(plan["Throttle"]["RateLimit"]), int(plan["Throttle"]["BurstLimit"])) == (rate, burst)
    (stage_id,) = _of_type(template, "AWS::ApiGateway::Stage")
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": stage_id}}]
    (key_id,) = _of_type({"Resources": created}, "AWS::ApiGateway::ApiKey")
    (link,) = _of_type({"Resources": created}, "AWS::ApiGateway::UsagePlanKey").values()
    assert link["Properties"] == {"KeyId": {"Ref": key_id}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": plan_id}}
    assert template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": key_id}
    # The default quota as documented.
    assert (int(_default("ApiKeyQuotaLimit")), _default("ApiKeyQuotaPeriod")) == (100000, "DAY")
    for other in ("defaults", "jwt_auth", "no_auth"):
        assert not _of_type(_translate(OPTIONS[other]), "AWS::ApiGateway::UsagePlan"), other


# --- Data kept no longer than needed -------------------------------------------------------------------------

DATA_BUCKET_ARN = "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::Region}-${AWS::AccountId}"


def _sub(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("bucket", ["DataBucket", "AccessLogBucket"])
def test_the_buckets_deny_every_request_without_tls(translated: dict[str, Any], bucket: str) -> None:
    (policy,) = [
        r["Properties"]
        for r in _of_type(translated, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert len(deny) == 1, deny
    (statement,) = deny
    assert statement["Principal"] == "*" and statement["Action"] == "s3:*", statement
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {_sub(r) for r in statement["Resource"]} == {
        json.dumps({"Fn::GetAtt": [bucket, "Arn"]}, sort_keys=True),
        "${" + bucket + ".Arn}/*",
    }


@pytest.mark.parametrize(
    "given",
    [
        ["CaptureSampleRate=0.1"],
        [
            "CaptureSampleRate=0.1",
            "CaptureRetentionDays=7",
            "BulkResultsRetentionDays=3",
            "OutputPrefix=out/",
            "BulkResultsPrefix=scored/",
            "LabelsPrefix=truth/",
        ],
    ],
)
def test_captured_rows_labels_and_bulk_results_expire(sam: Path, given: list[str]) -> None:
    template = _translate(given)
    names = ("CaptureRetentionDays", "BulkResultsRetentionDays", "BulkResultsPrefix", "LabelsPrefix")
    values = {p: _default(p) for p in names}
    values.update(dict(g.split("=", 1) for g in given))
    rules = {r["Id"]: r for r in template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    capture = template["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]["CAPTURE_S3_URI"]
    # The rule's prefix is where the function writes captured rows, whatever OutputPrefix is.
    bucket = "${AWS::StackName}-${AWS::Region}-${AWS::AccountId}"
    assert _sub(capture) == f"s3://{bucket}/{rules['expire-captured-rows']['Prefix']}", (capture, rules)
    assert int(rules["expire-captured-rows"]["ExpirationInDays"]) == int(values["CaptureRetentionDays"])
    # Labels go with the rows they label, under the prefix the function reads them from, whatever it is.
    labels = template["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]["LABELS_PREFIX"]
    assert rules["expire-labels"]["Prefix"] == values["LabelsPrefix"] == labels, (labels, rules)
    assert int(rules["expire-labels"]["ExpirationInDays"]) == int(values["CaptureRetentionDays"])
    assert rules["expire-bulk-results"]["Prefix"] == values["BulkResultsPrefix"]
    substitutions = template["Resources"]["BulkInference"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["ResultsPrefix"] == (values["BulkResultsPrefix"])
    assert int(rules["expire-bulk-results"]["ExpirationInDays"]) == int(values["BulkResultsRetentionDays"])
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_every_log_is_kept_log_retention_days(sam: Path) -> None:
    for given, days in (([], int(_default("LogRetentionDays"))), (["LogRetentionDays=7"], 7)):
        template = _translate(given)
        groups = _of_type(template, "AWS::Logs::LogGroup")
        assert set(groups) == {
            "FunctionLogGroup",
            "PreTrafficGateLogGroup",
            "HttpApiAccessLogGroup",
            "RestApiAccessLogGroup",
            "BulkInferenceLogGroup",
        }
        for name, group in groups.items():
            assert int(group["Properties"]["RetentionInDays"]) == days, name
        rules = template["Resources"]["AccessLogBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        assert [int(r["ExpirationInDays"]) for r in rules] == [days] and "Prefix" not in rules[0]


def test_the_data_bucket_and_both_api_stages_keep_access_logs(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    bucket = resources["DataBucket"]["Properties"]
    assert bucket["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "AccessLogBucket"},
        "LogFilePrefix": "data-bucket/",
    }
    # S3's log delivery may write there, for this bucket only.
    (delivery,) = [
        s
        for s in resources["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"} and delivery["Action"] == "s3:PutObject"
    assert _sub(delivery["Resource"]) == "${AccessLogBucket.Arn}/data-bucket/*"
    assert _sub(delivery["Condition"]["ArnLike"]["aws:SourceArn"]) == DATA_BUCKET_ARN
    assert delivery["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    http, rest = _stages(translated)
    for settings, group in (
        (http["AccessLogSettings"], "HttpApiAccessLogGroup"),
        (rest["AccessLogSetting"], "RestApiAccessLogGroup"),
    ):
        assert settings["DestinationArn"] == {"Fn::GetAtt": [group, "Arn"]}
        line = json.loads(settings["Format"])  # one JSON object per request
        assert line["requestId"] == "$context.requestId" and line["status"] == "$context.status", line
        assert line["ip"] == "$context.identity.sourceIp" and line["caller"] == "$context.identity.userArn", line
    # The REST stage's logs need the account's API Gateway role first; both are kept (other APIs may use them).
    assert resources["RestApi"]["DependsOn"] in ("ApiGatewayAccount", ["ApiGatewayAccount"])
    account = resources["ApiGatewayAccount"]
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert resources[name]["DeletionPolicy"] == "Retain", name
    given = _translate(OPTIONS["no_reserved_concurrency"])
    assert (
        given["Resources"]["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == "arn:aws:iam::123456789012:role/x"
    )
    assert "ApiGatewayCloudWatchRole" not in _created(given), "the account's own role is used, none created"


def test_the_state_machine_logs_its_failures_without_the_data(translated: dict[str, Any]) -> None:
    machine = translated["Resources"]["BulkInference"]["Properties"]
    assert machine["LoggingConfiguration"] == {
        "Level": "ERROR",
        "IncludeExecutionData": False,
        "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["BulkInferenceLogGroup", "Arn"]}}}],
    }
    role = translated["Resources"]["BulkInferenceRole"]["Properties"]["Policies"]
    granted = {a for p in role for s in p["PolicyDocument"]["Statement"] if s["Resource"] == "*" for a in s["Action"]}
    assert granted == LOG_DELIVERY


# --- No job lost ---------------------------------------------------------------------------------------------


def test_a_failed_s3_event_goes_to_an_encrypted_queue_whose_depth_alarms(sam: Path) -> None:
    template = _translate(["DriftAlarmEmail=ops@example.com"])
    resources = template["Resources"]
    (config,) = _of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    # The alias the bucket's notifications (inputs, labels) invoke is the one whose asynchronous invokes have the
    # destination.
    notifications = resources["DataBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    (alias_id,) = {n["Function"]["Ref"] for n in notifications}
    alias = resources[alias_id]
    assert alias["Type"] == "AWS::Lambda::Alias" and alias["Properties"]["Name"] == props["Qualifier"] == "live"
    assert props["FunctionName"] == {"Ref": "InferenceFunction"}
    assert props["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": ["S3FailedEventQueue", "Arn"]}}}
    assert props["MaximumRetryAttempts"] == 2
    queue = resources["S3FailedEventQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    # Lambda sends there with the function's role.
    sends = [
        s
        for p in resources["FunctionRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if s["Resource"] == {"Fn::GetAtt": ["S3FailedEventQueue", "Arn"]}
    ]
    assert [s["Action"] for s in sends] == ["sqs:SendMessage"]
    for alarm, queue_id in (
        ("S3FailedObjectsAlarm", "S3FailedEventQueue"),
        ("DeadLetteredRequestsAlarm", "RequestDeadLetterQueue"),
    ):
        a = resources[alarm]["Properties"]
        assert (a["Namespace"], a["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), alarm
        assert a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}], alarm
        assert (a["Threshold"], a["ComparisonOperator"]) == (0, "GreaterThanThreshold"), "one message is one lost job"
        assert a["AlarmActions"] == [{"Ref": "DriftAlarmTopic"}], alarm
    # The existing dead-letter queue stays.
    assert resources["RequestQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["RequestDeadLetterQueue", "Arn"]
    }


def test_only_the_data_bucket_may_invoke_the_function_through_s3(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    s3 = [
        r
        for r in _of_type(translated, "AWS::Lambda::Permission").values()
        if r["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    (permission,) = s3
    props = permission["Properties"]
    assert _sub(props["SourceArn"]) == DATA_BUCKET_ARN
    assert _sub(resources["DataBucket"]["Properties"]["BucketName"]) == DATA_BUCKET_ARN.split(":::")[1]
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"} and props["Action"] == "lambda:InvokeFunction"
    assert props["FunctionName"] == {"Ref": "InferenceFunctionAliaslive"}
    assert resources["DataBucket"]["DependsOn"] == "InputObjectCreatedPermission", "S3 checks it when notifying"
    # Every other permission names its source too; the only Principal "*" is an open Function URL's (ApiAuth=NONE).
    for name, res in _of_type(translated, "AWS::Lambda::Permission").items():
        if res["Properties"]["Principal"] == "*":
            assert res["Condition"] == "PublicFunctionUrl" and res["Properties"]["FunctionUrlAuthType"] == "NONE", name
        else:
            assert "SourceArn" in res["Properties"], name


# --- Alarms that reach someone ------------------------------------------------------------------------------


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(sam: Path) -> None:
    template = _translate(["DriftAlarmEmail=ops@example.com"])
    resources = _created(template)
    assert "alias/aws/sns" not in json.dumps(template), "CloudWatch alarms cannot publish with the AWS-managed key"
    topic = resources["DriftAlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(cloudwatch) == 1 and cloudwatch[0]["Effect"] == "Allow"
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # Otherwise only the account itself (through IAM) may use or manage the key.
    others = [s for s in statements if s is not cloudwatch[0]]
    assert [_sub(s["Principal"]["AWS"]) for s in others] == ["arn:${AWS::Partition}:iam::${AWS::AccountId}:root"]
    publish = resources["DriftAlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in publish if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Every alarm notifies the topic.
    for name, alarm in _of_type({"Resources": resources}, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "DriftAlarmTopic"}], name
    without = _created(_translate([]))
    assert not {"AlarmTopicKey", "DriftAlarmTopic", "DriftAlarmTopicPolicy"} & set(without)


# --- A bad canary is rolled back -----------------------------------------------------------------------------


def test_the_5xx_alarm_watches_the_new_versions_http_5xx_answers(translated: dict[str, Any]) -> None:
    """On the function's own metric (EMF, in its namespace), by function and version as the code emits it, and per
    invocation of the version 'live' executes: a canary that answers 5xx to every request is rolled back even though
    Lambda counts no error."""
    props = translated["Resources"]["Http5xxRateAlarm"]["Properties"]
    env = translated["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    metrics = {m["Id"]: m for m in props["Metrics"]}
    assert [m["Id"] for m in props["Metrics"] if m.get("ReturnData")] == ["rate"]
    assert metrics["rate"]["Expression"].replace(" ", "") == "100*FILL(http5xx,0)/invocations"
    stat = metrics["http5xx"]["MetricStat"]
    assert stat["Metric"]["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert stat["Metric"]["MetricName"] == "Http5xx"
    assert stat["Metric"]["Dimensions"] == [
        {"Name": "function", "Value": {"Ref": "InferenceFunction"}},
        {"Name": "version", "Value": {"Fn::GetAtt": [_version_id(translated), "Version"]}},
    ]
    assert (stat["Stat"], stat["Period"]) == ("Sum", 60)
    invocations = metrics["invocations"]["MetricStat"]["Metric"]
    assert (invocations["Namespace"], invocations["MetricName"]) == ("AWS/Lambda", "Invocations")
    dims = {d["Name"]: d["Value"] for d in invocations["Dimensions"]}
    assert dims["ExecutedVersion"] == {"Fn::GetAtt": [_version_id(translated), "Version"]}
    assert float(props["Threshold"]) == float(_default("ErrorRateThreshold"))
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"], props["TreatMissingData"]) == (2, 2, "notBreaching")
    # CodeDeploy rolls back on it, beside Lambda's Errors.
    assert "Http5xxRateAlarm" in ROLLBACK_ALARMS and "ErrorRateAlarm" in ROLLBACK_ALARMS
    group = translated["Resources"]["InferenceFunctionDeploymentGroup"]["Properties"]["AlarmConfiguration"]
    assert {"Name": {"Ref": "Http5xxRateAlarm"}} in group["Alarms"]


# --- What sam local does with it -----------------------------------------------------------------------------

_SAM_LOCAL_ROUTES = """
import json, sys
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
params = dict(arg.split("=", 1) for arg in sys.argv[2:])
stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], parameter_overrides=params)
print(json.dumps(sorted({(r.path, r.authorizer_name) for r in ApiProvider(stacks).api.routes})))
"""


@pytest.mark.parametrize("api_auth", sorted(AUTH))
def test_sam_local_start_api_serves_every_route_without_an_authorizer(sam: Path, api_auth: str) -> None:
    """What docs/deploy.md says: `sam local start-api` reads the template under any ApiAuth and enforces none of
    them (no authorizer on any route it serves), so a local run says nothing about who may call on AWS."""
    done = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), "-c", _SAM_LOCAL_ROUTES, str(ROOT / "template.yaml"), *AUTH[api_auth]],
        capture_output=True,
        text=True,
        env=sam_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    routes = json.loads(done.stdout.splitlines()[-1])
    assert sorted(path for path, _ in routes) == ["/", "/{proxy+}"], routes
    assert all(authorizer is None for _, authorizer in routes), routes
