"""Paspor keliling and Eazy Passport pages.

Public: the request form (`/eazy`) and the contact person's status page, reached by a signed
link (`/eazy/status/<token>`: the request's id signed with the app's key, no personal data).
Office admins: sessions at a venue (`/office/keliling`) and requests (`/office/eazy/<id>`).
Agents: the same request form for a caller (`/agent/eazy`). The contact person is told each
step by SMS/WhatsApp through the outbox (bot/phone_sender.py `PhoneDelivery`), in Indonesian.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    after_this_request,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.consoles import current_staff, current_staff_id, loket, staff_required
from bot.consoles.labels import status_label
from bot.consoles.office import ADMINS, _time, office_work
from bot.core.flow import Invalid
from bot.flows.subscription import announcement_payload
from bot.i18n import N_, _, format_date, use_locale
from bot.outreach import ACCESS_LABELS, map_link
from bot.qr import qr_png
from bot.timezones import format_window
from bot.validators import parse_email, parse_phone
from storage.booking import queue_message
from storage.models import (
    Office,
    OutreachAccess,
    OutreachRequest,
    OutreachSession,
    RequestStatus,
    Slot,
    StaffRole,
)
from storage.outbox import SMS_CHANNEL
from storage.outreach import (
    MAX_GROUP,
    MIN_GROUP,
    REQUEST_KINDS,
    OutreachRefusal,
    Window,
    accept_proposal,
    approve,
    create_request,
    create_session,
    decline,
    member_applications,
    progress,
    propose,
    requests_of_office,
    sessions_of_office,
)
from storage.staff import audit
from storage.subscriptions import announce

blueprint = Blueprint("outreach", __name__)
AGENTS = (StaffRole.AGENT,)
# Requests from one source address: a burst of 10, then one every 2 minutes (generous, since
# carrier-grade NAT puts many people behind one address; the office reads every request).
REQUEST_BURST, REQUEST_RATE = 10, 1 / 120

KIND_LABELS = {
    "company": N_("Perusahaan / instansi"),
    "school": N_("Sekolah / kampus"),
    "community": N_("Komunitas / organisasi"),
    "mosque": N_("Masjid"),
    "church": N_("Gereja"),
    "other": N_("Lainnya"),
}
STATUS_LABELS = {
    RequestStatus.NEW: N_("Menunggu jawaban kantor"),
    RequestStatus.PROPOSED: N_("Kantor mengusulkan tanggal lain"),
    RequestStatus.APPROVED: N_("Disetujui"),
    RequestStatus.DECLINED: N_("Tidak dapat dipenuhi"),
}


def kind_label(kind: str) -> str:
    """Name an organisation's kind."""
    return _(KIND_LABELS.get(kind, KIND_LABELS["other"]))


def request_status_label(status: str) -> str:
    """Name where a request stands."""
    return _(STATUS_LABELS[RequestStatus(status)])


def access_label(access: str) -> str:
    """Name who may book a session."""
    return _(ACCESS_LABELS[OutreachAccess(access)])


@blueprint.app_context_processor
def helpers() -> dict[str, Any]:
    """Labels the outreach templates use."""
    return {
        "kind_label": kind_label,
        "request_status_label": request_status_label,
        "access_label": access_label,
        "map_link": map_link,
    }


# ---- links ---------------------------------------------------------------------------------


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(str(current_app.config["SECRET_KEY"]), salt="eazy-status")


def status_token(request_id: int) -> str:
    """Sign a request's id for the contact person's status link."""
    return str(_signer().dumps(request_id))


def read_token(token: str) -> int | None:
    """Return the request id a status link names, or None when the signature is wrong."""
    try:
        value = _signer().loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) else None


def external(path: str) -> str:
    """Make a full link: PUBLIC_URL when configured, else this request's host."""
    base = loket().settings.public_url or request.host_url
    return base.rstrip("/") + path


def status_link(request_id: int) -> str:
    """The contact person's status page."""
    return external(url_for("outreach.status", token=status_token(request_id)))


def group_links(code: str) -> dict[str, str]:
    """The links that start a chat with the group code: Telegram (if named) and web chat."""
    links = {"web": external(url_for("webchat.page", start=code))}
    username = loket().settings.telegram_bot_username
    if username:
        links["telegram"] = f"https://t.me/{username}?start={code}"
    return links


