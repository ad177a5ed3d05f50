"""template.yaml grants least privilege: read from the template itself (CloudFormation tags included).

The function's role may read the input prefix and the labels prefix, write only under the output prefix (and read
back only its completion markers and leases there, and the captured rows the labels join, and delete only its
leases), use its three queues and its own log group;
no statement names every resource except X-Ray's, whose two actions have no resource-level permissions. The
Function URL requires IAM auth unless ApiAuth=NONE. The pre-traffic gate may invoke only the function's versions
and report only to its own deployment group; CodeDeploy's role may move only the live alias, run only the gate and
read only the rollback alarms, and only CodeDeploy acting for this account may assume it. Only the data bucket may
invoke the function through S3.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfnlint.decode import decode

from handler.settings import Settings, SettingsError
from tests.conftest import ROOT

BUCKET_ARN = "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::Region}-${AWS::AccountId}"
INPUT = BUCKET_ARN + "/${InputPrefix}*"
OUTPUT = BUCKET_ARN + "/${OutputPrefix}*"
# Under the output prefix the function reads back only its completion markers and its leases (handler/triggers/s3),
# and deletes only its leases.
OUTPUT_MARKERS = OUTPUT + ".done.json"
OUTPUT_LEASES = OUTPUT + ".checkpoint.json"
# The labels trigger reads the labels and the captured rows they join (handler/triggers/labels.py).
LABELS = BUCKET_ARN + "/${LabelsPrefix}*"
CAPTURED = BUCKET_ARN + "/${OutputPrefix}capture/*"
S3_READ = {"s3:GetObject", "s3:GetObjectVersion"}
S3_LIST = {"s3:ListBucket"}
# Lists the bucket's open multipart uploads (keys and ids, no data) to abort a killed invocation's; no prefix condition.
S3_LIST_UPLOADS = {"s3:ListBucketMultipartUploads"}
# Every s3 action the function may hold, and where.
S3_WRITE = {"s3:PutObject", "s3:AbortMultipartUpload"}
S3_DELETE = {"s3:DeleteObject"}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data, problems = decode(str(ROOT / "template.yaml"))
    assert not problems and data is not None, f"template.yaml does not parse: {problems}"
    return dict(data)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _resource_text(resource: Any) -> str:
    """A Resource as a string: plain, !Sub text, or the logical id behind !GetAtt / !Ref."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        return "GetAtt:" + (".".join(att) if isinstance(att, list) else str(att))
    if isinstance(resource, dict) and "Ref" in resource:
        return "Ref:" + str(resource["Ref"])
    return repr(resource)


