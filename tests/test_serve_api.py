"""The HTTP API on real (tiny TF-IDF) judges through TestClient: every endpoint, every error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from judges_fixtures import pair_examples, safety_examples, score_examples

from referee.cli import main
from referee.judges import PairJudge, RewardJudge, SafetyJudge, ScoreJudge
from referee.schema import Conversation, PairExample, SafetyExample, ScoreExample
from referee.serve import create_app, load_judges, read_api_keys
from referee.serve.server import is_loopback

KEY = "k" * 20


@pytest.fixture(scope="module")
def judges():
    return {"pair": PairJudge(progress=False).fit(pair_examples()),
            "safety": SafetyJudge(progress=False).fit(safety_examples()),
            "score": ScoreJudge(progress=False).fit(score_examples()),
            "reward": RewardJudge(progress=False).fit(pair_examples(ties=False))}


@pytest.fixture(scope="module")
def client(judges):
    with local(create_app(judges, max_items=4, max_chars=200, max_body_bytes=4000)) as c:
        yield c


def local(app) -> TestClient:
    """A client that calls the app as a browser on this machine would: the guard answers only to
    loopback Host names."""
    return TestClient(app, base_url="http://127.0.0.1")


def conv(response="clear correct helpful", prompt="question 1 about topic 1", system=None):
    out = {"turns": [{"role": "user", "content": prompt}] + ([{"role": "assistant", "content": response}] if response else [])}
    return out | ({"system": system} if system else {})


def detail(response) -> str:
    return response.json()["detail"]


# --- every endpoint answers what the judge answers ---------------------------------------------

def test_compare_one_item_both_forms(client, judges):
    whole = client.post("/v1/compare", json={"a": conv("rude vague"), "b": conv("kind polite thorough")})
    shared = client.post("/v1/compare", json={"context": conv(None), "response_a": "rude vague",
                                              "response_b": "kind polite thorough"})
    assert whole.status_code == shared.status_code == 200
    assert whole.json() == shared.json()
    ex = PairExample(id="x", a=Conversation.from_text("question 1 about topic 1", "rude vague"),
                     b=Conversation.from_text("question 1 about topic 1", "kind polite thorough"))
    expected = judges["pair"].predict_proba([ex])[0]
    body = whole.json()
    assert body["judge"] == "pair" and len(body["version"]) == 12
    assert [body["probabilities"][k] for k in ("A", "B", "tie")] == pytest.approx(expected.tolist(), abs=1e-12)
    assert body["verdict"] == "B"


def test_safety_list(client, judges):
    r = client.post("/v1/safety", json=[{"conversation": conv("wrong rude harsh")}, {"conversation": conv("kind polite")}])
    assert r.status_code == 200
    results = r.json()["results"]
    exs = [SafetyExample(id=str(i), conversation=Conversation.from_text("question 1 about topic 1", t))
           for i, t in enumerate(["wrong rude harsh", "kind polite"])]
    p, cost = judges["safety"].predict_proba(exs), judges["safety"].cost(exs)
    assert [x["probability"] for x in results] == pytest.approx(p[:, -1].tolist(), abs=1e-12)
    assert [x["cost"] for x in results] == pytest.approx(cost.tolist(), abs=1e-12)
    assert [x["unsafe"] for x in results] == (cost > 0).tolist()
    assert set(results[0]["categories"]) == {"harsh", "hate"}


def test_score_all_metrics_one_metric_and_scale(client, judges):
    everything = client.post("/v1/score", json={"conversation": conv()}).json()
    # Without a scale, each metric on the scale the judge learnt it on (helpfulness 0-10, politeness 1-5).
    assert everything["scales"] == {"helpfulness": [0.0, 10.0], "politeness": [1.0, 5.0]} and everything["scale"] is None
    polite = ScoreExample(id="x", conversation=Conversation.from_text("question 1 about topic 1", "clear correct helpful"),
                          metric="politeness", scale=(1.0, 5.0))
    assert everything["scores"]["politeness"] == pytest.approx(float(judges["score"].predict([polite])[0]), abs=1e-12)
    one = client.post("/v1/score", json={"conversation": conv(), "metrics": ["politeness"], "scale": [1, 5]}).json()
    ex = ScoreExample(id="x", conversation=Conversation.from_text("question 1 about topic 1", "clear correct helpful"),
                      metric="politeness", scale=(1.0, 5.0))
    assert list(one["scores"]) == ["politeness"] and one["scale"] == [1.0, 5.0]
    assert one["scores"]["politeness"] == pytest.approx(float(judges["score"].predict([ex])[0]), abs=1e-12)


def test_reward(client, judges):
    r = client.post("/v1/reward", json=[{"conversation": conv("clear correct")}, {"conversation": conv("rude wrong")}])
    rewards = [x["reward"] for x in r.json()["results"]]
    expected = judges["reward"].reward([Conversation.from_text("question 1 about topic 1", t) for t in ("clear correct", "rude wrong")])
    assert rewards == pytest.approx(expected.tolist(), abs=1e-12)
    assert rewards[0] > rewards[1]


def test_judges_health_docs_and_page(client):
    listing = client.get("/v1/judges").json()
    by_name = {j["name"]: j for j in listing["judges"]}
    assert by_name["score"]["metrics"] == ["helpfulness", "politeness"]
    assert by_name["safety"]["categories"] == ["harsh", "hate"] and by_name["safety"]["endpoint"] == "/v1/safety"
    assert by_name["pair"]["labels"] == ["A", "B", "tie"] and "accuracy" in by_name["pair"]["validation"]
    assert listing["limits"]["max_items"] == 4
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/score", "/v1/compare", "/v1/safety", "/v1/reward", "/v1/judges"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and "/app.js" in page.text
    assert client.get("/app.js").status_code == client.get("/style.css").status_code == 200


def test_readyz_before_start(judges):
    client = local(create_app(judges))  # no `with`: the lifespan (and the batchers) never started
    assert client.get("/readyz").status_code == 503


# --- choosing the judge --------------------------------------------------------------------------

def test_judge_choice(judges):
    two = {"pair": judges["pair"], "pair2": judges["pair"], "safety": judges["safety"]}
    body = {"context": conv(None), "response_a": "x", "response_b": "y"}
    with local(create_app(two)) as c:
        r = c.post("/v1/compare", json=body)
        assert r.status_code == 422 and "?judge=NAME" in detail(r) and "pair, pair2" in detail(r)
        assert c.post("/v1/compare?judge=pair2", json=body).json()["judge"] == "pair2"
        r = c.post("/v1/compare?judge=nope", json=body)
        assert r.status_code == 404 and "no judge named 'nope'" in detail(r)
        r = c.post("/v1/compare?judge=safety", json=body)
        assert r.status_code == 422 and "safety judge" in detail(r) and "/v1/safety" in detail(r)
        r = c.post("/v1/score", json={"conversation": conv()})
        assert r.status_code == 404 and "no score judge is loaded" in detail(r)


# --- bad requests: a 4xx that says what to fix, never a 500 ------------------------------------------

@pytest.mark.parametrize("path, body, status, words", [
    ("/v1/safety", {"conversation": {"turns": []}}, 422, "body.conversation.turns: List should have at least 1 item"),
    ("/v1/safety", [{"conversation": {"turns": []}}], 422, "body[0].conversation.turns"),
    ("/v1/safety", {"conversation": {"turns": [{"role": "user", "content": 5}]}}, 422, "turns[0].content: Input should be a valid string"),
    ("/v1/safety", {"conversation": {"turns": [{"role": "robot", "content": "hi"}]}}, 422, "turns[0].role"),
    ("/v1/safety", {"conversatoin": conv()}, 422, "body.conversatoin: Extra inputs are not permitted"),
    ("/v1/safety", 5, 422, "expected one item (a JSON object) or a list of items, got int"),
    ("/v1/safety", [], 422, "the list of items is empty"),
    ("/v1/safety", [{"conversation": conv()}] * 5, 422, "5 items in one request; the limit is 4"),
    ("/v1/safety", {"conversation": conv("x" * 201)}, 422, "body.conversation.turns[1].content has 201 characters; the limit is 200"),
    ("/v1/compare", {"a": conv()}, 422, "give both a and b"),
    ("/v1/compare", {"a": conv(), "b": conv(), "response_a": "x"}, 422, "not both"),
    ("/v1/compare", {"a": conv(None), "b": conv()}, 422, "must end with the assistant response being judged"),
    ("/v1/score", {"conversation": conv(), "metrics": ["wit"]}, 422, "unknown metric(s) ['wit']; this judge knows: helpfulness, politeness"),
    ("/v1/score", {"conversation": conv(), "scale": [5, 1]}, 422, "scale"),
    ("/v1/score", {"conversation": conv(), "metrics": []}, 422, "body.metrics"),
    ("/v1/reward", {"conversation": conv(None)}, 422, "a reward needs a response"),
])
def test_bad_bodies(client, path, body, status, words):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert words in detail(r)


def test_malformed_json_and_wrong_content_type(client):
    r = client.post("/v1/safety", content=b'{"conversation": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in detail(r)
    r = client.post("/v1/safety", content=json.dumps({"conversation": conv()}))  # no Content-Type
    assert r.status_code == 415 and "Content-Type: application/json" in detail(r)


def test_garbage_never_gives_500(client):
    rng = np.random.default_rng(0)
    bodies = [b"", b"null", b"[]", b"[[]]", b'"text"', b"{}", b'{"conversation": null}', b'{"a": 1, "b": 2}',
              b'{"conversation": {"turns": "hi"}}', b'{"conversation": {"turns": [{}]}}', b"\xff\xfe\x00",
              b'{"conversation": {"system": 3, "turns": [{"role": "user", "content": "x"}]}}']
    bodies += [bytes(rng.integers(0, 256, 40, dtype=np.uint8)) for _ in range(10)]
    for path in ("/v1/score", "/v1/compare", "/v1/safety", "/v1/reward"):
        for body in bodies:
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
            assert isinstance(detail(r), str) and detail(r)
        for query in ("?judge=", "?judge=%00", "?judge=../../etc/passwd"):
            r = client.post(path + query, json={"conversation": conv()})
            assert 400 <= r.status_code < 500


# --- the body limit is on the bytes that arrive --------------------------------------------------

def test_body_limit(client):
    big = json.dumps({"conversation": conv("x" * 5000)}).encode()
    r = client.post("/v1/safety", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit of 4000 bytes" in detail(r)

    def chunks():  # no Content-Length at all: Transfer-Encoding: chunked
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    r = client.post("/v1/safety", content=chunks(), headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked" and r.status_code == 413
    r = client.post("/v1/safety", content=big, headers={"content-type": "application/json", "content-length": "100"})
    assert r.status_code == 413  # a Content-Length that lies changes nothing
    r = client.post("/v1/safety", content=b"{}", headers={"content-type": "application/json", "content-length": "abc"})
    assert r.status_code == 400


# --- API keys ---------------------------------------------------------------------------------

def test_api_keys(judges):
    body = {"conversation": conv()}
    with local(create_app({"safety": judges["safety"]}, api_keys=[KEY, "m" * 20])) as c:
        r = c.post("/v1/safety", json=body)
        assert r.status_code == 401 and "missing API key" in detail(r) and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/safety", json=body, headers={"Authorization": "Bearer " + "k" * 19}).status_code == 401
        assert detail(c.get("/v1/judges", headers={"X-API-Key": "wrong"})) == "wrong API key"
        big = {"conversation": conv("x" * 2_000_000)}
        assert c.post("/v1/safety", json=big).status_code == 401  # the key is checked before the body is read
        assert c.post("/v1/safety", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.post("/v1/safety", json=body, headers={"X-API-Key": "m" * 20}).status_code == 200
        assert c.get("/healthz").status_code == c.get("/").status_code == 200  # no secrets there


def test_api_key_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n{KEY}\n\n{'m' * 20}\n")
    assert read_api_keys(path) == [KEY, "m" * 20]
    path.write_text("short\n")
    with pytest.raises(Exception, match="line 1: a key must be at least 16"):
        read_api_keys(path)


# --- the CLI and loading -----------------------------------------------------------------------

def test_cli_refuses_open_host_without_keys(tmp_path, capsys, judges):
    folder = judges["pair"].save(tmp_path / "arena")
    assert main(["serve", str(folder), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 exposes the judges" in err and "--api-key-file" in err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "no such judge folder" in capsys.readouterr().err
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_load_judges_by_folder_name(tmp_path, judges):
    a = judges["pair"].save(tmp_path / "one" / "arena")
    b = judges["safety"].save(tmp_path / "two" / "arena")
    loaded = load_judges([a, judges["score"].save(tmp_path / "metrics")])
    assert sorted(loaded) == ["arena", "metrics"] and loaded["arena"].task == "pair"
    with pytest.raises(Exception, match="both named 'arena'"):
        load_judges([a, b])
    with local(create_app(loaded)) as c:  # a loaded judge answers what the trained one answers
        r = c.post("/v1/score", json={"conversation": conv()}).json()
    with local(create_app({"score": judges["score"]})) as c:
        assert c.post("/v1/score", json={"conversation": conv()}).json()["scores"] == r["scores"]