def tell_contact(db: Session, outreach_request: OutreachRequest, text: str) -> None:
    """Queue a short message to the contact person (SMS/WhatsApp) in the outbox, in this
    request's transaction: it leaves with the commit and is retried until delivered, and a
    rolled-back answer is never announced."""
    queue_message(db, SMS_CHANNEL, outreach_request.contact_phone, {"text": text},
                  loket().now(db))  # fmt: skip
    queued: list[int] = g.setdefault("contact_messages", [])
    if not queued:
        after_this_request(deliver_to_contacts)
    queued.append(outreach_request.id)


def deliver_to_contacts(response: Response) -> Response:
    """Start delivering the queued messages once the request is answered (its transaction
    committed), and tell staff they are queued, not yet delivered."""
    queued = g.pop("contact_messages", [])
    loket().phone_delivery.kick()  # what committed goes out now; the worker retries the rest
    if response.status_code < 400 and current_staff() is not None:
        flash(
            _("{n} pesan ke penanggung jawab diantrekan (SMS/WhatsApp).").format(n=len(queued)),
            "success",
        )
    return response


# ---- the request form (public and agent) ---------------------------------------------------

FIELDS = ("office", "organisation", "kind", "contact_name", "contact_phone", "contact_email",
          "expected", "preferred_dates", "venue", "address", "city")  # fmt: skip


def read_request_form(db: Session) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """Read the request form: (typed values, errors per field, checked values)."""
    form = {key: request.form.get(key, "").strip() for key in FIELDS}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    office = db.execute(select(Office).where(Office.code == form["office"])).scalar_one_or_none()
    if office is None:
        errors["office"] = _("Pilih kantor imigrasi yang dituju.")
    else:
        values["office_id"] = office.id
    texts = {
        "organisation": (3, 160, _("Tulis nama organisasi (minimal 3 huruf).")),
        "contact_name": (3, 120, _("Tulis nama penanggung jawab (minimal 3 huruf).")),
        "preferred_dates": (3, 200, _("Tulis tanggal yang diinginkan, contoh: 10 Desember.")),
        "venue": (3, 120, _("Tulis nama tempat, contoh: Aula SMA Negeri 3.")),
        "address": (5, 300, _("Tulis alamat tempat dengan lengkap.")),
        "city": (3, 60, _("Tulis kota atau kabupaten tempat kunjungan.")),
    }  # fmt: skip
    for key, (least, most, message) in texts.items():
        if not least <= len(form[key]) <= most:
            errors[key] = message
        else:
            values[key] = " ".join(form[key].split())
    if form["kind"] not in REQUEST_KINDS:
        errors["kind"] = _("Pilih jenis organisasi.")
    else:
        values["kind"] = form["kind"]
    try:
        values["contact_phone"] = parse_phone(form["contact_phone"])
    except Invalid as refusal:
        errors["contact_phone"] = refusal.reason
    if form["contact_email"]:
        try:
            values["contact_email"] = parse_email(form["contact_email"])
        except Invalid:
            errors["contact_email"] = _("Alamat email tidak valid. Contoh: nama@gmail.com.")
    expected = int(form["expected"]) if form["expected"].isdigit() else 0
    if not MIN_GROUP <= expected <= MAX_GROUP:
        errors["expected"] = _(
            "Eazy Passport melayani rombongan {least} sampai {most} pemohon. Tulis perkiraan "
            "jumlah pemohon dengan angka."
        ).format(least=MIN_GROUP, most=MAX_GROUP)
    else:
        values["expected"] = expected
    return form, errors, values


def received_text(outreach_request: OutreachRequest, office: Office) -> str:
    """Tell the contact person the request arrived, with the status link."""
    return _(
        "Loket: permohonan kunjungan Eazy Passport untuk {organisation} sudah diterima "
        "{office}. Kami kabari setiap perkembangan. Status: {link}"
    ).format(
        organisation=outreach_request.organisation,
        office=office.name,
        link=status_link(outreach_request.id),
    )


