"""Quota news: /langganan, /berhenti, the sold-out offer in booking, and office announcements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import event, func, select, update

from bot.flows.subscription import announcement_payload
from bot.service import Loket
from storage.models import (
    Announcement,
    Application,
    ApplicationStatus,
    Office,
    OutboxMessage,
    Slot,
    Subscription,
)
from storage.subscriptions import (
    announce,
    subscribe,
    subscribers_of,
    subscriptions_for,
    unsubscribe,
)
from tests.conftest import FakeClock
from tests.transcript import Chat, book, register

BANDUNG = "Kantor Imigrasi Kelas I TPI Bandung"
POLONIA = "Kantor Imigrasi Kelas I TPI Polonia Medan"
BELAWAN = "Kantor Imigrasi Kelas II TPI Belawan"
MENU = "Apa yang ingin Anda lakukan?"


@pytest.fixture
def medan(loket: Loket) -> Iterator[None]:
    """Give Medan a second office for the length of one test (offices outlive a test)."""
    with loket.sessions() as session, session.begin():
        session.add(
            Office(code="test-belawan", name=BELAWAN, city="Medan", province="Sumatera Utara",
                   timezone="Asia/Jakarta", address="Jl. Serma Hanafiah No. 1, Belawan",
                   hours="Senin-Jumat 08.00-15.00", latitude=3.78, longitude=98.68)
        )  # fmt: skip
    yield
    with loket.sessions() as session, session.begin():
        office_id = session.execute(
            select(Office.id).where(Office.code == "test-belawan")
        ).scalar_one()
        session.execute(Subscription.__table__.delete().where(Subscription.office_id == office_id))
        session.execute(Announcement.__table__.delete().where(Announcement.office_id == office_id))
        session.execute(Office.__table__.delete().where(Office.id == office_id))


def office_id(loket: Loket, code: str) -> int:
    """Return the id of an office by its code."""
    with loket.sessions() as session:
        return int(session.execute(select(Office.id).where(Office.code == code)).scalar_one())


def followed(loket: Loket, chat: Chat) -> list[str]:
    """Return the codes of the offices a chat follows, sorted."""
    with loket.sessions() as session:
        return sorted(o.code for o in subscriptions_for(session, chat.channel, chat.user))


def subscription_rows(loket: Loket) -> int:
    """Count every stored subscription."""
    with loket.sessions() as session:
        return int(session.execute(select(func.count(Subscription.id))).scalar_one())


# ---- /langganan ----------------------------------------------------------------------------


def test_city_with_several_offices_follows_all_of_them(
    chat: Chat, loket: Loket, medan: None
) -> None:
    reply = chat.say("/langganan")
    assert "Kabar kuota dari kantor imigrasi mana" in reply.question.text
    assert reply.question.offers_location
    reply = chat.say("Medan")
    assert "salah satu kantor imigrasi di Medan membuka kuota baru" in reply
    assert POLONIA in reply and BELAWAN in reply
    assert "Untuk berhenti, ketik /berhenti." in reply
    assert reply.question.text == MENU
    assert followed(loket, chat) == ["medan-polonia", "test-belawan"]
    with loket.sessions() as session:
        assert set(session.execute(select(Subscription.locale)).scalars()) == {"id"}


def test_city_with_one_office(chat: Chat, loket: Loket) -> None:
    chat.say("/langganan")
    reply = chat.say("kota bandung")
    assert f"bila {BANDUNG} membuka kuota baru atau sesi paspor simpatik" in reply
    assert "/berhenti" in reply
    assert followed(loket, chat) == ["bandung"]


def test_typo_finds_the_city_and_all_its_offices(chat: Chat, loket: Loket, medan: None) -> None:
    chat.say("/langganan")
    reply = chat.say("medn")
    assert "di Medan" in reply
    assert followed(loket, chat) == ["medan-polonia", "test-belawan"]


def test_naming_one_office_follows_only_that_office(chat: Chat, loket: Loket, medan: None) -> None:
    chat.say("/langganan")
    reply = chat.say("Belawan")
    assert f"bila {BELAWAN} membuka kuota baru" in reply
    assert followed(loket, chat) == ["test-belawan"]


def test_bad_answers_are_explained_and_asked_again(chat: Chat, loket: Loket) -> None:
    chat.say("/langganan")
    reply = chat.say("xy")
    assert "Ketik minimal 3 huruf nama kota" in reply
    assert "Kabar kuota dari kantor imigrasi mana" in reply.question.text
    reply = chat.say("Pontianak")
    assert 'Belum ada kantor imigrasi Loket di "Pontianak"' in reply
    assert "Bandung" in reply and "Jayapura" in reply
    reply = chat.photo()
    assert "Ketik nama kota, atau bagikan lokasi Anda." in reply
    assert chat.step() == "office_query"
    assert subscription_rows(loket) == 0


def test_shared_location_offers_the_nearest_offices(chat: Chat, loket: Loket) -> None:
    chat.say("/langganan")
    reply = chat.location(-6.92, 107.60)
    assert len(reply.labels) == 3
    assert reply.labels[0].startswith(f"{BANDUNG} (") and reply.labels[0].endswith(" km)")
    reply = chat.say("9")
    assert "Mohon pilih salah satu" in reply
    assert chat.step() == "office"
    reply = chat.say("1")
    assert f"bila {BANDUNG} membuka kuota baru" in reply
    assert followed(loket, chat) == ["bandung"]


def test_subscribing_again_changes_nothing(chat: Chat, loket: Loket, clock: FakeClock) -> None:
    chat.say("/langganan")
    chat.say("Bandung")
    reply = chat.say("/langganan")
    reply = chat.say("Bandung")
    assert f"Anda sudah berlangganan kabar kuota dari {BANDUNG}" in reply
    assert "tidak ada yang berubah" in reply
    assert subscription_rows(loket) == 1
    bandung = office_id(loket, "bandung")
    with loket.sessions() as session, session.begin():
        assert subscribe(session, chat.channel, chat.user, bandung, "en", clock.now) is False
        assert subscribe(session, "other", chat.user, bandung, "en", clock.now) is True
    assert subscription_rows(loket) == 2


def test_menu_entry_and_help_lead_to_quota_news(chat: Chat) -> None:
    reply = chat.open()
    assert "Info kuota (langganan)" in reply.labels
    reply = chat.tap("Info kuota (langganan)")
    assert "Kabar kuota dari kantor imigrasi mana" in reply.question.text
    reply = chat.say("bantuan")
    assert "Berlangganan tidak memesan kursi" in reply
    assert "/langganan" in reply and "/berhenti" in reply


def test_english_chat_subscribes_in_english(loket: Loket) -> None:
    english = Chat(loket, "english-speaker", language="en")
    english.say("/langganan")
    reply = english.say("Bandung")
    assert f"We will let you know in this chat when {BANDUNG} opens new quota" in reply
    with loket.sessions() as session:
        assert session.execute(select(Subscription.locale)).scalar_one() == "en"


# ---- /berhenti -----------------------------------------------------------------------------


def test_stop_one_then_all(chat: Chat, loket: Loket, medan: None) -> None:
    chat.say("/langganan")
    chat.say("Bandung")
    chat.say("/langganan")
    chat.say("Medan")
    reply = chat.say("/berhenti")
    assert "Mana yang dihentikan?" in reply.question.text
    assert sorted(reply.labels[:-1]) == sorted([BANDUNG, POLONIA, BELAWAN])
    assert reply.labels[-1] == "Berhenti semua"
    reply = chat.say("tidak tahu")
    assert "Mohon pilih salah satu" in reply and chat.step() == "stop"
    reply = chat.tap(BANDUNG)
    assert f"tidak akan menerima kabar kuota dari {BANDUNG} lagi" in reply
    assert "Anda masih berlangganan kabar dari:" in reply
    assert POLONIA in reply and BELAWAN in reply
    assert followed(loket, chat) == ["medan-polonia", "test-belawan"]
    chat.say("/berhenti")
    reply = chat.tap("Berhenti semua")
    assert "tidak akan menerima kabar kuota lagi dari kantor mana pun" in reply
    assert reply.question.text == MENU
    assert followed(loket, chat) == []
    reply = chat.say("/berhenti")
    assert "Anda belum berlangganan kabar kuota dari kantor mana pun" in reply
    assert chat.step() == "action"


def test_stop_touches_only_this_chat(chat: Chat, loket: Loket) -> None:
    other = Chat(loket, "someone-else")
    for someone in (chat, other):
        someone.say("/langganan")
        someone.say("Bandung")
    chat.say("/berhenti")
    chat.tap("Berhenti semua")
    assert followed(loket, chat) == [] and followed(loket, other) == ["bandung"]
    with loket.sessions() as session, session.begin():
        assert unsubscribe(session, other.channel, other.user, office_id(loket, "jayapura")) == 0
        assert unsubscribe(session, other.channel, other.user) == 1


# ---- the sold-out offer in booking ---------------------------------------------------------


def sell_out(loket: Loket, code: str, now: datetime) -> None:
    """Fill every released seat of an office and close the seats not yet released."""
    office = office_id(loket, code)
    with loket.sessions() as session, session.begin():
        session.execute(
            update(Slot)
            .where(Slot.office_id == office, Slot.release_at <= now)
            .values(taken=Slot.capacity)
        )
        session.execute(
            update(Slot).where(Slot.office_id == office, Slot.release_at > now).values(closed=True)
        )


def test_sold_out_office_offers_its_quota_news(chat: Chat, loket: Loket, clock: FakeClock) -> None:
    sell_out(loket, "bandung", clock.now)
    register(chat)
    chat.say("Bandung")
    reply = chat.say("1")
    assert f"Maaf, kuota di {BANDUNG} sudah habis" in reply.question.text
    assert reply.labels == [
        "Kabari saya bila ada kuota baru",
        "Pilih kantor lain",
        "Kembali ke menu",
    ]
    reply = chat.tap("Kabari saya bila ada kuota baru")
    assert f"kami akan mengabari Anda di chat ini bila {BANDUNG} membuka kuota baru" in reply
    assert "/berhenti" in reply
    assert followed(loket, chat) == ["bandung"]
    # Still choosing: another office is a tap away, and the offer is not made twice.
    assert chat.step() == "day"
    assert reply.labels == ["Pilih kantor lain", "Kembali ke menu"]
    reply = chat.tap("Pilih kantor lain")
    assert chat.step() == "office_query"


def test_no_offer_while_seats_are_free(chat: Chat, loket: Loket) -> None:
    register(chat)
    chat.say("Bandung")
    reply = chat.say("1")
    assert "Kabari saya bila ada kuota baru" not in reply.labels
    assert followed(loket, chat) == []


# ---- announcements -------------------------------------------------------------------------

STAFF_TEXT = "Sesi paspor simpatik Sabtu, 28 November 2026, 08.00–12.00 WIB. Kuota 20."


def outbox_rows(loket: Loket) -> list[OutboxMessage]:
    """Return every outbox row, oldest first."""
    with loket.sessions() as session:
        return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_announcement_reaches_each_follower_once_in_their_language(
    loket: Loket, clock: FakeClock
) -> None:
    ana = Chat(loket, "ana")  # Indonesian
    ben = Chat(loket, "ben", language="en")  # the channel says English
    dewi = Chat(loket, "dewi", channel="telegram")  # subscribes in Indonesian, then English
    medan_only = Chat(loket, "eko")
    for someone, city in ((ana, "Bandung"), (ben, "Bandung"), (dewi, "Bandung"),
                          (medan_only, "Medan")):  # fmt: skip
        someone.say("/langganan")
        someone.say(city)
    dewi.say("/bahasa")
    dewi.tap("English")
    bandung = office_id(loket, "bandung")
    before = len(outbox_rows(loket))

    with loket.sessions() as session, session.begin():
        entry = announce(session, bandung, None, STAFF_TEXT, clock.now, announcement_payload)
        assert entry.id is not None and entry.recipients == 3

    rows = outbox_rows(loket)[before:]
    by_chat = {(row.channel, row.user_ref): row.payload for row in rows}
    assert len(rows) == 3 and len(by_chat) == 3  # one each, nobody twice
    assert set(by_chat) == {("test", "ana"), ("test", "ben"), ("telegram", "dewi")}
    assert ("test", "eko") not in by_chat  # follows Medan only
    indonesian, english = by_chat[("test", "ana")], by_chat[("test", "ben")]
    assert indonesian["locale"] == "id"
    assert indonesian["text"] == (
        f"Pengumuman dari {BANDUNG}:\n\n{STAFF_TEXT}\n\nAnda menerima pesan ini karena "
        f"berlangganan kabar kuota {BANDUNG}. Untuk berhenti, ketik /berhenti."
    )
    assert english["locale"] == "en"
    assert english["text"].startswith(f"Announcement from {BANDUNG}:\n\n{STAFF_TEXT}\n\n")
    assert english["text"].endswith("To stop, type /berhenti.")
    assert by_chat[("telegram", "dewi")]["locale"] == "en"  # the chat's own later choice
    assert all(row.created_at is not None and row.sent_at is None for row in rows)

    with loket.sessions() as session:
        stored = session.execute(select(Announcement)).scalar_one()
        assert (stored.office_id, stored.text, stored.recipients) == (bandung, STAFF_TEXT, 3)
        assert len(subscribers_of(session, bandung)) == 3
    # Pull channels show it on the next turn.
    delivered = loket.pending_messages("test", "ana")
    assert [message.text for message in delivered] == [indonesian["text"]]


def test_announcement_without_followers_queues_nothing(loket: Loket, clock: FakeClock) -> None:
    before = len(outbox_rows(loket))
    with loket.sessions() as session, session.begin():
        entry = announce(
            session, office_id(loket, "jayapura"), None, STAFF_TEXT, clock.now, announcement_payload
        )
        assert entry.recipients == 0
    assert len(outbox_rows(loket)) == before


def test_announcement_costs_the_same_statements_for_any_number_of_followers(
    loket: Loket, clock: FakeClock
) -> None:
    def statements_for(code: str, followers: int) -> int:
        office = office_id(loket, code)
        with loket.sessions() as session, session.begin():
            for number in range(followers):
                subscribe(session, "test", f"{code}-{number}", office, "id", clock.now)
        executed: list[str] = []

        def count(*args: object) -> None:
            executed.append(str(args[2]))

        engine = loket.db
        event.listen(engine, "before_cursor_execute", count)
        try:
            with loket.sessions() as session, session.begin():
                assert announce(
                    session, office, None, "Kuota baru.", clock.now, announcement_payload
                ).recipients == (followers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(executed)

    assert statements_for("makassar", 2) == statements_for("jayapura", 40)
    rows = outbox_rows(loket)
    assert len(rows) == 42


# ---- where an application stands after check-in -------------------------------------------


def test_status_tells_each_step_after_check_in(chat: Chat, loket: Loket) -> None:
    register(chat)
    book(chat)
    expected = {
        ApplicationStatus.CHECKED_IN: f"Sudah hadir dan tercatat (check-in) di {BANDUNG}.",
        ApplicationStatus.VERIFIED: f"Berkas diverifikasi di {BANDUNG}.",
        ApplicationStatus.INTERVIEWED: "Foto dan wawancara selesai.",
        ApplicationStatus.PRINTED: "Paspor sudah dicetak.",
        ApplicationStatus.READY: f"Paspor siap diambil di {BANDUNG}. Alamat: ",
        ApplicationStatus.POSTED: "Paspor sudah dikirim lewat Pos.",
    }
    for status, fragment in expected.items():
        with loket.sessions() as session, session.begin():
            session.execute(update(Application).values(status=status))
        reply = chat.say("/status")
        assert fragment in reply, (status, reply.text)
        assert "belum memilih jadwal" not in reply and "Menunggu pembayaran" not in reply
