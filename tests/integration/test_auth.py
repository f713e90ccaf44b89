"""Gateway authentication, quotas and tenant isolation, against a real gateway and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
import requests
from chatq.producers.tenants import TenantSettings, TenantStore
from chatq.shared import keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis import Redis

from tests.support.stacks import stack_fixture
from tests.support.waiting import eventually

SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
ISSUER, AUDIENCE = "https://id.example.test", "chatq-gateway"
PROVIDER_KEY = "sk-provider-secret-never-shown"
BODY = {"model": "sim-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory) -> tuple[rsa.RSAPrivateKey, Path]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("jwt") / "public.pem"
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, path


stack = stack_fixture(
    gateway=True,
    sim_args=["--api-keys", PROVIDER_KEY],
    from_fixtures=lambda rsa_key: {
        "extra_env": {
            "CHATQ_AUTH_REQUIRED": "true",
            "CHATQ_JWT_SECRET": SECRET,
            "CHATQ_JWT_PUBLIC_KEY_FILE": str(rsa_key[1]),
            "CHATQ_JWT_ISSUER": ISSUER,
            "CHATQ_JWT_AUDIENCE": AUDIENCE,
            "CHATQ_PROVIDER_API_KEY": PROVIDER_KEY,
        }
    },
)


@pytest.fixture(scope="module")
def url(stack) -> str:
    return stack.gateway_url


@pytest.fixture(scope="module")
def tenants(stack) -> TenantStore:
    return TenantStore(Redis.from_url(stack.redis_url, decode_responses=True))


def chat(url: str, credential: str | None, **extra) -> requests.Response:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return requests.post(
        f"{url}/chat/completions", json={**BODY, **extra}, headers=headers, timeout=30
    )


def token(claims: dict, *, key=SECRET, algorithm="HS256") -> str:
    base = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, "tenant": "jwt-co"}
    return jwt.encode({**base, **claims}, key, algorithm=algorithm)


def assert_refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_no_credential_is_401(url):
    response = chat(url, None)
    assert_refused(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(f"{url}/models", timeout=10).status_code == 401


def test_a_wrong_key_is_401(url):
    assert_refused(chat(url, "cq-not-a-real-key"), 401, "invalid_api_key")
    assert_refused(chat(url, "sk-something-else"), 401, "invalid_api_key")


def test_a_valid_key_works_and_a_revoked_one_is_401(url, tenants):
    secret, info = tenants.create_key("acme")
    assert chat(url, secret).status_code == 200
    tenants.revoke(info.key_id)
    assert_refused(chat(url, secret), 401, "revoked_api_key")


def test_jwt_bearer_tokens_hs256_and_rs256(url, rsa_key):
    assert chat(url, token({})).status_code == 200
    assert chat(url, token({}, key=rsa_key[0], algorithm="RS256")).status_code == 200


def test_an_expired_jwt_is_401(url):
    assert_refused(chat(url, token({"exp": int(time.time()) - 60})), 401, "expired_token")


def test_a_jwt_for_another_audience_or_issuer_is_401(url):
    assert_refused(chat(url, token({"aud": "someone-else"})), 401, "invalid_token")
    assert_refused(chat(url, token({"iss": "https://evil.test"})), 401, "invalid_token")
    assert_refused(
        chat(url, token({}, key="another-secret-of-enough-length-xx")), 401, "invalid_token"
    )


def test_a_tenant_never_sees_another_tenants_jobs(url, tenants):
    alice, _ = tenants.create_key("tenant-a")
    bob, _ = tenants.create_key("tenant-b")
    submitted = requests.post(
        f"{url}/jobs", json=BODY, headers={"Authorization": f"Bearer {bob}"}, timeout=30
    )
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    as_bob = {"Authorization": f"Bearer {bob}"}
    as_alice = {"Authorization": f"Bearer {alice}"}
    assert requests.get(f"{url}/jobs/{job_id}", headers=as_bob, timeout=10).status_code == 200
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("DELETE", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/events"),
    ):
        response = requests.request(method, url + path, headers=as_alice, timeout=10)
        assert_refused(response, 404, "job_not_found")


def test_a_tenant_never_sees_nor_continues_another_tenants_responses(url, tenants):
    alice, _ = tenants.create_key("tenant-a")
    bob, _ = tenants.create_key("tenant-b")
    as_bob = {"Authorization": f"Bearer {bob}"}
    as_alice = {"Authorization": f"Bearer {alice}"}
    body = {"model": "sim-mini", "input": "hi", "max_output_tokens": 4, "background": True}
    created = requests.post(f"{url}/responses", json=body, headers=as_bob, timeout=30)
    response_id = created.json()["id"]
    assert requests.get(f"{url}/responses/{response_id}", headers=as_bob, timeout=10).ok
    for method, path in (
        ("GET", f"/responses/{response_id}"),
        ("GET", f"/responses/{response_id}?stream=true"),
        ("POST", f"/responses/{response_id}/cancel"),
        ("DELETE", f"/responses/{response_id}"),
    ):
        response = requests.request(method, url + path, headers=as_alice, timeout=10)
        assert_refused(response, 404, "response_not_found")
    follow = {"model": "sim-mini", "input": "and?", "previous_response_id": response_id}
    response = requests.post(f"{url}/responses", json=follow, headers=as_alice, timeout=30)
    assert_refused(response, 404, "response_not_found")
    assert response.json()["error"]["param"] == "previous_response_id"


def test_a_tenant_never_sees_another_tenants_sessions(url, tenants):
    alice, _ = tenants.create_key("tenant-a")
    bob, _ = tenants.create_key("tenant-b")
    assert chat(url, bob, session_id="shared-name").status_code == 200
    as_bob = {"Authorization": f"Bearer {bob}"}
    as_alice = {"Authorization": f"Bearer {alice}"}
    assert requests.get(f"{url}/sessions/shared-name", headers=as_bob, timeout=10).ok
    response = requests.get(f"{url}/sessions/shared-name", headers=as_alice, timeout=10)
    assert_refused(response, 404, "session_not_found")


def test_over_the_request_quota_is_429_with_retry_after(url, tenants):
    secret, _ = tenants.create_key("small-co")
    tenants.set_tenant("small-co", TenantSettings(rpm=2))
    responses = [chat(url, secret) for _ in range(3)]
    if responses[-1].status_code != 429:  # a new clock minute began mid-way: once more
        responses += [chat(url, secret) for _ in range(3)]
    assert responses[0].status_code == 200
    over = next(r for r in responses if r.status_code != 200)
    assert_refused(over, 429, "quota_exceeded")
    assert 1 <= int(over.headers["Retry-After"]) <= 60


def test_over_the_daily_token_quota_is_429_until_midnight(url, tenants):
    secret, _ = tenants.create_key("thrifty-co")
    tenants.set_tenant("thrifty-co", TenantSettings(tokens_per_day=40))
    # reserves its prompt and max_tokens, then keeps what the call used
    assert chat(url, secret, messages=[{"role": "user", "content": "count my tokens"}]).ok
    over = chat(url, secret, max_tokens=30)  # more than is left
    assert_refused(over, 429, "quota_exceeded")
    assert "max_tokens" in over.json()["error"]["message"]
    assert 1 <= int(over.headers["Retry-After"]) <= 86400
    assert chat(url, secret).ok  # a smaller request still fits


def test_concurrent_requests_never_pass_the_daily_token_quota(url, tenants, stack):
    secret, _ = tenants.create_key("busy-co")
    tenants.set_tenant("busy-co", TenantSettings(tokens_per_day=1000))
    prompts = [[{"role": "user", "content": f"tell me about {i}"}] for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(lambda m: chat(url, secret, messages=m, max_tokens=50), prompts))
    answered = [r.json() for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert len(answered) + len(refused) == 50 and answered and refused
    used = sum(a["usage"]["total_tokens"] for a in answered)
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    counter = keys.quota_tokens_key("busy-co", time.time())
    # each reservation is settled to what its call used once its job has ended
    eventually(lambda: True if int(redis.get(counter)) == used else None, timeout=10)
    assert used <= 1000


def test_the_provider_key_never_leaves(url, tenants, stack):
    secret, _ = tenants.create_key("acme")
    auth = {"Authorization": f"Bearer {secret}"}
    reply = chat(url, secret)
    job = requests.post(f"{url}/jobs", json=BODY, headers=auth, timeout=30).json()
    record = requests.get(f"{url}/jobs/{job['id']}", headers=auth, timeout=30)
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    stored = " ".join(str(redis.hgetall(k)) for k in redis.scan_iter("chatq:job:*"))
    for text in (reply.text, str(reply.headers), record.text, stored):
        assert PROVIDER_KEY not in text


def test_keys_are_created_listed_and_revoked_from_the_cli(stack):
    env = {"CHATQ_REDIS_URL": stack.redis_url, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    chatq = [sys.executable, "-m", "chatq", "keys"]

    def run(*args: str) -> str:
        done = subprocess.run([*chatq, *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    created = run("create", "--tenant", "cli-co", "--rpm", "30", "--tokens-per-day", "1000")
    key_id = next(line.split()[-1] for line in created.splitlines() if "key id" in line)
    secret = next(line.split()[1] for line in created.splitlines() if "secret" in line)
    listed = run("list", "--tenant", "cli-co")
    assert key_id in listed and "30 rpm" in listed and secret not in listed
    assert "revoked" in run("revoke", key_id)


def test_keys_create_and_list_print_json_for_scripts(stack):
    env = {"CHATQ_REDIS_URL": stack.redis_url, "PATH": "/usr/bin:/bin"}
    chatq = [sys.executable, "-m", "chatq", "keys"]

    def run(*args: str) -> object:
        done = subprocess.run([*chatq, *args], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = run("create", "--tenant", "json-co", "--rpm", "30", "--json")
    assert created["tenant"] == "json-co" and created["key_id"].startswith("key_")
    assert created["secret"] and created["limits"]["rpm"] == 30
    listed = run("list", "--tenant", "json-co", "--json")
    assert [row["key_id"] for row in listed] == [created["key_id"]]
    assert listed[0]["state"] == "active" and "secret" not in listed[0]


def test_a_tenants_batch_runs_as_that_tenant_and_is_hidden_from_others(url, tenants, stack):
    alice, _ = tenants.create_key("batch-a")
    bob, _ = tenants.create_key("batch-b")
    as_alice = {"Authorization": f"Bearer {alice}"}
    line = {"custom_id": "one", "url": "/v1/chat/completions", "body": BODY}
    upload = requests.post(
        f"{url}/files",
        headers=as_alice,
        files={"file": ("in.jsonl", (json.dumps(line) + "\n").encode())},
        data={"purpose": "batch"},
        timeout=10,
    ).json()
    batch = requests.post(
        f"{url}/batches",
        headers=as_alice,
        json={
            "input_file_id": upload["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        timeout=10,
    ).json()
    as_bob = {"Authorization": f"Bearer {bob}"}
    for path in (f"/batches/{batch['id']}", f"/files/{upload['id']}"):
        assert requests.get(url + path, headers=as_bob, timeout=10).status_code == 404
    batch_url = f"{url}/batches/{batch['id']}"
    eventually(
        lambda: (
            requests.get(batch_url, headers=as_alice, timeout=10).json()["status"] == "completed"
            or None
        ),
        every=0.3,
        what="the batch not completed",
    )
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    job_tenants = {
        redis.hget(key, "tenant") for key in redis.scan_iter(f"chatq:job:job_{batch['id']}_*")
    }
    assert job_tenants == {"batch-a"}