def save_request(db: Session, values: dict[str, Any], channel: str, staff_id: int | None) -> int:
    """Record a request and tell the contact person; return its id."""
    now = loket().now(db)
    outreach_request = create_request(db, now=now, channel=channel, created_by=staff_id, **values)
    office = db.get(Office, outreach_request.office_id)
    assert office is not None
    with use_locale("id"):
        tell_contact(db, outreach_request, received_text(outreach_request, office))
    if staff_id is not None:
        audit(db, staff_id, "agent.eazy_request", str(outreach_request.id), {}, now, office.id)
    return outreach_request.id


def _offices(db: Session) -> list[Office]:
    return list(db.execute(select(Office).order_by(Office.city)).scalars())


def _too_many() -> bool:
    """Take one request from this address's bucket; True when it is empty."""
    address = request.remote_addr or "-"
    key = "rate:eazy:" + hashlib.sha256(address.encode()).hexdigest()[:24]
    allowed, _wait = loket().shared.take(key, REQUEST_RATE, REQUEST_BURST)
    return not allowed


@blueprint.route("/eazy", methods=["GET", "POST"])
def request_form() -> ResponseReturnValue:
    """The public Eazy Passport request form (phone-friendly)."""
    service = loket()
    form: dict[str, str] = {key: "" for key in FIELDS}
    errors: dict[str, str] = {}
    status = 200
    with service.sessions() as db, db.begin():
        if request.method == "POST":
            if _too_many():
                errors["form"] = _(
                    "Terlalu banyak permohonan dari jaringan ini. Coba lagi beberapa menit lagi."
                )
                status = 429
            else:
                form, errors, values = read_request_form(db)
                if not errors:
                    request_id = save_request(db, values, "web", None)
                    flash(
                        _("Permohonan terkirim. Simpan tautan halaman ini untuk melihat status."),
                        "success",
                    )
                    return redirect(url_for("outreach.status", token=status_token(request_id)))
                status = 400
        offices = _offices(db)
        db.expunge_all()
    return render_template(
        "eazy_form.html", form=form, errors=errors, offices=offices, kinds=REQUEST_KINDS,
        action=url_for("outreach.request_form"),
    ), status  # fmt: skip


@blueprint.route("/agent/eazy", methods=["GET", "POST"])
@staff_required(*AGENTS)
def agent_request_form() -> ResponseReturnValue:
    """Customer care records a caller's Eazy Passport request."""
    service = loket()
    form: dict[str, str] = {key: "" for key in FIELDS}
    errors: dict[str, str] = {}
    with service.sessions() as db, db.begin():
        if request.method == "POST":
            form, errors, values = read_request_form(db)
            if not errors:
                request_id = save_request(db, values, "agent", current_staff_id())
                flash(
                    _(
                        "Permohonan Eazy Passport #{id} tercatat; penanggung jawab sudah dikabari."
                    ).format(id=request_id),
                    "success",
                )
                return redirect(url_for("outreach.agent_request_form"))
        offices = _offices(db)
        db.expunge_all()
    return render_template(
        "eazy_form.html", form=form, errors=errors, offices=offices, kinds=REQUEST_KINDS,
        action=url_for("outreach.agent_request_form"),
    ), (400 if errors else 200)  # fmt: skip


@blueprint.get("/eazy/status/<token>")
def status(token: str) -> ResponseReturnValue:
    """The contact person's page: where the request stands and the group's progress as counts."""
    request_id = read_token(token)
    if request_id is None:
        abort(404)
    service = loket()
    with service.sessions() as db:
        outreach_request = db.get(OutreachRequest, request_id)
        if outreach_request is None:
            abort(404)
        office = outreach_request.office
        _loaded = office.name
        outreach = None
        windows: list[Slot] = []
        if outreach_request.session_id is not None:
            outreach = db.get(OutreachSession, outreach_request.session_id)
            windows = session_windows(db, outreach_request.session_id)
        counts = progress(db, outreach_request)
        db.expunge_all()
    links: dict[str, str] = {}
    qr = None
    if outreach_request.group_code and outreach_request.status == RequestStatus.APPROVED:
        links = group_links(outreach_request.group_code)
        chosen = links.get("telegram", links["web"])
        qr = "data:image/png;base64," + base64.b64encode(qr_png(chosen)).decode()
    return render_template(
        "eazy_status.html", item=outreach_request, office=office, outreach=outreach,
        windows=windows, counts=counts, links=links, qr=qr, token=token,
    )  # fmt: skip


