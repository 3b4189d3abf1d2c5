"""Property-based fuzzing with bounded examples: mutated images, IDX headers, JSON bodies, and the API
as its OpenAPI schema describes it. The only allowed outcomes are an answer or a clear error (a 4xx over
HTTP), within a time bound; a 500 or any other exception is a failure."""

import io
import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from digitnet.errors import DataError, ImageError  # noqa: E402
from digitnet.server import Limits, create_app  # noqa: E402

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SECONDS_PER_INPUT = 2.0  # far above a real image's few milliseconds: a hang or a blow-up fails


def _seed_files() -> dict[str, bytes]:
    """One small digit-like picture in every format we read."""
    a = np.full((40, 32), 240, np.uint8)
    a[8:32, 14:19] = 20  # a "1"
    a[8:12, 10:19] = 20
    im = Image.fromarray(a)
    out = {}
    for fmt, kw in (("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("TIFF", {}), ("WEBP", {"quality": 80})):
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        out[fmt] = buf.getvalue()
    return out


SEEDS = _seed_files()


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "duplicate", "zero"]))
        n = len(data)
        i = draw(st.integers(0, max(0, n - 1)))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[i:]
        elif kind == "splice":  # a chunk or marker moved elsewhere, as broken writers do
            j, k = sorted(draw(st.tuples(st.integers(0, n), st.integers(0, n))))
            data[i:i] = data[j : min(k, j + 64)]
        elif kind == "duplicate":
            data[i:i] = data[i : i + draw(st.integers(1, 32))]
        else:
            data[i : i + draw(st.integers(1, 16))] = b"\x00" * len(data[i : i + 16])
        if not data:
            break
    return bytes(data)


@FUZZ
@given(data=mutated_images())
def test_mutated_images_give_a_result_or_an_image_error(predictor, data):
    t = time.perf_counter()
    try:
        r = predictor.predict_image(data)
        assert r.digits is None or r.digits.replace("\n", "").isdigit()
        json.dumps(r.to_dict(), allow_nan=False)  # always valid JSON
    except ImageError:
        pass
    assert time.perf_counter() - t < SECONDS_PER_INPUT


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor, limits=Limits(max_pixels=4_000_000)))


@FUZZ
@given(data=mutated_images())
def test_mutated_uploads_get_200_or_a_4xx(client, data):
    r = client.post("/api/predict", files={"file": ("f", data, "application/octet-stream")})
    assert r.status_code in (200, 400, 413), r.text
    assert r.headers["content-type"] == "application/json"


@FUZZ
@given(header=st.binary(min_size=0, max_size=24), tail=st.binary(max_size=64), grow=st.integers(0, 3))
def test_the_idx_parser_refuses_mutated_headers_cleanly(tmp_path_factory, header, tail, grow):
    from digitnet.data import read_idx, write_idx

    folder = tmp_path_factory.mktemp("idx")
    write_idx(folder / "ok", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    good = (folder / "ok").read_bytes()
    cut = min(len(header), len(good))
    (folder / "bad").write_bytes(header + good[cut:] + tail * grow)  # a new header over real data
    try:
        a = read_idx(folder / "bad")
        assert isinstance(a, np.ndarray)
    except DataError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=900,
)


@FUZZ
@given(body=st.one_of(json_values, st.fixed_dictionaries({"pixels": json_values}),
                      st.fixed_dictionaries({"image": json_values}),
                      st.fixed_dictionaries({"pixels": st.lists(st.integers(-5, 300), min_size=784, max_size=784)})))
def test_json_bodies_of_any_shape_get_200_or_a_4xx(client, body):
    r = client.post("/api/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code != 200:
        assert set(r.json()) <= {"error", "code"}


# ------------------------------------------------------------------------- the API, from its own schema

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def api_schema(predictor, tmp_path_factory):
    from digitnet import config

    with pytest.MonkeyPatch.context() as mp:  # the learning endpoints write: into a home of their own
        mp.setenv("DIGITNET_DATA", str(config.resolve_cache_dir(None)))
        mp.setenv("DIGITNET_HOME", str(tmp_path_factory.mktemp("fuzz-home")))
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(predictor))


def test_schemathesis_finds_no_500_and_no_schema_mismatch(api_schema):
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operations = list(api_schema.get_all_operations())
    assert len(operations) >= 4
    calls: dict[str, int] = {}
    for result in operations:
        operation = result.ok()

        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call_and_validate(checks=checks)
            calls[case.path] = calls.get(case.path, 0) + 1
            assert response.status_code < 500

        check()
    print(calls)
    assert set(calls) == {"/healthz", "/api/model", "/api/predict", "/api/explain", "/api/predict/batch",
                          "/api/samples", "/api/samples/{sample_id}", "/api/personalize"}
    assert sum(calls.values()) >= 40  # it really sent generated requests
