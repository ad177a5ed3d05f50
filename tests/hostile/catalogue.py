"""The catalogue of named bad inputs: what each sends, and the exact status, code, message fragment and (for a
422) the exact instances and inputs its answer must name. Churn's entries and the transport ones are here; every
zoo model's are in catalogue_zoo.py; CATALOGUE holds them all."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.hostile.bad_input import SECRET_NUMBER, SECRET_TEXT, BadInput, infer, tensor, v1, v2
from tests.hostile.catalogue_zoo import ZOO_CATALOGUE
from tests.support import zoo

PREDICT = "/v1/models/churn:predict"
INFER = infer("churn")

ROW: dict[str, Any] = zoo.cases("churn")[0]["request"]["instances"][0]
_DROP = object()
ROW_ORDER = zoo.feature_names("churn")


def row(**changes: Any) -> dict[str, Any]:
    out = {**ROW, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


MAX_BODY = 6 * 1024 * 1024
AGE = ((0, "age"),)

CHURN_CATALOGUE: list[BadInput] = [
    # --- not a JSON object -------------------------------------------------------------------
    BadInput("empty_body", 400, "no body", lambda: ""),
    BadInput("no_body_at_all", 400, "no body", lambda: None),
    BadInput("whitespace_only", 400, "no body", lambda: "   \n\t "),
    BadInput("json_null", 400, "got null", lambda: "null"),
    BadInput("empty_array", 400, "JSON object", lambda: "[]"),
    BadInput("bare_string", 400, "JSON object", lambda: '"predict this"'),
    BadInput("bare_number", 400, "JSON object", lambda: "42"),
    BadInput("bare_true", 400, "JSON object", lambda: "true"),
    BadInput("bare_nan", 400, "JSON object", lambda: "NaN"),
    BadInput("truncated_json", 400, "position", lambda: '{"instances": [{"age": 4'),
    BadInput("trailing_garbage", 400, "Extra data", lambda: v1(ROW) + " x"),
    BadInput("single_quotes", 400, "not valid JSON", lambda: "{'instances': []}"),
    BadInput("utf8_bom_prefix", 400, "not valid JSON", lambda: "\ufeff" + v1(ROW)),
    BadInput("raw_control_char_in_string", 400, "not valid JSON", lambda: v1(ROW).replace("dsl", "d\x00sl")),
    # --- deep and wide -----------------------------------------------------------------------
    BadInput("nested_arrays_10000_levels", 400, "nested more than", lambda: "[" * 10_000 + "]" * 10_000),
    BadInput("nested_objects_10000_levels", 400, "nested more than", lambda: '{"a":' * 10_000 + "1" + "}" * 10_000),
    BadInput("unclosed_arrays_10000_levels", 400, "nested more than", lambda: "[" * 10_000),
    BadInput(
        "nested_arrays_100_levels_in_instances",
        400,
        "nested more than",
        lambda: '{"instances": ' + "[" * 100 + "]" * 100 + "}",
    ),
    BadInput(
        "nested_data_900_levels_in_v2_tensor",
        400,
        "nested more than",
        lambda: (
            '{"inputs": [{"name": "features", "shape": [1, 12], "datatype": "BYTES", "data": '
            + "[" * 900
            + "]" * 900
            + "}]}"
        ),
        path=INFER,
    ),
    BadInput("million_instances", 422, "MAX_BATCH_SIZE=1024", lambda: json.dumps({"instances": [0] * 10**6})),
    BadInput(
        "million_element_feature",
        422,
        "must be a single value, got an array",
        lambda: v1(row(age=[0] * 10**6)),
        details=AGE,
    ),
    BadInput(
        "million_element_v2_tensor",
        422,
        "values but shape [1, 12] needs 12",
        lambda: v2(tensor("features", [1, 12], "BYTES", [0] * 10**6)),
        path=INFER,
    ),
    BadInput("batch_over_max_batch_size", 422, "over MAX_BATCH_SIZE=1024", lambda: v1(*[ROW] * 1025)),
    BadInput("body_over_max_body_bytes", 413, "MAX_BODY_BYTES", lambda: v1(ROW) + " " * MAX_BODY),
    BadInput(
        "base64_body_over_max_body_bytes",
        413,
        "MAX_BODY_BYTES",
        lambda: _b64(b" " * (MAX_BODY + 1)),
        base64=True,
    ),
    # --- numbers -----------------------------------------------------------------------------
    BadInput("float_1e400", 422, "finite number", lambda: v1(ROW).replace("28.0", "1e400"), details=AGE),
    BadInput("int_10_pow_400", 422, "too large", lambda: v1(ROW).replace("28.0", str(10**400)), details=AGE),
    BadInput("numeric_string_10_pow_400", 422, "too large", lambda: v1(row(age="1" + "0" * 400)), details=AGE),
    BadInput("int_over_4300_digits", 400, "too many digits", lambda: v1(ROW).replace("28.0", "9" * 5000)),
    BadInput("nan_literal", 422, "finite number", lambda: v1(ROW).replace("28.0", "NaN"), details=AGE),
    BadInput("infinity_literal", 422, "finite number", lambda: v1(ROW).replace("28.0", "Infinity"), details=AGE),
    BadInput("minus_infinity_literal", 422, "finite number", lambda: v1(ROW).replace("28.0", "-Infinity"), details=AGE),
    BadInput(
        "non_numeric_string",
        422,
        "must be a number, got a string",
        lambda: v1(row(age=SECRET_TEXT)),
        secrets=(SECRET_TEXT,),
        details=AGE,
    ),
    BadInput("null_feature_value", 422, "must be a number, got null", lambda: v1(row(age=None)), details=AGE),
    BadInput(
        "object_as_feature_value",
        422,
        "must be a single value, got an object",
        lambda: v1(row(age={"v": 1})),
        details=AGE,
    ),
    # --- strings -----------------------------------------------------------------------------
    BadInput(
        "nul_byte_in_category",
        422,
        "not a known category",
        lambda: v1(row(contract_type="one_year\u0000" + SECRET_TEXT)),
        secrets=(SECRET_TEXT,),
        details=((0, "contract_type"),),
    ),
    BadInput(
        "nul_byte_in_feature_name",
        422,
        "is not an input of this model",
        lambda: v1({**ROW, "age\u0000": 1.0}),
        details=((0, "age\u0000"),),
    ),
    BadInput("lone_surrogate_in_category", 422, "not a known category", lambda: v1(ROW).replace("one_year", "\\ud800")),
    BadInput(
        "unicode_feature_names",
        422,
        "is not an input of this model",
        lambda: v1({**ROW, "âge": 1.0, "年齢": 2.0, "🙂": 3.0}),
        details=((0, "âge"), (0, "年齢"), (0, "🙂")),
    ),
    BadInput("unicode_category_value", 422, "not a known category", lambda: v1(row(contract_type="ワン・イヤー"))),
    BadInput(
        "unknown_category_is_not_echoed",
        422,
        "expected one of month_to_month",
        lambda: v1(row(contract_type=SECRET_TEXT)),
        secrets=(SECRET_TEXT,),
    ),
    BadInput(
        "bool_in_categorical",
        422,
        'must be a string (or {"b64": ...} for bytes), got a boolean',
        lambda: v1(row(contract_type=True)),
        details=((0, "contract_type"),),
    ),
    BadInput(
        "number_in_categorical",
        422,
        'must be a string (or {"b64": ...} for bytes), got a number',
        lambda: v1(row(contract_type=3)),
        details=((0, "contract_type"),),
    ),
    # --- duplicate keys ----------------------------------------------------------------------
    BadInput(
        "duplicate_top_level_key",
        400,
        "'instances' twice",
        lambda: '{"instances": [' + json.dumps(ROW) + '], "instances": []}',
    ),
    BadInput("duplicate_feature_key", 400, "'age' twice", lambda: v1(ROW)[:-3] + ', "age": 99.0}]}'),
    # --- transport -----------------------------------------------------------------------------
    # A body that parses as JSON is taken whatever its Content-Type (TF Serving's examples use curl -d);
    # one that does not is a 400 naming the type it came as.
    BadInput(
        "content_type_text_plain",
        400,
        "not valid JSON (sent as Content-Type 'text/plain')",
        lambda: "instances: all",
        headers={"content-type": "text/plain"},
    ),
    BadInput(
        "content_type_form_urlencoded",
        400,
        "not valid JSON (sent as Content-Type 'application/x-www-form-urlencoded')",
        lambda: "instances=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    BadInput(
        "content_type_multipart",
        400,
        "not valid JSON (sent as Content-Type 'multipart/form-data; boundary=x')",
        lambda: "--x\r\n\r\n--x--",
        headers={"content-type": "multipart/form-data; boundary=x"},
    ),
    BadInput(
        "unknown_signature_name",
        400,
        "signature_name must be 'serving_default'",
        lambda: json.dumps({"instances": [ROW], "signature_name": "classify_x"}),
    ),
    BadInput("invalid_base64", 400, "not valid base64", lambda: "not base64!!", base64=True),
    BadInput("base64_of_non_utf8_bytes", 400, "not UTF-8", lambda: _b64(b"\xff\xfe{\x00}"), base64=True),
    # --- shape of a v1 body ------------------------------------------------------------------
    BadInput("empty_object", 422, "exactly one of 'instances'", lambda: "{}"),
    BadInput("instances_and_inputs", 422, "exactly one of", lambda: json.dumps({"instances": [ROW], "inputs": {}})),
    BadInput(
        "instances_is_an_object",
        422,
        "must be an array, got an object",
        lambda: json.dumps({"instances": ROW}),
        details=((None, "instances"),),
    ),
    BadInput(
        "instances_is_a_string",
        422,
        "must be an array, got a string",
        lambda: json.dumps({"instances": "all"}),
        details=((None, "instances"),),
    ),
    BadInput("instances_empty", 422, "is empty", lambda: v1()),
    BadInput(
        "instance_is_a_number",
        422,
        "must be an object with one entry per input",
        lambda: v1(ROW, 5),
        details=((1, None),),
    ),
    BadInput("row_too_short", 422, "has 3 values but the model takes 12", lambda: v1([1, 2, 3]), details=((0, None),)),
    BadInput("row_too_long", 422, "has 13 values", lambda: v1([*ROW.values(), 1.0]), details=((0, None),)),
    BadInput("missing_feature", 422, "is missing", lambda: v1(ROW, row(age=_DROP)), details=((1, "age"),)),
    BadInput(
        "each_feature_null_in_its_own_row",
        422,
        "instance 0, feature 'tenure_months': must be a number, got null",
        lambda: v1(*(row(**{f: None}) for f in ROW_ORDER)),
        details=tuple(enumerate(ROW_ORDER)),
    ),
    BadInput("unknown_top_level_key", 422, "unknown top-level key", lambda: json.dumps({"instances": [ROW], "x": 1})),
    BadInput(
        "columns_mix_scalars_and_arrays",
        422,
        "is one example (float64 scalar) while other inputs are batches",
        lambda: json.dumps({"inputs": {**ROW, "age": [1.0, 2.0]}}),
    ),
    BadInput(
        "columns_of_different_lengths",
        422,
        "inputs have different batch sizes",
        lambda: json.dumps({"inputs": {k: [v, v] if k != "age" else [v] for k, v in ROW.items()}}),
    ),
    # --- routes ------------------------------------------------------------------------------
    BadInput(
        "unknown_model_name", 404, "model 'fraud' is not served here", lambda: v1(ROW), path="/v1/models/fraud:predict"
    ),
    BadInput("unknown_path", 404, "no route", lambda: None, method="GET", path="/v3/everything"),
    BadInput("get_on_predict", 405, "use POST", lambda: None, method="GET"),
    BadInput("put_on_infer", 405, "use POST", lambda: v2(), method="PUT", path=INFER),
    BadInput("delete_on_model_status", 405, "use GET", lambda: None, method="DELETE", path="/v1/models/churn"),
    # --- Open Inference Protocol v2 tensors --------------------------------------------------
    BadInput("v2_no_tensors", 422, "non-empty array", lambda: v2(), path=INFER),
    BadInput(
        "v2_data_length_does_not_fit_shape",
        422,
        "data has 1 values but shape [2] needs 2",
        lambda: v2(tensor("age", [2], "FP32", [1.0])),
        path=INFER,
    ),
    BadInput(
        "v2_negative_shape",
        422,
        "non-negative integers",
        lambda: v2(tensor("age", [-1], "FP32", [1.0])),
        path=INFER,
    ),
    BadInput(
        "v2_rank_3_feature_tensor",
        422,
        "must be [n]: the batch, then float64 scalar",
        lambda: v2(tensor("age", [1, 1, 1], "FP32", [[[1.0]]])),
        path=INFER,
    ),
    BadInput(
        "v2_rows_tensor_of_the_wrong_width",
        422,
        "must be [n, 12]",
        lambda: v2(tensor("features", [1, 3], "BYTES", [[1, 2, 3]])),
        path=INFER,
    ),
    BadInput(
        "v2_unknown_datatype",
        422,
        "'FP99' is not one of",
        lambda: v2(tensor("age", [1], "FP99", [1.0])),
        path=INFER,
    ),
    BadInput(
        "v2_string_in_an_int_tensor",
        422,
        "data[0] is not an integer",
        lambda: v2(tensor("age", [1], "INT64", [SECRET_TEXT])),
        path=INFER,
        secrets=(SECRET_TEXT,),
    ),
    BadInput(
        "v2_float_in_an_int_tensor",
        422,
        "holds integers",
        lambda: v2(tensor("age", [1], "INT64", [SECRET_NUMBER])),
        path=INFER,
        secrets=(str(SECRET_NUMBER),),
    ),
    BadInput(
        "v2_tensors_of_different_batch_sizes",
        422,
        "different batch sizes",
        lambda: v2(tensor("age", [1], "FP32", [1.0]), tensor("tenure_months", [2], "FP32", [1.0, 2.0])),
        path=INFER,
    ),
    BadInput(
        "v2_tensor_sent_twice",
        422,
        "is sent twice",
        lambda: v2(tensor("age", [1], "FP32", [1.0]), tensor("age", [1], "FP32", [2.0])),
        path=INFER,
    ),
    BadInput(
        "v2_shape_not_integers",
        422,
        "shape",
        lambda: v2(tensor("age", [1], "FP32", [1.0])).replace("[1]", '["one"]'),
        path=INFER,
    ),
]

CATALOGUE: list[BadInput] = CHURN_CATALOGUE + ZOO_CATALOGUE
