"""The signature: names, dtypes and shapes as the manifest records them and the protocols name them."""

from __future__ import annotations

import pytest

from handler.core.signature import Signature, TensorSpec

IMAGE = TensorSpec("image", "uint8", (28, 28, 1))
ITEM = TensorSpec("item_id", "int32", (), index_range=(0, 200))
PLAN = TensorSpec("plan", "string", (), vocabulary=frozenset({"pro", "basic"}))
AGE = TensorSpec("age", "float64", (), fill_value=54.5)
OUT = TensorSpec("output_0", "float32", (10,))


def test_a_spec_describes_itself_for_messages() -> None:
    assert IMAGE.describe() == "uint8 [28, 28, 1]"
    assert ITEM.describe() == "int32 scalar"
    assert TensorSpec("tokens", "int32", (None,)).describe() == "int32 [any]"


def test_dtypes_map_to_the_protocols_names() -> None:
    # The design's table: numpy/Keras -> OIP -> TF Serving.
    assert (IMAGE.oip_datatype, IMAGE.tf_dtype) == ("UINT8", "DT_UINT8")
    assert (PLAN.oip_datatype, PLAN.tf_dtype) == ("BYTES", "DT_STRING")
    assert (AGE.oip_datatype, AGE.tf_dtype) == ("FP64", "DT_DOUBLE")
    assert (TensorSpec("h", "float16").oip_datatype, TensorSpec("h", "float16").tf_dtype) == ("FP16", "DT_HALF")
    assert [s.kind for s in (IMAGE, ITEM, PLAN, AGE, TensorSpec("b", "bool"))] == [
        "int",
        "int",
        "string",
        "float",
        "bool",
    ]


def test_rank_and_size() -> None:
    assert (IMAGE.rank, IMAGE.size) == (3, 784)
    assert (ITEM.rank, ITEM.size) == (0, 1)
    assert TensorSpec("tokens", "int32", (None, 4)).size is None


def test_specs_round_trip_through_the_manifest_form() -> None:
    for spec in (IMAGE, ITEM, PLAN, AGE):
        again = TensorSpec.from_dict(spec.to_dict())
        assert again == spec and again.vocabulary == spec.vocabulary
    assert ITEM.to_dict() == {"name": "item_id", "dtype": "int32", "shape": [], "index_range": [0, 200]}
    assert PLAN.to_dict()["vocabulary"] == ["basic", "pro"]
    assert TensorSpec.from_dict({"name": "t", "dtype": "int32", "shape": [None, 3]}).shape == (None, 3)


def test_an_unsupported_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="tensor 'x' has dtype 'complex64'"):
        TensorSpec("x", "complex64")


def test_a_signature_round_trips_and_knows_whether_every_feature_is_a_scalar() -> None:
    tabular = Signature((AGE, PLAN), (TensorSpec("features", "float32", (3,)),), (OUT,))
    assert tabular.scalar_features and tabular.feature_names == ["age", "plan"]
    images = Signature((IMAGE,), (IMAGE,), (OUT,))
    assert not images.scalar_features
    two = Signature((ITEM, IMAGE), (ITEM, IMAGE), (OUT, TensorSpec("s", "float32")), "dict", "dict")
    assert Signature.from_dict(two.to_dict()) == two
    assert two.feature("image") == IMAGE and two.output_names == ["output_0", "s"]
    with pytest.raises(KeyError):
        two.feature("nope")


def test_a_signature_refuses_repeated_names_and_empty_sides() -> None:
    with pytest.raises(ValueError, match="repeat a name"):
        Signature((AGE, AGE), (AGE,), (OUT,))
    with pytest.raises(ValueError, match="no outputs"):
        Signature((AGE,), (AGE,), ())