@blueprint.post("/eazy/status/<token>/setuju")
def accept(token: str) -> ResponseReturnValue:
    """The contact person agrees to the date the office proposed; the office then approves."""
    request_id = read_token(token)
    if request_id is None:
        abort(404)
    service = loket()
    with service.sessions() as db, db.begin():
        outreach_request = db.get(OutreachRequest, request_id)
        if outreach_request is None:
            abort(404)
        if accept_proposal(outreach_request, service.now(db)):
            flash(_("Terima kasih. Kantor imigrasi akan menyetujui tanggal itu."), "success")
        else:
            flash(_("Tidak ada usulan tanggal yang menunggu jawaban Anda."), "error")
    return redirect(url_for("outreach.status", token=token))


def session_windows(db: Session, outreach_id: int) -> list[Slot]:
    """A session's windows, by day."""
    return list(
        db.execute(
            select(Slot).where(Slot.outreach_id == outreach_id).order_by(Slot.day, Slot.start_time)
        ).scalars()
    )


# ---- the office: sessions ------------------------------------------------------------------


def outreach_refusal(reason: str) -> str:
    """Say why a session or an answer to a request was refused."""
    return {
        "fields": _("Isi nama tempat, alamat dan kota."),
        "coords": _("Koordinat tidak valid: lintang -90 sampai 90, bujur -180 sampai 180."),
        "access": _("Pilih siapa yang boleh memesan."),
        "group": _("Sesi khusus grup dibuat dengan menyetujui permohonan Eazy Passport."),
        "windows": _("Isi minimal satu tanggal."),
        "past": _("Tanggal sesi harus setelah hari ini."),
        "hours": _("Jam selesai harus setelah jam mulai."),
        "quota": _("Kuota harus antara 1 dan 500."),
        "exists": _("Kantor ini sudah punya sesi yang mulai pada tanggal dan jam itu."),
        "decided": _("Permohonan ini sudah diputuskan."),
        "reason": _("Tulis alasan (minimal 5 huruf) agar penanggung jawab mengerti."),
    }[reason]


@blueprint.get("/office/keliling")
@staff_required(*ADMINS)
def office_overview() -> ResponseReturnValue:
    """The office's paspor keliling sessions and Eazy Passport requests."""
    with office_work() as (db, office, _now, today):
        sessions = sessions_of_office(db, office.id, today)
        windows = {outreach.id: session_windows(db, outreach.id) for outreach in sessions}
        requests = requests_of_office(db, office.id)
        db.expunge_all()
    return render_template(
        "office_outreach.html", office=office, sessions=sessions, windows=windows,
        requests=requests,
    )  # fmt: skip


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def read_windows(form: dict[str, str]) -> list[Window] | str:
    """Read the days (first to last, every day) and the window, or say what is wrong."""
    start, end = _time(form["start"]), _time(form["end"])
    try:
        first = date.fromisoformat(form["day"])
        last = date.fromisoformat(form["last_day"]) if form.get("last_day") else first
        quota = int(form["quota"])
    except ValueError:
        return _("Isi tanggal (HH-BB-TTTT) dan kuota (angka) dengan benar.")
    if start is None or end is None:
        return _("Isi jam mulai dan jam selesai, misalnya 08:00 dan 12:00.")
    if not first <= last <= first + timedelta(days=13):
        return _(
            "Tanggal terakhir harus sama dengan atau setelah tanggal pertama, paling lama 14 hari."
        )
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [Window(day, start, end, quota) for day in days]


