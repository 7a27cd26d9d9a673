"""The JSON chat API through the real Flask app and engine."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bot.core.messages import Expect
from bot.service import Loket
from bot.web import create_app
from storage.models import Conversation, PhoneVerification
from tests.test_images import minimal_pdf
from tests.transcript import photo_bytes

KEY = "api-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(loket: Loket) -> FlaskClient:
    """A test client of the real Flask app with the chat API configured."""
    loket.settings = replace(loket.settings, api_key=KEY)
    return create_app(loket.settings, loket).test_client()


def say(client: FlaskClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Post one turn and return the messages (the call must succeed)."""
    response = client.post("/api/v1/chat", json=body, headers=AUTH)
    assert response.status_code == 200, response.get_json()
    messages: list[dict[str, Any]] = response.get_json()["messages"]
    return messages


def test_refuses_without_the_key(client: FlaskClient, loket: Loket) -> None:
    body = {"user": "wa-1", "text": "/daftar"}
    assert client.post("/api/v1/chat", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/chat", json=body, headers=wrong).status_code == 403
    loket.settings = replace(loket.settings, api_key=None)
    unconfigured = create_app(loket.settings, loket).test_client()
    assert unconfigured.post("/api/v1/chat", json=body, headers=AUTH).status_code == 503


def test_a_registration_starts_and_state_carries_between_calls(client: FlaskClient) -> None:
    first = say(client, {"user": "wa-6281234", "text": "/daftar"})
    assert set(first[-1]) == {"text", "choices", "expects"}
    assert "Saya setuju" in first[-1]["choices"]
    second = say(client, {"user": "wa-6281234", "choice": "Saya setuju"})
    assert "Untuk siapa paspor ini?" in second[-1]["text"]
    # Another user of the same gateway starts from the beginning.
    other = say(client, {"user": "wa-6289999", "choice": "Saya setuju"})
    assert "Untuk siapa paspor ini?" not in other[-1]["text"]


def test_english_when_asked(client: FlaskClient) -> None:
    messages = say(client, {"user": "ig-1", "text": "/daftar", "language": "en"})
    assert "I agree" in messages[-1]["choices"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "JSON object"),
        ({"text": "halo"}, "'user'"),
        ({"user": "", "text": "halo"}, "'user' must have"),
        ({"user": "x" * 129, "text": "halo"}, "'user' must have"),
        ({"user": "u"}, "exactly one of"),
        ({"user": "u", "text": "a", "choice": "b"}, "exactly one of"),
        ({"user": "u", "text": 5}, "'text' must be a string"),
        ({"user": "u", "location": {"latitude": "x"}}, "numeric"),
        ({"user": "u", "location": {"latitude": 95, "longitude": 0}}, "out of range"),
        ({"user": "u", "file": {"data": "***"}}, "base64"),
        ({"user": "u", "text": "a", "language": "fr"}, "'language'"),
    ],
)
def test_bad_requests_say_what_is_wrong(client: FlaskClient, body: Any, error: str) -> None:
    response = client.post("/api/v1/chat", json=body, headers=AUTH)
    assert response.status_code == 400
    assert error in response.get_json()["error"]


def test_files_as_base64_or_multipart_reach_the_photo_pipeline(
    client: FlaskClient, loket: Loket
) -> None:
    from tests.transcript import Chat, fill_until

    user = "cc-desk-7"
    fill_until(Chat(loket, user, channel="api"), "doc_ktp")
    not_a_photo = base64.b64encode(b"MZ\x90\x00 not a photo").decode()
    refused = say(client, {"user": user, "file": {"name": "x.exe", "data": not_a_photo}})
    assert "bukan foto JPEG/PNG" in refused[0]["text"]
    pdf = base64.b64encode(minimal_pdf()).decode()
    refused = say(client, {"user": user, "file": {"name": "ktp.pdf", "data": pdf}})
    assert "File PDF tidak bisa kami terima" in refused[0]["text"]
    accepted = client.post(
        "/api/v1/chat",
        data={"user": user, "file": (io.BytesIO(photo_bytes("api")), "ktp.jpg")},
        headers=AUTH,
        content_type="multipart/form-data",
    )
    assert accepted.status_code == 200
    assert "Kartu Keluarga" in accepted.get_json()["messages"][-1]["text"]


def test_the_openapi_file_describes_what_the_api_answers(client: FlaskClient) -> None:
    spec = json.loads((Path(__file__).parent.parent / "docs" / "openapi.json").read_text())
    operation = spec["paths"]["/api/v1/chat"]["post"]
    reply = spec["components"]["schemas"]["Replies"]["properties"]["messages"]["items"]
    message = say(client, {"user": "spec-1", "text": "/start"})[-1]
    assert set(message) == set(reply["required"])
    expects = reply["properties"]["expects"]["enum"]
    assert sorted(expects) == sorted(kind.value for kind in Expect)
    kinds = set(spec["components"]["schemas"]["Turn"]["properties"]) - {
        "user",
        "language",
        "event_id",
        "verified_phone",
    }
    assert kinds == {"text", "choice", "contact", "location", "file"}
    assert {"200", "400", "401", "403", "429", "503"} <= set(operation["responses"])


def test_the_gateway_vouches_for_a_number_and_a_typed_one_is_refused(
    client: FlaskClient, loket: Loket
) -> None:
    say(client, {"user": "wa-vouch", "text": "/start", "verified_phone": "0812 3456 7890"})
    with loket.sessions() as session:
        proof = session.get(PhoneVerification, ("api", "wa-vouch"))
        assert proof is not None and (proof.phone, proof.method) == ("+6281234567890", "gateway")
    answer = client.post(
        "/api/v1/chat",
        json={"user": "wa-vouch", "text": "halo", "verified_phone": "12"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 400 and "verified_phone" in answer.get_json()["error"]


def test_an_event_id_makes_a_retried_turn_a_no_op(client: FlaskClient, loket: Loket) -> None:
    first = say(client, {"user": "wa-77", "text": "/daftar", "event_id": "wamid.1"})
    assert "Saya setuju" in first[-1]["choices"]
    pressed = {"user": "wa-77", "choice": "Saya setuju", "event_id": "wamid.2"}
    second = client.post("/api/v1/chat", json=pressed, headers=AUTH).get_json()
    assert "Untuk siapa paspor ini?" in second["messages"][-1]["text"]
    retried = client.post("/api/v1/chat", json=pressed, headers=AUTH).get_json()
    assert retried == {"messages": [], "repeated": True}
    # The same id from another user is another event.
    other = say(client, {"user": "wa-78", "text": "/daftar", "event_id": "wamid.1"})
    assert "Saya setuju" in other[-1]["choices"]
    with loket.sessions() as session:
        state = session.execute(
            select(Conversation.state).where(Conversation.user_ref == "wa-77")
        ).scalar_one()
    assert state["step"] == "category"  # pressed once, not twice
    bad = client.post("/api/v1/chat", json={**pressed, "event_id": ""}, headers=AUTH)
    assert bad.status_code == 400 and "event_id" in bad.get_json()["error"]