def function_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) for every policy statement that reaches the function's role."""
    resources = template["Resources"]
    function = resources["InferenceFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}, "the function must use the role checked here"
    assert "Policies" not in function, "SAM policy templates on the function bypass this check"
    role = resources["FunctionRole"]["Properties"]
    assert not role.get("ManagedPolicyArns"), "managed policies grant '*' resources"
    out = []
    for policy in role.get("Policies", []):
        out += [(policy["PolicyName"], s) for s in policy["PolicyDocument"]["Statement"]]
    for name, res in resources.items():
        if res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = res["Properties"]
            targets = _list(props.get("RoleName", props.get("Roles", [])))
            if {"Ref": "FunctionRole"} in targets:
                out += [(name, s) for s in props["PolicyDocument"]["Statement"]]
    assert out, "no statements found for the function's role"
    return out


# The only '*' a resource may hold: X-Ray's whole '*', and the one after a prefix parameter.
PREFIX_WILDCARDS = ("${InputPrefix}*", "${OutputPrefix}*", "${LabelsPrefix}*", "${OutputPrefix}capture/*")


def test_no_statement_names_every_resource_except_xray(template: dict[str, Any]) -> None:
    for where, st in function_statements(template):
        actions = set(_list(st["Action"]))
        assert st["Effect"] == "Allow" and "NotResource" not in st and "NotAction" not in st, (where, st)
        assert not any("*" in a for a in actions), f"{where}: wildcard action in {sorted(actions)}"
        for resource in map(_resource_text, _list(st["Resource"])):
            if resource == "*":
                assert actions <= XRAY, f"{where}: {sorted(actions)} on every resource"
                continue
            rest = resource
            for allowed in PREFIX_WILDCARDS:
                rest = rest.replace(allowed, "")
            # e.g. arn:aws:logs:*:account:* would pass a check for exactly '*'; it must not pass this one.
            assert "*" not in rest and "?" not in rest, f"{where}: a wildcard in {resource} for {sorted(actions)}"


@pytest.mark.parametrize("parameter", ["InputPrefix", "OutputPrefix", "BulkResultsPrefix", "LabelsPrefix"])
@pytest.mark.parametrize("value", ["*/", "incoming*/", "in?/", "a/*/"])
def test_prefix_parameters_refuse_iam_wildcards(template: dict[str, Any], parameter: str, value: str) -> None:
    """OutputPrefix '*/' would make "bucket/${OutputPrefix}*" every key: PutObject on the input too."""
    pattern = template["Parameters"][parameter]["AllowedPattern"]
    assert re.fullmatch(pattern, value) is None, f"{parameter} admits {value!r}"
    assert re.fullmatch(pattern, "incoming/") and re.fullmatch(pattern, "a/b.c_d/")  # plain prefixes still pass


@pytest.mark.parametrize("key", ["INPUT_PREFIX", "OUTPUT_PREFIX", "LABELS_PREFIX"])
@pytest.mark.parametrize("value", ["*/", "incoming*/", "in?/"])
def test_settings_refuse_wildcard_prefixes(key: str, value: str) -> None:
    other = {"INPUT_PREFIX": "in/", "OUTPUT_PREFIX": "out/"}
    with pytest.raises(SettingsError, match=f"{key}=.*wildcards"):
        Settings.from_env({**other, key: value})


def test_s3_reads_the_input_prefix_and_writes_only_the_output_prefix(template: dict[str, Any]) -> None:
    grants: dict[str, set[str]] = {}
    for where, st in function_statements(template):
        for action in _list(st["Action"]):
            if action.startswith("s3:"):
                for resource in map(_resource_text, _list(st["Resource"])):
                    grants.setdefault(action, set()).add(resource)
                    if action in S3_LIST:
                        prefix = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                        assert prefix == {"Fn::Sub": "${OutputPrefix}*"}, f"{where}: ListBucket beyond the output"
    for action, resources in grants.items():
        allowed = S3_READ | S3_WRITE | S3_LIST | S3_DELETE | S3_LIST_UPLOADS
        assert action in allowed, f"unexpected S3 action {action} on {resources}"
        if action in S3_DELETE:
            assert resources == {OUTPUT_LEASES}, f"{action} reaches beyond the function's leases: {resources}"
        if action in S3_WRITE:
            assert resources == {OUTPUT}, f"{action} reaches beyond the output prefix: {resources}"
        if action in S3_READ:
            # Not OUTPUT: the predictions are not the function's to read; of the captured rows (personal data,
            # maybe) only what joins labels, read by the labels trigger.
            assert resources <= {INPUT, OUTPUT_MARKERS, OUTPUT_LEASES, LABELS, CAPTURED}, (
                f"{action} reaches beyond the input, the markers, the labels and the captured rows: {resources}"
            )
        if action in S3_LIST | S3_LIST_UPLOADS:
            assert resources == {BUCKET_ARN}, resources
    assert grants.get("s3:GetObject", set()) >= {INPUT}, "the function cannot read its input"
    assert INPUT not in set().union(*(grants.get(a, set()) for a in S3_WRITE)), "the input prefix is writable"


def test_queues_and_logs_are_the_functions_own(template: dict[str, Any]) -> None:
    by_service: dict[str, set[str]] = {}
    for _, st in function_statements(template):
        for action in _list(st["Action"]):
            for resource in map(_resource_text, _list(st["Resource"])):
                by_service.setdefault(action, set()).add(resource)
    # The results queue, and the S3 trigger's on-failure destination (Lambda sends there with the function's role).
    assert by_service["sqs:SendMessage"] == {"GetAtt:ResultsQueue.Arn", "GetAtt:S3FailedEventQueue.Arn"}
    assert by_service["sqs:ReceiveMessage"] == {"GetAtt:RequestQueue.Arn"}
    assert by_service["sqs:DeleteMessage"] == {"GetAtt:RequestQueue.Arn"}
    assert by_service["logs:PutLogEvents"] == {"GetAtt:FunctionLogGroup.Arn"}


def test_the_function_url_requires_iam_auth_unless_api_auth_is_none(template: dict[str, Any]) -> None:
    param = template["Parameters"]["ApiAuth"]
    assert param["Default"] == "AWS_IAM" and "NONE" in param["AllowedValues"]
    assert template["Conditions"]["OpenApis"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "NONE"]}
    url = template["Resources"]["FunctionUrl"]["Properties"]
    assert url["AuthType"] == {"Fn::If": ["OpenApis", "NONE", "AWS_IAM"]}
    public = template["Resources"]["FunctionUrlPublicPermission"]
    assert public["Condition"] == "PublicFunctionUrl", "the public invoke permission must exist only without IAM auth"
    assert template["Conditions"]["PublicFunctionUrl"] == {
        "Fn::And": [{"Condition": "CreateFunctionUrl"}, {"Condition": "OpenApis"}]
    }


