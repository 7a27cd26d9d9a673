"""Rate limits of the web chat and the chat API, on both backends (in-process and Redis).

The buckets refill at one turn per 100 seconds here, so what a test sees does not depend on
how fast it runs: the contract of the buckets over time is in tests/test_shared.py.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from bot.service import Loket
from bot.web import create_app

KEY = "api-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
SLOW = 0.01  # one token back every 100 seconds


def limited(loket: Loket, **limits: float) -> None:
    """Give the service these limits (and the chat API its key)."""
    loket.settings = replace(loket.settings, api_key=KEY, **limits)  # type: ignore[arg-type]


def browser(loket: Loket, address: str = "203.0.113.7") -> tuple[FlaskClient, dict[str, str]]:
    """A fresh browser (its own cookie) at an address, and its CSRF header."""
    client = create_app(loket.settings, loket).test_client()
    client.environ_base["REMOTE_ADDR"] = address
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    return client, {"X-CSRFToken": csrf.group(1)}


def send(client: FlaskClient, headers: dict[str, str]) -> int:
    """One web-chat turn; return the status."""
    return client.post("/chat/send", json={"text": "/status"}, headers=headers).status_code


def test_a_script_hammering_one_web_account_gets_429_and_others_are_served(loket: Loket) -> None:
    limited(loket, rate_account_per_second=SLOW, rate_account_burst=5)
    script, headers = browser(loket)
    counted = REGISTRY.get_sample_value("loket_refusals_total", {"reason": "rate_limited"}) or 0
    statuses = [send(script, headers) for _turn in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    # Operators see them: the refusals counter of /metrics counts each one.
    after = REGISTRY.get_sample_value("loket_refusals_total", {"reason": "rate_limited"})
    assert after == counted + 3
    refused = script.post("/chat/send", json={"text": "/status"}, headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    text = refused.get_json()["messages"][0]["text"]
    assert "Pesan Anda terlalu cepat. Tunggu" in text and "detik, lalu kirim lagi" in text
    person, person_headers = browser(loket)  # same address, another account
    assert send(person, person_headers) == 200


def test_the_chat_api_limits_each_account_and_each_verified_number(loket: Loket) -> None:
    limited(loket, rate_account_per_second=SLOW, rate_account_burst=4,
            rate_phone_per_second=SLOW, rate_phone_burst=6)  # fmt: skip
    client = create_app(loket.settings, loket).test_client()

    def turn(user: str, phone: str | None = None) -> int:
        body = {"user": user, "text": "/status"}
        if phone:
            body["verified_phone"] = phone
        response = client.post("/api/v1/chat", json=body, headers=AUTH)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.get_json()["retry_after"] >= 1
            assert "terlalu cepat" in response.get_json()["messages"][0]["text"]
        return response.status_code

    assert [turn("wa-1") for _turn in range(6)] == [200] * 4 + [429] * 2
    assert turn("wa-2") == 200  # another account of the same gateway is unaffected
    # Two accounts on one verified number share the number's bucket (6 turns).
    assert [turn("wa-3", "+6281234567890") for _turn in range(4)] == [200] * 4
    assert [turn("wa-4", "+6281234567890") for _turn in range(3)] == [200, 200, 429]
    assert turn("wa-5", "+6289876543210") == 200


def test_many_people_behind_one_address_are_limited_only_at_its_generous_bound(
    loket: Loket,
) -> None:
    limited(loket, rate_account_per_second=SLOW, rate_account_burst=4,
            rate_address_per_second=SLOW, rate_address_burst=12)  # fmt: skip
    # Three people behind one carrier-grade NAT address each take their full share...
    people = [browser(loket, "198.51.100.1") for _person in range(4)]
    for client, headers in people[:3]:
        assert [send(client, headers) for _turn in range(4)] == [200] * 4
    # ...and only past the address's bound is anyone behind it refused.
    fourth, fourth_headers = people[3]
    assert send(fourth, fourth_headers) == 429
    elsewhere, elsewhere_headers = browser(loket, "198.51.100.2")
    assert send(elsewhere, elsewhere_headers) == 200


@pytest.mark.parametrize("name", ["rate_account_burst", "rate_address_burst"])
def test_default_limits_are_far_above_a_person(name: str) -> None:
    from bot.settings import Settings

    defaults = Settings.from_env({})
    assert getattr(defaults, name) >= 10
    assert defaults.rate_account_per_second >= 1
    assert defaults.rate_address_per_second >= 50
