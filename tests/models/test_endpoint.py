"""The served model's HTTP side against a real HTTP server whose answers the test scripts:
requests go out concurrently, retries honour Retry-After and back off, malformed answers
fail with an error naming the request, the response cache answers a rerun, and the key
goes into the Authorization header and nowhere else."""

from __future__ import annotations

import time

import pytest

from harness.cost.prices import Price
from harness.errors import ConfigError
from harness.models.endpoint import Endpoint, EndpointSettings, ServedError, retry_after_s
from harness.models.served import ServedLM
from tests.models.scripted_server import ScriptedServer, completion, models


def letter_server(delay_s: float = 0.0, **kw) -> ScriptedServer:
    def script(path, body, headers):
        if path.endswith("/models"):
            return 200, {}, models()
        return 200, {}, completion("B", {"A": -2.0, " B": -0.1, "C": -3.0}, **kw)
    return ScriptedServer(script, delay_s)


def served(server: ScriptedServer, tmp_path, **settings) -> ServedLM:
    s = EndpointSettings(base_url=server.base_url, name="m", **settings)
    return ServedLM(Endpoint(s, tmp_path / "served"), kind="completions",
                    price=Price(input_per_mtok=1.0, output_per_mtok=2.0))


def test_requests_of_a_batch_go_out_concurrently(tmp_path):
    server = letter_server(delay_s=0.3)
    try:
        lm = served(server, tmp_path, max_concurrency=8)
        scores = lm.score_letters([f"question {i}" for i in range(8)], [3] * 8, top_k=5)
        assert server.max_in_flight >= 4  # sent together, not one by one
        assert [s.logprobs for s in scores] == [(-2.0, -0.1, -3.0)] * 8
        assert scores[0].batch_seconds >= 0.3  # each request's own latency
        lm1 = served(server, tmp_path / "other", max_concurrency=1)
        server.max_in_flight = 0
        lm1.score_letters([f"q {i}" for i in range(3)], [3] * 3)
        assert server.max_in_flight == 1
    finally:
        server.close()


def test_retry_after_is_honoured_then_the_request_succeeds(tmp_path):
    calls = {"n": 0}

    def script(path, body, headers):
        if path.endswith("/models"):
            return 200, {}, models()
        calls["n"] += 1
        if calls["n"] <= 2:
            return 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}
        return 200, {}, completion("x", prompt_tokens=7, completion_tokens=2)

    server = ScriptedServer(script)
    try:
        lm = served(server, tmp_path, max_retries=3)
        t0 = time.perf_counter()
        out = lm.generate(["hello"], max_new_tokens=4)
        assert time.perf_counter() - t0 >= 2.0  # two waits of Retry-After: 1
        assert out[0].text == "x" and out[0].prompt_tokens == 7
        assert lm.meter.retries == 2 and lm.meter.requests_sent == 3
    finally:
        server.close()


def test_a_server_that_keeps_failing_fails_the_call_naming_the_request(tmp_path):
    server = ScriptedServer(lambda p, b, h: (200, {}, models()) if p.endswith("/models")
                            else (503, {}, {"error": {"message": "overloaded"}}))
    try:
        lm = served(server, tmp_path, max_retries=2)
        with pytest.raises(ServedError, match=r"generate request 1 of 1 \('hello'\) to .*/completions "
                                              r"failed after 2 retries: HTTP 503: overloaded"):
            lm.generate(["hello"])
        assert lm.meter.retries == 2
    finally:
        server.close()


@pytest.mark.parametrize("body,words", [
    (completion("A"), "no logprobs"),
    ({"choices": [], "usage": {}}, "no choices"),
    ({"error": {"message": "model crashed"}}, "error: model crashed"),
    ("<html>bad gateway</html>", "not JSON"),
])
def test_malformed_responses_fail_with_a_clear_error_and_are_not_cached(tmp_path, body, words):
    def script(path, req, headers):
        if path.endswith("/models"):
            return 200, {}, models()
        return 200, {}, completion("A", {"A": -0.5}) if req["prompt"] == "first" else body

    server = ScriptedServer(script)
    try:
        lm = served(server, tmp_path, max_concurrency=1)
        with pytest.raises(ServedError, match=r"score letters request 2 of 2 \('second'\)") as e:
            lm.score_letters(["first", "second"], [2, 2])
        assert words in str(e.value)
        assert "1 of 2 responses of this batch were received and cached" in str(e.value)
        assert len(list((tmp_path / "served").rglob("*.json"))) == 1  # the good one only
    finally:
        server.close()


