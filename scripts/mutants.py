"""Realistic bugs, each a one-place change to the code, and the tests that must catch it (`make mutation`).

Each mutant replaces `find` (which must occur exactly once in `path`) with `replace`. They are the
bugs this project exists to prevent: columns read in the wrong order, a fraction truncated, an
answer laid out per output, a row lost from a file, a tampered file served, an IAM grant widened.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    area: str
    path: str
    find: str
    replace: str
    tests: tuple[str, ...]


CORE = "tests/core"
GOLDEN = "tests/golden/test_golden.py"
S3 = "tests/triggers/s3/test_s3_source.py"
EVERY = "tests/triggers/s3/test_every_model.py"
SQS = "tests/triggers/test_sqs.py"

MUTANTS: tuple[Mutant, ...] = (
    # --- coercion ---------------------------------------------------------------------------
    Mutant(
        "ordered rows read in name order, not training order",
        "coercion",
        "handler/core/coerce.py",
        "return dict(zip(self.names, row, strict=True))",
        "return dict(zip(sorted(self.names), row, strict=True))",
        (CORE + "/test_coerce.py", GOLDEN),
    ),
    Mutant(
        "a fraction for an int input is truncated on the fast path",
        "coercion",
        "handler/core/values.py",
        "return bool((arr == np.floor(arr)).all() and (np.abs(arr, dtype=np.float64) <= _EXACT_INT).all())",
        "return bool((np.abs(arr, dtype=np.float64) <= _EXACT_INT).all())",
        (CORE + "/test_values.py",),
    ),
    Mutant(
        "an id equal to the Embedding's input_dim is accepted (off by one)",
        "coercion",
        "handler/core/value_rules.py",
        "min(hi, spec.index_range[1] - 1)",
        "min(hi, spec.index_range[1])",
        (CORE + "/test_values.py",),
    ),
    Mutant(
        "NaN passes the fast path",
        "coercion",
        "handler/core/values.py",
        "        if not np.isfinite(arr).all():\n            return None\n",
        "",
        (CORE + "/test_values.py",),
    ),
    # --- preprocessing ----------------------------------------------------------------------
    Mutant(
        "minmax divides by the maximum, not the range",
        "preprocessing",
        "handler/core/preprocessing.py",
        "return self.min, self.max - self.min",
        "return self.min, self.max",
        (GOLDEN,),
    ),
    Mutant(
        "one-hot column shifted by one within its feature",
        "preprocessing",
        "handler/core/preprocessing.py",
        "                flat[starts + offset + idx] = 1\n",
        "                flat[starts + offset + (idx + 1) % f.width] = 1\n",
        (GOLDEN,),
    ),
    Mutant(
        "an unseen category is encoded as the first known one instead of zeros",
        "preprocessing",
        "handler/core/preprocessing.py",
        "            known = idx >= 0\n",
        "            idx = np.maximum(idx, 0)\n            known = idx >= 0\n",
        (GOLDEN, CORE + "/test_preprocessing.py"),
    ),
    Mutant(
        "one example with an unseen category lights the first known column (the few-rows path)",
        "preprocessing",
        "handler/core/preprocessing.py",
        "i = get(v, -1)",
        "i = get(v, 0)",
        (GOLDEN,),
    ),
    # --- answer shape -----------------------------------------------------------------------
    Mutant(
        "several outputs answered stacked by output, not per instance",
        "answer shape",
        "handler/core/answer.py",
        "return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]",
        "return columns",
        (GOLDEN, CORE + "/test_answer.py"),
    ),
    Mutant(
        "one example without the batch axis is answered with it",
        "answer shape",
        "handler/core/answer.py",
        'return {"outputs": batch if req.batched else batch[0]}',
        'return {"outputs": batch}',
        (GOLDEN,),
    ),
    # --- S3 ---------------------------------------------------------------------------------
    Mutant(
        "prediction lines numbered from 1",
        "S3",
        "handler/formats/jsonl.py",
        """parts: list[Any] = ['{"row": ', _text(rows)]""",
        """parts: list[Any] = ['{"row": ', _text(rows + 1)]""",
        (S3,),
    ),
    Mutant(
        "CSV and Parquet predictions numbered from 1",
        "S3",
        "handler/formats/arrow.py",
        "columns = [pa.array(rows.astype(np.int64, copy=False)), *self._columns(outputs)]",
        "columns = [pa.array(rows.astype(np.int64, copy=False) + 1), *self._columns(outputs)]",
        (S3,),
    ),
    Mutant(
        "a text column's codes are not filtered with the rows refused beside them",
        "S3",
        "handler/formats/arrow.py",
        "{name: (codes[keep], levels) for name, (codes, levels) in coded.items()}",
        "{name: (codes, levels) for name, (codes, levels) in coded.items()}",
        ("tests/formats",),
    ),
    Mutant(
        "rejected rows are not written to the errors object",
        "S3",
        "handler/triggers/s3/chunks.py",
        "    if errors:\n        behind.submit(errs.write,",
        "    if False:\n        behind.submit(errs.write,",
        (S3, EVERY),
    ),
    Mutant(
        "a chunk in which every row is refused never writes its errors (the marker still counts them)",
        "S3",
        "handler/triggers/s3/chunks.py",
        "        n_good = len(rows)\n    if errors:\n        behind.submit(errs.write,",
        "        n_good = len(rows)\n        if errors:\n            behind.submit(errs.write,",
        ("tests/triggers/s3/test_s3_refused_chunks.py",),
    ),
    Mutant(
        "rows the model answered NaN for are published as predictions",
        "S3",
        "handler/triggers/s3/chunks.py",
        "        problems = prediction.problems\n",
        "        problems = {}\n",
        (EVERY,),
    ),
    # --- SQS --------------------------------------------------------------------------------
    Mutant(
        "a client's bad message is retried (and dead-lettered) instead of answered with the reason",
        "SQS",
        "handler/triggers/sqs.py",
        "if exc.status >= 500:",
        "if exc.status >= 400:",
        (SQS,),
    ),
    Mutant(
        "results filed under the SQS message id, not the request id",
        "SQS",
        "handler/triggers/sqs.py",
        "    deliver(result, request_id, settings)",
        "    deliver(result, message_id, settings)",
        (SQS,),
    ),
    # --- integrity --------------------------------------------------------------------------
    Mutant(
        "an artifact file the manifest does not list is accepted",
        "integrity",
        "handler/core/artifacts.py",
        "if (model_dir / fname).exists() and fname not in self.files:",
        "if False and (model_dir / fname).exists() and fname not in self.files:",
        (CORE + "/test_artifacts.py",),
    ),
    Mutant(
        "model.tflite's hash is not checked",
        "integrity",
        "handler/core/artifacts.py",
        "            if actual != expected:",
        '            if actual != expected and fname != "model.tflite":',
        (CORE + "/test_artifacts.py",),
    ),
    Mutant(
        "a manifest may name a file outside its folder",
        "integrity",
        "handler/model_store.py",
        'plain = name and "/" not in name and "\\\\" not in name and name not in (".", "..") and name != MANIFEST_FILE',
        "plain = name and name != MANIFEST_FILE",
        ("tests/security/test_artifact_integrity.py",),
    ),
    Mutant(
        "the downloaded model is cached by MODEL_S3_URI, so a re-export to the same URI serves the old files",
        "integrity",
        "handler/model_store.py",
        "hashlib.sha256(manifest_bytes).hexdigest()[:16]",
        "hashlib.sha256(uri.encode()).hexdigest()[:16]",
        ("tests/bootstrap/test_model_reexport.py",),
    ),
    # --- IAM --------------------------------------------------------------------------------
    Mutant(
        "OutputPrefix admits '*' again",
        "IAM",
        "template.yaml",
        "AllowedPattern: \"^[A-Za-z0-9!_.'()-][A-Za-z0-9!_.'()/-]*/$\"\n    Description: Predictions",
        "AllowedPattern: \"^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$\"\n    Description: Predictions",
        ("tests/security/test_template_privileges.py",),
    ),
    Mutant(
        "PutObject on every key of the bucket",
        "IAM",
        "template.yaml",
        "Action: [s3:PutObject, s3:AbortMultipartUpload]\n"
        '                Resource: !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::Region}-${AWS::AccountId}'
        '/${OutputPrefix}*"',
        "Action: [s3:PutObject, s3:AbortMultipartUpload]\n"
        '                Resource: !Sub "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::Region}-'
        '${AWS::AccountId}/*"',
        ("tests/security/test_template_privileges.py",),
    ),
    # --- runtimes and protocols ---------------------------------------------------------------
    Mutant(
        "LiteRT inputs bound by position, not by name",
        "runtime",
        "handler/core/model.py",
        'self._inputs = {s.name: (inputs[s.name]["index"], numpy_dtype(s.dtype)) for s in signature.inputs}',
        "self._inputs = {s.name: (d['index'], numpy_dtype(s.dtype)) "
        "for s, d in zip(signature.inputs, inputs.values(), strict=True)}",
        (GOLDEN,),
    ),
    Mutant(
        'a {"b64"} string stays bytes, so a b64 category is taken as unseen',
        "protocols",
        "handler/core/value_rules.py",
        '            raise ValueError("not valid base64") from None\n    return as_text(v)',
        '            raise ValueError("not valid base64") from None\n        return v\n    return as_text(v)',
        ("tests/triggers/http/test_http_one_value_one_answer.py",),
    ),
    Mutant(
        "OIP BYTES sent as binary data are not decoded to text (the one-tensor form's numbers refused)",
        "protocols",
        "handler/protocols/oip.py",
        "flat = [as_text(v) for v in flat]",
        "flat = list(flat)",
        ("tests/triggers/http/test_http_one_value_one_answer.py",),
    ),
    Mutant(
        "a CSV's True/False cells refused for a number feature",
        "files",
        "handler/formats/arrow.py",
        "            if digits is not None:  # it has no true/false word left: this recursion ends\n",
        "            if False:\n",
        ("tests/triggers/http/test_http_one_value_one_answer.py",),
    ),
    Mutant(
        "the S3 job's marker and lease are written unconditionally (the last writer wins)",
        "S3",
        "handler/triggers/s3/marker.py",
        'condition = {"IfMatch": over.etag} if over.etag else {"IfNoneMatch": "*"}',
        "condition: dict[str, str] = {}",
        ("tests/triggers/s3/test_s3_versions.py",),
    ),
    Mutant(
        "reads of an S3 object after the first are not pinned to its version",
        "S3",
        "handler/s3_objects.py",
        '            kwargs["IfMatch"] = f\'"{self.etag}"\'\n',
        "            pass\n",
        ("tests/triggers/s3/test_s3_versions.py",),
    ),
    Mutant(
        "a resumed S3 job starts again from row 0 instead of its checkpoint",
        "S3",
        "handler/triggers/s3/chunks.py",
        "start = resume.next_row if resume is not None else 0",
        "start = 0",
        ("tests/triggers/s3/test_s3_resume.py",),
    ),
    Mutant(
        "BYTES element lengths of the binary tensor extension read big-endian",
        "protocols",
        "handler/protocols/oip_binary.py",
        '(size,) = struct.unpack_from("<I", raw, pos)',
        '(size,) = struct.unpack_from(">I", raw, pos)',
        ("tests/triggers/http/test_http_binary.py",),
    ),
    Mutant(
        "a direct invoke that cannot be answered returns an error object as a success",
        "protocols",
        "handler/triggers/direct.py",
        'return body if mode == "return" else Failure(_typed(exc.status)(json.dumps(body)))',
        "return body",
        ("tests/bootstrap/test_model_loading_faults.py",),
    ),
    Mutant(
        "a second SQS message with a request id already used in its batch overwrites the first's result",
        "SQS",
        "handler/triggers/sqs.py",
        "owner = owners.setdefault(request_id, message_id)",
        "owner = message_id",
        ("tests/triggers/test_sqs_duplicates.py",),
    ),
    Mutant(
        "a retry that takes an S3 job's lease over leaves the dead invocation's uploads open",
        "S3",
        "handler/triggers/s3/job.py",
        "            _abort_orphans(s3, out, resume)\n",
        "            pass\n",
        ("tests/triggers/s3/test_s3_killed.py",),
    ),
    Mutant(
        "a resumed Map batch answers its first items again in place of the rest",
        "Map",
        "handler/triggers/map_batch.py",
        "piece = items[position - start : position - start + size]",
        "piece = items[position : position + size]",
        ("tests/triggers/test_map_batch_deadline.py",),
    ),
    Mutant(
        "a CSV line too long to parse is passed on, failing the whole file",
        "files",
        "handler/formats/long_rows.py",
        "if line > self._limit and not self._quoted:",
        "if False:",
        ("tests/formats/test_long_rows.py", "tests/formats/test_csv.py"),
    ),
    Mutant(
        "a CSV's refused records numbered from their block, not from the file",
        "files",
        "handler/formats/csv.py",
        "    if offset:\n        for e in errors:",
        "    if False:\n        for e in errors:",
        ("tests/formats/test_csv_blocks.py", "tests/formats/test_csv.py"),
    ),
    Mutant(
        "a CSV block cut at a line break inside a quoted value",
        "files",
        "handler/formats/csv_blocks.py",
        "if before % 2 == 0:",
        "if True:",
        ("tests/formats/test_csv_blocks.py",),
    ),
    # --- monitoring ---------------------------------------------------------------------------
    Mutant(
        "an index id served as 17.0 or '17' counted outside the range",
        "monitoring",
        "handler/monitoring/index.py",
        "whole = np.isfinite(v) & (v == np.floor(v))",
        "whole = np.zeros(v.shape, dtype=bool)",
        ("tests/monitoring/test_index_bins.py",),
    ),
    Mutant(
        "a spread-only drift (doubled noise) not called drifted",
        "monitoring",
        "handler/monitoring/drift.py",
        "drifted=score > threshold or spread.score > threshold or moved > threshold,",
        "drifted=score > threshold or moved > threshold,",
        ("tests/monitoring/test_channels.py", "tests/monitoring/test_emf_dispersion.py"),
    ),
    Mutant(
        "a drift threshold not scaled to the window's rows (a large file judged as leniently as a window)",
        "monitoring",
        "handler/monitoring/calibration.py",
        "served = 1 / rows + 1 / self.training_rows",
        "served = drawn = 1.0",
        ("tests/monitoring/test_calibration.py",),
    ),
    Mutant(
        "each feature calibrated at the whole false-alarm rate (the features together alarm k times as often)",
        "monitoring",
        "handler/monitoring/calibration.py",
        "p = false_alarm_rate / max(len(refs), 1)",
        "p = false_alarm_rate",
        ("tests/monitoring/test_calibration.py",),
    ),
    Mutant(
        "a mean moved past the last bin not flagged by its shift (PSI's ceiling)",
        "monitoring",
        "handler/monitoring/drift.py",
        "moved = max((s for s in shifts if not math.isnan(s)), default=math.nan)",
        "moved = math.nan",
        ("tests/monitoring/test_shift.py",),
    ),
)