@blueprint.route("/office/keliling/baru", methods=["GET", "POST"])
@staff_required(*ADMINS)
def new_session() -> ResponseReturnValue:
    """Open a paspor keliling session at a venue and, if asked, announce it."""
    with office_work() as (db, office, now, today):
        form = {
            "venue": "", "address": "", "city": office.city, "latitude": "", "longitude": "",
            "day": (today + timedelta(days=7)).isoformat(), "last_day": "", "start": "08:00",
            "end": "12:00", "quota": "50", "access": OutreachAccess.EVERYONE,
            "documents": "", "announce": "1",
        }  # fmt: skip
        error = None
        if request.method == "POST":
            form = {key: request.form.get(key, "").strip() for key in form}
            windows = read_windows(form)
            latitude, longitude = _float(form["latitude"]), _float(form["longitude"])
            if isinstance(windows, str):
                error = windows
            elif latitude is None or longitude is None:
                error = _("Isi koordinat tempat (lintang dan bujur), contoh: -6.8722 dan 107.5425.")
            elif form["access"] == OutreachAccess.GROUP:
                error = outreach_refusal("group")
            else:
                try:
                    outreach = create_session(
                        db, office_id=office.id, venue=form["venue"], address=form["address"],
                        city=form["city"], latitude=latitude, longitude=longitude,
                        access=form["access"], documents=form["documents"], windows=windows,
                        today=today, now=now, staff_id=current_staff_id(),
                    )  # fmt: skip
                except OutreachRefusal as refusal:
                    error = outreach_refusal(str(refusal))
                else:
                    detail = {"days": len(windows), "quota": windows[0].capacity}
                    audit(db, current_staff_id(), "office.keliling", str(outreach.id), detail,
                          now, office.id)  # fmt: skip
                    message = _(
                        "Sesi paspor keliling di {venue} sudah dibuka dan bisa dipesan lewat chat."
                    ).format(venue=outreach.venue)
                    if form["announce"]:
                        text = announcement(office, outreach, windows)
                        sent = announce(
                            db, office.id, current_staff_id(), text, now, announcement_payload
                        )
                        audit(db, current_staff_id(), "office.announce", str(outreach.id),
                              {"recipients": sent.recipients}, now, office.id)  # fmt: skip
                        message += " " + _("Pengumuman diantrekan untuk {n} pelanggan.").format(
                            n=sent.recipients
                        )
                    flash(message, "success")
                    return redirect(url_for("outreach.office_overview", office=_office_arg()))
        db.expunge_all()
    return render_template("office_outreach_new.html", office=office, form=form, error=error), (
        400 if error else 200
    )


def _office_arg() -> str | None:
    """Keep a superadmin on the office they were looking at."""
    return request.values.get("office") or None


def announcement(office: Office, outreach: OutreachSession, windows: list[Window]) -> str:
    """The announcement's text, in Indonesian as the office publishes it."""
    days = ", ".join(format_date(w.day) for w in windows[:7])
    lines = [
        f"Paspor keliling {office.name} di luar kantor: {outreach.venue}, {outreach.address}, "
        f"{outreach.city}.",
        f"{days}, {format_window(windows[0].start, windows[0].end, office.timezone)}, "
        f"kuota {windows[0].capacity} pemohon per hari.",
        f"Peta: {map_link(outreach)}",
        "Pesan lewat chat: /jadwal, lalu ketik nama kota atau bagikan lokasi Anda.",
    ]
    if outreach.access == OutreachAccess.NEW_ONLY:
        lines.insert(2, "Khusus permohonan paspor baru.")
    return "\n".join(lines)


# ---- the office: requests ------------------------------------------------------------------


def office_request(db: Session, office: Office, request_id: int) -> OutreachRequest:
    """Return the office's own request, else 404 (another office's requests are not found)."""
    found = db.get(OutreachRequest, request_id)
    if found is None or found.office_id != office.id:
        abort(404)
    return found


@blueprint.route("/office/eazy/<int:request_id>", methods=["GET", "POST"])
@staff_required(*ADMINS)
def handle_request(request_id: int) -> ResponseReturnValue:
    """One request: approve with a date, propose another date, or decline with a reason."""
    with office_work() as (db, office, now, today):
        item = office_request(db, office, request_id)
        form = {
            "day": (today + timedelta(days=14)).isoformat(), "start": "08:00", "end": "13:00",
            "quota": str(item.expected), "latitude": "", "longitude": "", "documents": "",
            "reason": "",
        }  # fmt: skip
        error = None
        if request.method == "POST":
            form = {key: request.form.get(key, "").strip() for key in form}
            action = request.form.get("action", "")
            try:
                done = act_on_request(db, office, item, action, form, today, now)
            except OutreachRefusal as refusal:
                error = outreach_refusal(str(refusal))
            else:
                if isinstance(done, str) and done.startswith("!"):
                    error = done[1:]
                else:
                    flash(done, "success")
                    return redirect(
                        url_for("outreach.handle_request", request_id=item.id, office=_office_arg())
                    )
        members = member_applications(db, item)
        bookings = {application.id: status_label(application.status) for application in members}
        counts = progress(db, item)
        outreach = db.get(OutreachSession, item.session_id) if item.session_id else None
        windows = session_windows(db, item.session_id) if item.session_id else []
        links = group_links(item.group_code) if item.group_code else {}
        db.expunge_all()
    return render_template(
        "office_eazy.html", office=office, item=item, form=form, error=error, members=members,
        bookings=bookings, counts=counts, outreach=outreach, windows=windows, links=links,
        status_url=status_link(item.id),
    ), (400 if error else 200)  # fmt: skip