def test_only_the_data_bucket_may_invoke_the_function_through_s3(template: dict[str, Any]) -> None:
    """Without SourceArn any bucket of the account (anyone who may configure one) could invoke the function."""
    permissions = {
        name: res["Properties"]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Lambda::Permission" and res["Properties"]["Principal"] == "s3.amazonaws.com"
    }
    assert list(permissions) == ["InputObjectCreatedPermission"], permissions
    props = permissions["InputObjectCreatedPermission"]
    assert props["SourceArn"] == {"Fn::Sub": BUCKET_ARN}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # The ARN names the bucket the template creates.
    bucket = template["Resources"]["DataBucket"]["Properties"]["BucketName"]
    assert bucket == {"Fn::Sub": BUCKET_ARN.split(":::")[1]}
    events = template["Resources"]["InferenceFunction"]["Properties"]["Events"]
    assert not [e for e in events.values() if e["Type"] == "S3"], "SAM's S3 event writes a permission without SourceArn"


# --- The pre-traffic gate's role and CodeDeploy's role -----------------------------------------------------

# The only wildcard these two roles may hold: every version (and alias) of the inference function itself.
OWN_VERSIONS = "${InferenceFunction.Arn}:*"
OWN_DEPLOYMENT_GROUP = (
    "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
    "${ServerlessDeploymentApplication}/${InferenceFunctionDeploymentGroup}"
)
GATE_FUNCTION = (
    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-pretraffic-gate"
)


