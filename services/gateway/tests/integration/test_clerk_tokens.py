"""Real Clerk RS256 verification against a local JWKS server, with keys minted here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from yummi_gateway.adapters.clerk import ClerkVerifier, JwksCache, KeysUnavailable
from yummi_gateway.domain.identity import InvalidToken, token_header

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
ISSUER = "https://clerk.example.test"


@dataclass
class JwksServer:
    url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    up: bool = True


def new_key(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, {**public_jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture(scope="module")
def key_a() -> tuple[Any, dict[str, Any]]:
    return new_key("key-a")


@pytest.fixture(scope="module")
def key_b() -> tuple[Any, dict[str, Any]]:
    return new_key("key-b")


@pytest.fixture
def jwks_server(key_a: tuple[Any, dict[str, Any]]) -> Iterator[JwksServer]:
    state = JwksServer(url="", keys=[key_a[1]])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.hits += 1
            if not state.up:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def mint(private: Any, kid: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": "user_clerk_1",
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "azp": "https://app.example.com",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def verifier(server: JwksServer, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> ClerkVerifier:
    return ClerkVerifier(
        issuer=ISSUER,
        jwks=JwksCache(server.url, clock=clock),
        authorized_parties=kwargs.pop("authorized_parties", ["https://app.example.com"]),
        **kwargs,
    )


async def verify(v: ClerkVerifier, token: str) -> dict[str, Any]:
    return await v.verify(token, token_header(token))


async def test_a_valid_token_is_verified_and_keys_are_cached(jwks_server: JwksServer, key_a: Any) -> None:
    v = verifier(jwks_server)
    assert (await verify(v, mint(key_a[0], "key-a")))["sub"] == "user_clerk_1"
    await verify(v, mint(key_a[0], "key-a"))
    assert jwks_server.hits == 1
    await v.jwks.close()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not valid yet"),
        ({"azp": "https://evil.example.com"}, "another party"),
        ({"exp": None}, "exp"),
    ],
)
async def test_bad_claims_are_refused(
    jwks_server: JwksServer, key_a: Any, overrides: dict[str, Any], reason: str
) -> None:
    v = verifier(jwks_server)
    with pytest.raises(InvalidToken, match=reason):
        await verify(v, mint(key_a[0], "key-a", **overrides))
    await v.jwks.close()


async def test_expiry_has_a_30_second_leeway(jwks_server: JwksServer, key_a: Any) -> None:
    v = verifier(jwks_server)
    await verify(v, mint(key_a[0], "key-a", exp=int(time.time()) - 20))
    await v.jwks.close()


async def test_audience_is_checked_when_configured(jwks_server: JwksServer, key_a: Any) -> None:
    v = verifier(jwks_server, audience="yummi-api")
    await verify(v, mint(key_a[0], "key-a", aud="yummi-api"))
    with pytest.raises(InvalidToken, match="audience"):
        await verify(v, mint(key_a[0], "key-a", aud="other"))
    with pytest.raises(InvalidToken):
        await verify(v, mint(key_a[0], "key-a"))
    await v.jwks.close()


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(
    jwks_server: JwksServer, key_b: Any
) -> None:
    v = verifier(jwks_server)
    with pytest.raises(InvalidToken, match="signature"):
        await verify(v, mint(key_b[0], "key-a"))
    await v.jwks.close()


async def test_hs256_and_none_algorithms_are_refused(jwks_server: JwksServer, key_a: Any) -> None:
    v = verifier(jwks_server)
    # the classic confusion attack: HMAC-sign with the public key's text as the secret
    header, payload = (
        b64({"alg": "HS256", "kid": "key-a"}),
        b64({"sub": "x", "iss": ISSUER, "exp": time.time() + 60}),
    )
    mac = hmac.new(json.dumps(key_a[1]).encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify(v, forged)
    with pytest.raises(InvalidToken, match="algorithm"):
        await verify(v, f"{b64({'alg': 'none', 'kid': 'key-a'})}.{payload}.")
    await v.jwks.close()


async def test_an_unknown_kid_refetches_at_most_once_a_minute(
    jwks_server: JwksServer, key_a: Any, key_b: Any
) -> None:
    now = [1000.0]
    v = verifier(jwks_server, clock=lambda: now[0])
    await verify(v, mint(key_a[0], "key-a"))
    with pytest.raises(InvalidToken, match="unknown key"):
        await verify(v, mint(key_b[0], "key-b"))
    assert jwks_server.hits == 1  # the first fetch was just now: no refetch yet
    jwks_server.keys.append(key_b[1])  # the issuer rotates in a new key
    now[0] += 61
    assert (await verify(v, mint(key_b[0], "key-b")))["sub"] == "user_clerk_1"
    assert jwks_server.hits == 2
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await verify(v, mint(key_b[0], "key-unknown"))
    assert jwks_server.hits == 2
    await v.jwks.close()


async def test_jwks_unreachable_without_cached_keys_is_keys_unavailable(
    jwks_server: JwksServer, key_a: Any
) -> None:
    jwks_server.up = False
    v = verifier(jwks_server)
    with pytest.raises(KeysUnavailable):
        await verify(v, mint(key_a[0], "key-a"))
    await v.jwks.close()


async def test_the_app_accepts_clerk_tokens_and_answers_503_when_keys_cannot_be_fetched(
    app_client: Callable[..., Any], jwks_server: JwksServer, key_a: Any
) -> None:
    settings = {"auth_disable_verification": False, "clerk_issuer": ISSUER, "clerk_jwks_url": jwks_server.url}
    async with app_client(**settings) as http:
        token = mint(key_a[0], "key-a", sub="user_clerk_app", email="clerk@example.com")
        me = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["clerk_user_id"] == "user_clerk_app"
        expired = mint(key_a[0], "key-a", exp=int(time.time()) - 600)
        refused = await http.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge and "expired" in challenge
    jwks_server.up = False
    async with app_client(**settings) as http:
        down = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")


async def test_a_tampered_payload_is_refused(jwks_server: JwksServer, key_a: Any) -> None:
    v = verifier(jwks_server)
    header, payload, signature = mint(key_a[0], "key-a").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = f"{header}.{b64({**claims, 'sub': 'user_admin'})}.{signature}"
    with pytest.raises(InvalidToken, match="signature"):
        await verify(v, forged)
    await v.jwks.close()


async def test_jwks_unreachable_with_cached_keys_still_verifies(jwks_server: JwksServer, key_a: Any) -> None:
    now = [1000.0]
    v = verifier(jwks_server, clock=lambda: now[0])
    await verify(v, mint(key_a[0], "key-a"))
    jwks_server.up = False
    now[0] += 3601  # the cached set is past its age: a refetch is tried, fails, and the old keys serve on
    assert (await verify(v, mint(key_a[0], "key-a")))["sub"] == "user_clerk_1"
    assert jwks_server.hits == 2
    await v.jwks.close()


GARBAGE_TOKENS = [
    "",
    "a",
    "a.b",
    "a.b.c",
    "....",
    "..",
    "e30.e30.",  # {} . {} .
    "W10.e30.c2ln",  # a header that is a JSON array
    f"{b64({'alg': 'RS256'})}.e30.c2ln",  # no kid
    f"{b64({'alg': 'RS256', 'kid': 7})}.e30.c2ln",  # a kid that is not a string
    f"{b64({'alg': 'RS256', 'kid': 'key-a'})}.!!!.???",
    f"{b64({'alg': 'RS256', 'kid': 'key-a'})}.e30.c2ln",  # a signature of the wrong size
    f"{b64({'alg': 'RS512', 'kid': 'key-a'})}.e30.c2ln",
    f"{b64({'alg': 'ES256', 'kid': 'key-a'})}.e30.c2ln",
    f"{b64({'alg': 'None'})}.{b64({'sub': 'x'})}.",
    f"{b64({'alg': 'RS256', 'kid': 'k' * 5000})}.e30.c2ln",
    "\u00e9\u00e8.\u00e0.\u00fc",
    "x" * 8193,  # over the token size limit
]


async def test_garbage_and_oversized_tokens_are_401_never_500(
    app_client: Callable[..., Any], jwks_server: JwksServer
) -> None:
    settings = {"auth_disable_verification": False, "clerk_issuer": ISSUER, "clerk_jwks_url": jwks_server.url}
    async with app_client(**settings) as http:
        for token in GARBAGE_TOKENS:
            response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}".encode()})
            assert response.status_code == 401, (token[:80], response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_oversized_authorization_header_is_401(app_client: Callable[..., Any]) -> None:
    async with app_client() as http:
        response = await http.get("/v1/me", headers={"Authorization": "Bearer " + "a" * 100_000})
    assert response.status_code == 401
    assert "too long" in response.headers["www-authenticate"]


async def test_hs256_signed_with_the_public_key_is_refused_by_the_app(
    app_client: Callable[..., Any], jwks_server: JwksServer, key_a: Any
) -> None:
    from cryptography.hazmat.primitives import serialization

    public_pem = (
        key_a[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64({"alg": "HS256", "kid": "key-a", "typ": "JWT"})
    payload = b64({"sub": "user_x", "iss": ISSUER, "iat": int(time.time()), "exp": int(time.time()) + 60})
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    settings = {"auth_disable_verification": False, "clerk_issuer": ISSUER, "clerk_jwks_url": jwks_server.url}
    async with app_client(**settings) as http:
        response = await http.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert "algorithm" in response.headers["www-authenticate"]
