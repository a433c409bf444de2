"""Sign-in, tokens, sessions, CSRF and a permission check on every route and websocket."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import websockets
from itsdangerous import URLSafeTimedSerializer
from starlette.routing import Mount, Route, WebSocketRoute

from hub.app import routes
from hub.identity import _TOKEN_SALT
from tests.seed import PASSWORD, add_user, token


def test_every_route_is_public_or_names_its_permission():
    for route in routes():
        if isinstance(route, Mount):
            continue  # static files
        endpoint = route.endpoint
        if isinstance(route, WebSocketRoute):
            assert route.path.startswith(("/ws/agent", "/ws/supervisor")), "websocket endpoints check roles"
            continue
        assert isinstance(route, Route)
        assert getattr(endpoint, "public", False) or hasattr(endpoint, "permission"), route.path


async def _csrf(http: httpx.AsyncClient, path: str = "/login") -> str:
    page = await http.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_login_logout_and_page_permissions(hub_server, db):
    await add_user(db, "uma", role="sales")
    await add_user(db, "vic", role="supervisor")
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=10) as http:
        # Not signed in: pages redirect to the login form, APIs answer 401.
        assert (
            (await http.get("/agent", headers={"accept": "text/html"}))
            .headers["location"]
            .startswith("/login")
        )
        assert (await http.get("/agent")).status_code == 401

        csrf = await _csrf(http)
        wrong = await http.post("/login", data={"username": "uma", "password": "nope", "csrf": csrf})
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        unknown = await http.post("/login", data={"username": "nobody", "password": "x", "csrf": csrf})
        assert unknown.status_code == 401 and "Wrong username or password" in unknown.text
        no_csrf = await http.post("/login", data={"username": "uma", "password": PASSWORD})
        assert no_csrf.status_code == 400

        ok = await http.post(
            "/login", data={"username": "uma", "password": PASSWORD, "csrf": csrf, "next": "/"}
        )
        assert ok.status_code == 303
        home = await http.get("/", headers={"accept": "text/html"})
        assert home.status_code == 303 and home.headers["location"] == "/agent"
        assert (await http.get("/agent", headers={"accept": "text/html"})).status_code == 200
        assert (await http.get("/imports", headers={"accept": "text/html"})).status_code == 403

        csrf = await _csrf(http, "/agent")
        assert (await http.post("/logout", data={"csrf": csrf})).status_code == 303
        assert (await http.get("/agent")).status_code == 401

    async with httpx.AsyncClient(base_url=hub_server.base, timeout=10) as http:
        csrf = await _csrf(http)
        await http.post("/login", data={"username": "vic", "password": PASSWORD, "csrf": csrf})
        assert (await http.get("/imports", headers={"accept": "text/html"})).status_code == 200
        assert (await http.get("/agent", headers={"accept": "text/html"})).status_code == 403
        # An open redirect is refused: "next" only goes to local paths.
        csrf = await _csrf(http)
        again = await http.post(
            "/login", data={"username": "vic", "password": PASSWORD, "csrf": csrf, "next": "//evil.example/"}
        )
        assert again.headers["location"] == "/"


async def test_token_endpoint_and_bad_tokens(hub_server, db):
    await add_user(db, "walt")
    async with httpx.AsyncClient(base_url=hub_server.base, timeout=10) as http:
        bad = await http.post("/api/auth/token", json={"username": "walt", "password": "wrong"})
        assert bad.status_code == 401
        junk = await http.post("/api/auth/token", content=b"{not json")
        assert junk.status_code == 400
        good = await http.post("/api/auth/token", json={"username": "walt", "password": PASSWORD})
        assert good.status_code == 200 and good.json()["expires_in"] > 0

    forged = good.json()["token"][:-4] + "AAAA"
    expired = _token_signed_at(hub_server.secret_key, time.time() - 10 * 24 * 3600)
    for bad_token, why in ((forged, "token invalid"), (expired, "token expired")):
        async with httpx.AsyncClient(base_url=hub_server.base, timeout=10) as http:
            response = await http.post(
                "/api/agents/1/state",
                json={"state": "paused"},
                headers={"Authorization": f"Bearer {bad_token}"},
            )
        assert response.status_code == 401 and response.json()["message"] == why
        async with websockets.connect(f"{hub_server.ws_base}/ws/agent?token={bad_token}") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd.code == 4401 and closed.value.rcvd.reason == why


def _token_signed_at(secret: str, when: float) -> str:
    class Past(URLSafeTimedSerializer):
        def __init__(self) -> None:
            super().__init__(secret, salt=_TOKEN_SALT)
            self.signer_kwargs = {}

    serializer = Past()
    signer = serializer.make_signer(_TOKEN_SALT)
    signer.get_timestamp = lambda: int(when)  # type: ignore[method-assign]
    return signer.sign(serializer.dump_payload({"uid": 1})).decode()


async def test_websocket_auth_close_codes(hub_server, db):
    await add_user(db, "xena", role="qa")
    await add_user(db, "yuri")
    # A role that does not work leads is refused with 4403; no token at all with 4401.
    for url, code in (
        (f"{hub_server.ws_base}/ws/agent?token={await token(hub_server.base, 'xena')}", 4403),
        (f"{hub_server.ws_base}/ws/agent", 4401),
    ):
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == code
    # The bearer header works as well as ?token=.
    headers = {"Authorization": f"Bearer {await token(hub_server.base, 'yuri')}"}
    async with websockets.connect(f"{hub_server.ws_base}/ws/agent", additional_headers=headers) as ws:
        assert '"snapshot"' in await ws.recv()