def test_an_error_status_that_is_not_retried_fails_at_once(tmp_path):
    server = ScriptedServer(lambda p, b, h: (200, {}, models()) if p.endswith("/models")
                            else (400, {}, {"error": {"message": "prompt too long"}}))
    try:
        lm = served(server, tmp_path)
        with pytest.raises(ServedError, match="HTTP 400: prompt too long"):
            lm.generate(["x"])
        assert lm.meter.requests_sent == 1 and lm.meter.retries == 0
    finally:
        server.close()


def test_the_cache_answers_a_rerun_and_charges_its_recorded_tokens(tmp_path):
    server = letter_server(prompt_tokens=11, completion_tokens=1)
    try:
        lm = served(server, tmp_path)
        lm.score_letters(["a", "b", "c"], [3, 3, 3])
        assert lm.meter.requests_sent == 3 and lm.meter.input_tokens == 33
    finally:
        server.close()
    again = served(server, tmp_path)  # the server is gone: everything must come from the cache
    scores = again.score_letters(["a", "b", "c"], [3, 3, 3])
    assert again.meter.requests_sent == 0 and again.meter.requests_cached == 3
    assert again.meter.input_tokens == 33 and again.meter.output_tokens == 3
    assert scores[0].logprobs == (-2.0, -0.1, -3.0)
    assert again.price.usd(33, 3) == pytest.approx((33 * 1.0 + 3 * 2.0) / 1e6)


def test_a_changed_revision_or_model_misses_the_cache(tmp_path):
    def key(**kw) -> str:
        settings = EndpointSettings(base_url="http://127.0.0.1:9/v1", **{"name": "m", **kw})
        return Endpoint(settings, tmp_path).cache_key("/completions", {"prompt": "p"})

    assert key() == key()
    assert key() != key(revision="2") and key() != key(name="m2")
    assert key() == key(api_key_env="OTHER_KEY")  # where the key comes from is not in it


def test_the_key_is_sent_as_a_header_and_written_nowhere(tmp_path, monkeypatch):
    secret = "sk-test-7f3a9c0d1e2b4f6a8c0e"
    monkeypatch.setenv("MY_API_KEY", secret)
    server = letter_server()
    try:
        lm = served(server, tmp_path, api_key_env="MY_API_KEY")
        lm.score_letters(["q"], [3])
        assert all(h.get("Authorization") == f"Bearer {secret}" for _, _, h in server.requests)
        assert secret not in repr(lm.describe())
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(encoding="utf-8", errors="replace")
    finally:
        server.close()


def test_nothing_listening_is_a_one_line_error_naming_the_url(tmp_path):
    lm = served(type("S", (), {"base_url": "http://127.0.0.1:9/v1"})(), tmp_path)
    with pytest.raises(ServedError) as e:
        lm.generate(["x"])
    assert "cannot reach the served model at http://127.0.0.1:9/v1" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_model_the_server_does_not_serve_is_named(tmp_path):
    server = ScriptedServer(lambda p, b, h: (200, {}, models("other")))
    try:
        lm = served(server, tmp_path)
        with pytest.raises(ServedError, match="does not serve a model named 'm'; it serves: other"):
            lm.generate(["x"])
    finally:
        server.close()


def test_retry_after_parses_seconds_and_dates():
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({}) is None
    assert 0 <= retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


@pytest.mark.parametrize("bad", [{"base_url": "localhost:8000"}, {"name": " "},
                                 {"max_concurrency": 0}, {"requests_per_minute": 0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        EndpointSettings(**{"base_url": "http://x/v1", "name": "m", **bad})


def test_price_per_token_and_per_hour():
    p = Price(input_per_mtok=0.15, output_per_mtok=0.6, cached_input_per_mtok=0.075)
    # 1M input of which 400k cached, 100k output
    assert p.usd(1_000_000, 100_000, 400_000) == pytest.approx(0.6 * 0.15 + 0.4 * 0.075 + 0.1 * 0.6)
    assert Price(price_per_hour=1.2).usd(10, 10) is None
    with pytest.raises(ConfigError, match="not both"):
        Price.from_config({"input_per_mtok": 1, "price_per_hour": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        Price.from_config({"input_usd": 1})