def act_on_request(
    db: Session,
    office: Office,
    item: OutreachRequest,
    action: str,
    form: dict[str, str],
    today: date,
    now: Any,
) -> str:
    """Approve, propose or decline; tell the contact person; return the flash ("!" = error)."""
    staff_id = current_staff_id()
    if action == "approve":
        windows = read_windows({**form, "last_day": ""})
        if isinstance(windows, str):
            return "!" + windows
        latitude, longitude = _float(form["latitude"]), _float(form["longitude"])
        if latitude is None or longitude is None:
            return "!" + _(
                "Isi koordinat tempat (lintang dan bujur), contoh: -6.8722 dan 107.5425."
            )
        outreach = approve(
            db, item, windows[0], latitude, longitude, form["documents"], today, now, staff_id
        )
        audit(db, staff_id, "office.eazy_approve", str(item.id), {"session": outreach.id}, now,
              office.id)  # fmt: skip
        assert item.group_code is not None
        links = group_links(item.group_code)
        with use_locale("id"):
            tell_contact(db, item, _(
                "Loket: kunjungan Eazy Passport untuk {organisation} disetujui: {date}, {window} "
                "di {venue}. Kode grup: {code}. Bagikan tautan ini kepada anggota: {link} . "
                "Perkembangan pendaftaran: {status}"
            ).format(
                organisation=item.organisation, date=format_date(windows[0].day),
                window=format_window(windows[0].start, windows[0].end, office.timezone),
                venue=item.venue, code=item.group_code,
                link=links.get("telegram", links["web"]), status=status_link(item.id),
            ))  # fmt: skip
        return _("Permohonan disetujui; sesi khusus grup dibuat dengan kode {code}.").format(
            code=item.group_code
        )
    if action == "propose":
        try:
            day = date.fromisoformat(form["day"])
        except ValueError:
            return "!" + _("Isi tanggal usulan (HH-BB-TTTT) dengan benar.")
        propose(db, item, day, form["reason"], today, now)
        audit(db, staff_id, "office.eazy_propose", str(item.id), {"day": day.isoformat()}, now,
              office.id)  # fmt: skip
        with use_locale("id"):
            note = (" " + form["reason"][:300]) if form["reason"] else ""
            tell_contact(db, item, _(
                "Loket: {office} mengusulkan tanggal lain untuk kunjungan Eazy Passport "
                "{organisation}: {date}.{note} Bila setuju, tekan \"Setuju dengan tanggal ini\" "
                "di halaman status; bila tidak, hubungi kantor. Status: {status}"
            ).format(
                office=office.name, organisation=item.organisation, date=format_date(day),
                note=note, status=status_link(item.id),
            ))  # fmt: skip
        return _("Usulan tanggal {date} dikirim ke penanggung jawab.").format(date=format_date(day))
    if action == "decline":
        decline(db, item, form["reason"], now)
        audit(db, staff_id, "office.eazy_decline", str(item.id), {}, now, office.id)
        with use_locale("id"):
            tell_contact(db, item, _(
                "Loket: mohon maaf, permohonan kunjungan Eazy Passport untuk {organisation} "
                "tidak dapat dipenuhi {office}. Alasan: {reason} Status: {status}"
            ).format(
                organisation=item.organisation, office=office.name, reason=item.reason,
                status=status_link(item.id),
            ))  # fmt: skip
        return _("Permohonan ditolak; alasannya dikirim ke penanggung jawab.")
    return "!" + _("Pilih tindakan: setujui, usulkan tanggal lain, atau tolak.")