def role_statements(template: dict[str, Any], role_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) for every policy statement that reaches a role: inline, or attached by another resource."""
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), f"{role_id}: managed policies grant '*' resources"
    out = [
        (policy["PolicyName"], s) for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]
    ]
    for name, res in template["Resources"].items():
        if res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = res["Properties"]
            if {"Ref": role_id} in _list(props.get("RoleName", props.get("Roles", []))):
                out += [(name, s) for s in props["PolicyDocument"]["Statement"]]
    return out


def _grants(template: dict[str, Any], role_id: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for where, st in role_statements(template, role_id):
        assert st["Effect"] == "Allow" and not {"NotResource", "NotAction", "Condition"} & set(st), (where, st)
        for action in _list(st["Action"]):
            assert "*" not in action, f"{where}: wildcard action {action}"
            for resource in map(_resource_text, _list(st["Resource"])):
                # e.g. arn:aws:lambda:*:*:function:* would pass a check for exactly '*'; it must not pass this one.
                assert "*" not in resource.replace(OWN_VERSIONS, "") and "?" not in resource, f"{where}: {resource}"
                grants.setdefault(action, set()).add(resource)
    return grants


def test_every_role_in_the_template_is_one_these_tests_check(template: dict[str, Any]) -> None:
    roles = sorted(k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role")
    assert roles == [
        "ApiGatewayCloudWatchRole",
        "BulkInferenceRole",
        "DeploymentRole",
        "FunctionRole",
        "PreTrafficGateRole",
    ], roles
    machine = template["Resources"]["BulkInference"]["Properties"]
    assert machine["Role"] == {"Fn::GetAtt": ["BulkInferenceRole", "Arn"]} and "Policies" not in machine
    gate = template["Resources"]["PreTrafficGateFunction"]["Properties"]
    assert gate["Role"] == {"Fn::GetAtt": ["PreTrafficGateRole", "Arn"]} and "Policies" not in gate
    preference = template["Resources"]["InferenceFunction"]["Properties"]["DeploymentPreference"]
    assert preference["Role"] == {"Fn::GetAtt": ["DeploymentRole", "Arn"]}, "SAM's own would attach a '*' policy"


def test_the_gate_invokes_only_this_functions_versions_and_reports_only_to_its_own_deployment_group(
    template: dict[str, Any],
) -> None:
    assert _grants(template, "PreTrafficGateRole") == {
        "logs:CreateLogStream": {"GetAtt:PreTrafficGateLogGroup.Arn"},
        "logs:PutLogEvents": {"GetAtt:PreTrafficGateLogGroup.Arn"},
        "lambda:InvokeFunction": {OWN_VERSIONS},
        "codedeploy:PutLifecycleEventHookExecutionStatus": {OWN_DEPLOYMENT_GROUP},
        "codedeploy:GetDeployment": {OWN_DEPLOYMENT_GROUP},
    }
    trust = template["Resources"]["PreTrafficGateRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    assert all(s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"} for s in trust)


def test_codedeploy_may_move_only_the_live_alias_run_only_the_gate_and_read_only_the_rollback_alarms(
    template: dict[str, Any],
) -> None:
    alias = {"GetAtt:InferenceFunction.Arn", "${InferenceFunction.Arn}:live"}
    assert _grants(template, "DeploymentRole") == {
        "lambda:GetAlias": alias,
        "lambda:UpdateAlias": alias,
        "lambda:GetProvisionedConcurrencyConfig": {OWN_VERSIONS},
        "lambda:InvokeFunction": {GATE_FUNCTION},
        "cloudwatch:DescribeAlarms": {
            f"GetAtt:{a}.Arn"
            for a in (
                "ErrorRateAlarm",
                "Http5xxRateAlarm",
                "FeatureDriftAlarm",
                "PredictionDriftAlarm",
                "ModelQualityAlarm",
            )
        },
    }
    trust = template["Resources"]["DeploymentRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "codedeploy.amazonaws.com"}]
    assert all(s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"} for s in trust)
    # The gate CodeDeploy may invoke is the one the deployment runs, under the name the role grants.
    gate = template["Resources"]["PreTrafficGateFunction"]["Properties"]
    assert gate["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-pretraffic-gate"}
    assert template["Resources"]["InferenceFunction"]["Properties"]["DeploymentPreference"]["Hooks"] == {
        "PreTraffic": {"Ref": "PreTrafficGateFunction"}
    }


# --- The BulkInference state machine's role ------------------------------------------------------------

BULK_MACHINE = (
    "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-bulk-inference"
)
# A Distributed Map's children are executions of the state machine itself: the one wildcard this role may hold.
BULK_EXECUTIONS = (
    "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-bulk-inference/*"
)
RESULTS = BUCKET_ARN + "/${BulkResultsPrefix}*"
# The state machine's execution log goes through CloudWatch Logs' log delivery, whose actions have no resource-level
# permissions: Step Functions documents exactly these, on "*" (the only "*" of this role).
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


def test_bulk_inference_invokes_only_the_live_alias_reads_only_the_input_and_writes_only_its_results(
    template: dict[str, Any],
) -> None:
    grants: dict[str, set[str]] = {}
    for where, st in role_statements(template, "BulkInferenceRole"):
        assert st["Effect"] == "Allow" and not {"NotResource", "NotAction"} & set(st), (where, st)
        if _list(st["Resource"]) == ["*"]:
            assert set(_list(st["Action"])) == LOG_DELIVERY, f"{where}: {st['Action']} on every resource"
            continue
        for action in _list(st["Action"]):
            assert "*" not in action, f"{where}: wildcard action {action}"
            for resource in map(_resource_text, _list(st["Resource"])):
                rest = resource.replace(BULK_EXECUTIONS, "").replace("${InputPrefix}*", "")
                rest = rest.replace("${BulkResultsPrefix}*", "")
                assert "*" not in rest and "?" not in rest, f"{where}: a wildcard in {resource}"
                grants.setdefault(action, set()).add(resource)
            if "Condition" in st:  # only the listing's, which must stay within the input prefix
                assert _list(st["Action"]) == ["s3:ListBucket"], (where, st)
                assert st["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${InputPrefix}*"}}}, where
    assert grants == {
        "lambda:InvokeFunction": {"Ref:InferenceFunction.Alias"},
        "s3:GetObject": {INPUT, RESULTS},
        "s3:ListBucket": {BUCKET_ARN},
        "s3:PutObject": {RESULTS},
        "s3:ListMultipartUploadParts": {RESULTS},
        "s3:AbortMultipartUpload": {RESULTS},
        "states:StartExecution": {BULK_MACHINE},
        "states:DescribeExecution": {BULK_EXECUTIONS},
        "states:StopExecution": {BULK_EXECUTIONS},
    }
    trust = template["Resources"]["BulkInferenceRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]
    assert all(s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"} for s in trust)
    # The ARNs the role names are this state machine's: it is named so, and nothing else is.
    assert template["Resources"]["BulkInference"]["Properties"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-bulk-inference"
    }


def test_bulk_results_never_land_where_the_function_is_triggered(template: dict[str, Any]) -> None:
    """A results file under InputPrefix would start the function on the Map's own output."""
    results = template["Parameters"]["BulkResultsPrefix"]["Default"]
    assert not results.startswith(template["Parameters"]["InputPrefix"]["Default"])
    assert not template["Parameters"]["InputPrefix"]["Default"].startswith(results)


