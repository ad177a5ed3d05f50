"""Run by `.venv-clients`' Python (tritonclient installed): the Triton HTTP client against our server.

Reads {"url", "model", "version", "cases": [{"name", "inputs": [{name, shape, datatype, data}],
"binary_in", "binary_out"}]} on stdin, writes what the client saw as JSON on stdout. `binary_out`
None leaves the outputs to the client's defaults (it then asks for every output, as binary data).
Besides infer, the client's calls of Triton's extensions: the model configuration, the repository
index, and the inference statistics before and after the cases (and for every model).
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

NUMPY = {"BOOL": bool, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "FP64": np.float64}


def main() -> None:
    job = json.load(sys.stdin)
    client = httpclient.InferenceServerClient(url=job["url"])
    model, version = job["model"], job["version"]
    seen = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "server": client.get_server_metadata(),
        "model_ready": client.is_model_ready(model, version),
        "model_ready_unknown_version": client.is_model_ready(model, "999"),
        "metadata": client.get_model_metadata(model, version),
        "config": client.get_model_config(model, version),
        "config_latest": client.get_model_config(model),
        "config_unknown_version": _error(lambda: client.get_model_config(model, "999")),
        "index": client.get_model_repository_index(),
        "stats_before": client.get_inference_statistics(model, version),
        "cases": {},
    }
    output_names = [o["name"] for o in seen["metadata"]["outputs"]]
    for case in job["cases"]:
        inputs = []
        for t in case["inputs"]:
            if t["datatype"] == "BYTES":
                array = np.array([v.encode() for v in t["data"]], dtype=np.object_).reshape(t["shape"])
            else:
                array = np.array(t["data"], dtype=NUMPY[t["datatype"]]).reshape(t["shape"])
            infer_input = httpclient.InferInput(t["name"], t["shape"], t["datatype"])
            infer_input.set_data_from_numpy(array, binary_data=case["binary_in"])
            inputs.append(infer_input)
        outputs = None
        if case["binary_out"] is not None:
            outputs = [httpclient.InferRequestedOutput(n, binary_data=case["binary_out"]) for n in output_names]
        result = client.infer(model, inputs, model_version=version, outputs=outputs)
        seen["cases"][case["name"]] = {
            n: {"shape": list(result.as_numpy(n).shape), "data": result.as_numpy(n).reshape(-1).tolist()}
            for n in output_names
        }
    seen["stats_after"] = client.get_inference_statistics(model, version)
    seen["stats_model"] = client.get_inference_statistics(model)
    seen["stats_all"] = client.get_inference_statistics()
    json.dump(seen, sys.stdout)


def _error(call) -> dict:
    """The client's exception for a call that must fail: its status and message."""
    try:
        answer = call()
    except InferenceServerException as exc:
        return {"status": exc.status(), "message": exc.message()}
    return {"status": None, "answer": answer}


if __name__ == "__main__":
    main()
