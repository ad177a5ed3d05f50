"""Run by `.venv-clients`' Python (tritonclient installed): the Triton HTTP client's compression options.

Reads {"url", "model", "version", "output_names", "cases": [{"name", "inputs": [{name, shape, datatype,
data}], "binary", "request_compression", "response_compression"}]} on stdin. Writes, per case, the outputs
the client read and the Content-Encoding of the answer it got (read where the client reads it).
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.http import _infer_result

NUMPY = {"BOOL": bool, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64}
ENCODINGS = []  # the Content-Encoding of each answer, in order


def _record(init):
    # The client decompresses inside InferResult: the header it decided on is seen here, before that.
    def recording(self, response, verbose):
        ENCODINGS.append(response.get("Content-Encoding"))
        init(self, response, verbose)

    return recording


def _inputs(case):
    inputs = []
    for t in case["inputs"]:
        if t["datatype"] == "BYTES":
            array = np.array([str(v).encode() for v in t["data"]], dtype=np.object_).reshape(t["shape"])
        else:
            array = np.array(t["data"], dtype=NUMPY[t["datatype"]]).reshape(t["shape"])
        infer_input = httpclient.InferInput(t["name"], t["shape"], t["datatype"])
        infer_input.set_data_from_numpy(array, binary_data=case["binary"])
        inputs.append(infer_input)
    return inputs


def main():
    job = json.load(sys.stdin)
    _infer_result.InferResult.__init__ = _record(_infer_result.InferResult.__init__)
    client = httpclient.InferenceServerClient(url=job["url"])
    seen = {}
    for case in job["cases"]:
        outputs = [httpclient.InferRequestedOutput(n, binary_data=case["binary"]) for n in job["output_names"]]
        result = client.infer(
            job["model"],
            _inputs(case),
            model_version=job["version"],
            outputs=outputs,
            request_compression_algorithm=case["request_compression"],
            response_compression_algorithm=case["response_compression"],
        )
        seen[case["name"]] = {
            "content_encoding": ENCODINGS[-1],
            "outputs": {
                n: {"shape": list(result.as_numpy(n).shape), "data": result.as_numpy(n).reshape(-1).tolist()}
                for n in job["output_names"]
            },
        }
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    main()