# --- API Gateway's CloudWatch role (REST API logs) ------------------------------------------------------------


def test_api_gateways_logging_role_only_writes_this_account_and_regions_logs(template: dict[str, Any]) -> None:
    """The account's API Gateway role serves every REST API of the account in the region, not only ours: it may write
    any log group there, and nothing else. It is created only when the account's own role is not named, and kept
    with the account setting when the stack is deleted (other APIs may log through it by then)."""
    role = template["Resources"]["ApiGatewayCloudWatchRole"]
    assert role["Condition"] == "CreateApiGatewayCloudWatchRole" and role["DeletionPolicy"] == "Retain"
    grants: dict[str, set[str]] = {}
    for where, st in role_statements(template, "ApiGatewayCloudWatchRole"):
        assert st["Effect"] == "Allow" and not {"NotResource", "NotAction", "Condition"} & set(st), (where, st)
        for action in _list(st["Action"]):
            grants.setdefault(action, set()).update(map(_resource_text, _list(st["Resource"])))
    log_groups = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
    assert grants == {
        action: {log_groups}
        for action in (
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogGroups",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        )
    }
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "apigateway.amazonaws.com"}]


def test_every_other_role_is_assumed_only_for_this_account(template: dict[str, Any]) -> None:
    """aws:SourceAccount on every trust policy a service assumes on the stack's behalf (the confused deputy). API
    Gateway's CloudWatch role is the account's, used for every REST API, and has the trust AWS documents for it."""
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::IAM::Role" or name == "ApiGatewayCloudWatchRole":
            continue
        for st in res["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, name
