"""Races an attacker would try across doors: the same person through every channel at once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from bot.service import Loket
from storage.models import Application
from storage.staff import add_staff
from tests.transcript import ADULT_NEW, Chat, Reply, fill_until


def test_one_nik_from_four_channels_at_once_makes_one_application(loket: Loket) -> None:
    with loket.sessions() as session, session.begin():
        agent_id = add_staff(session, "agen.race", "Agen Race", "agent", "kata-sandi-uji-1").id
    chats = [
        Chat(loket, "tg-1001", channel="telegram"),
        Chat(loket, "web-cookie-1", channel="web"),
        Chat(loket, "wa-gateway-1", channel="api"),
        Chat(loket, "+6281200000001", channel="agent", actor=agent_id),
    ]
    for chat in chats:  # the NIK is free while each fills in the form
        fill_until(chat, "summary")
    barrier = threading.Barrier(len(chats))
    replies: list[Reply] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def submit(chat: Chat) -> None:
        barrier.wait()
        try:
            reply = chat.say("benar, kirim")
        except BaseException as error:  # reported below, so the test fails with the cause
            with lock:
                errors.append(error)
            return
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=submit, args=(chat,)) for chat in chats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with loket.sessions() as session:
        count = session.execute(
            select(func.count(Application.id)).where(Application.nik == ADULT_NEW["nik"])
        ).scalar_one()
    assert count == 1
    refused = [r for r in replies if "NIK ini baru saja didaftarkan" in r]
    assert len(replies) == 4 and len(refused) == 3
    # The three that lost are asked for the NIK again, their other answers kept.
    assert sorted(chat.step() or "" for chat in chats).count("nik") == 3
