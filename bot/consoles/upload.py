"""The caller's upload page (`/unggah/<link>`): a phone-friendly page for the documents an
application registered by phone still lacks, opened from a personal link or a short code."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from bot.consoles import loket
from bot.core.flow import Invalid
from bot.core.messages import Inbound
from bot.documents import accept_upload, document_label, is_personal, photo_reused_message
from bot.i18n import _
from bot.timezones import format_moment
from bot.uploads import (
    link_deadline,
    missing_for,
    office_zone,
    read_token,
    token_for_code,
)
from storage.applications import DocumentRecord, PhotoReused, attach_document
from storage.models import CLOSED_STATUSES, Application

blueprint = Blueprint("upload", __name__, url_prefix="/unggah")


def _secret() -> str:
    return str(current_app.config["SECRET_KEY"])


@blueprint.route("", methods=["GET", "POST"])
def enter_code() -> ResponseReturnValue:
    """Type the short code the agent read out (posted: the code never sits in a URL)."""
    if request.method == "POST":
        token = token_for_code(loket().shared, request.form.get("code", ""))
        if token is not None:
            return redirect(url_for("upload.page", token=token))
        flash(_("Kode tidak dikenali atau sudah tidak berlaku. Periksa lagi kode dari petugas."),
              "error")  # fmt: skip
    return render_template("upload_code.html")


def _application(token: str) -> tuple[Application, str]:
    """The application a valid link names (documents loaded) and its deadline in words; 404
    for a forged, expired or closed one."""
    service = loket()
    with service.sessions() as db:
        now = service.now(db)
        application_id = read_token(_secret(), token, now)
        found = db.get(Application, application_id) if application_id is not None else None
        if found is None or found.status in CLOSED_STATUSES:
            abort(404)
        _ = list(found.documents)
        deadline = format_moment(link_deadline(db, found, now), office_zone(db, found))
        db.expunge_all()
    return found, deadline


@blueprint.get("/<token>")
def page(token: str) -> ResponseReturnValue:
    """What is still missing, one photo at a time, with the deadline."""
    application, deadline = _application(token)
    missing = [
        (requirement.key, document_label(requirement, application.answers), _(requirement.hint))
        for requirement in missing_for(application)
    ]
    return render_template(
        "upload_page.html",
        token=token,
        number=application.reg_number,
        missing=missing,
        deadline=deadline,
    )


@blueprint.post("/<token>")
def upload(token: str) -> ResponseReturnValue:
    """Take one missing document's photo through the one photo pipeline."""
    application, _deadline = _application(token)
    wanted = {r.key: r for r in missing_for(application)}
    kind = request.form.get("kind", "")
    file = request.files.get("file")
    if kind not in wanted:
        flash(_("Dokumen itu tidak diminta lagi untuk permohonan ini."), "error")
        return redirect(url_for("upload.page", token=token))
    if file is None:
        flash(_("File tidak terbaca. Silakan pilih file lagi."), "error")
        return redirect(url_for("upload.page", token=token))
    service = loket()
    event = service.check_upload(
        Inbound.file(file.read(), file.filename or None, file.mimetype, g.get("locale"))
    )
    requirement = wanted[kind]
    label = document_label(requirement, application.answers)
    personal = is_personal(kind, application.answers)
    assert event.upload is not None
    try:
        record = accept_upload(
            event.upload, service.blobs, label, personal=personal, owner=application.nik
        )
    except Invalid as refusal:
        flash(refusal.reason, "error")
        return redirect(url_for("upload.page", token=token))
    try:
        with service.sessions() as db, db.begin():
            stored = db.get(Application, application.id)
            assert stored is not None
            attach_document(
                db,
                stored,
                DocumentRecord(
                    kind=kind,
                    sha256=record["sha256"],
                    content_type=record["content_type"],
                    size=record["size"],
                    phash=int(record["phash"], 16) if record.get("phash") else None,
                    personal=personal,
                ),
            )
    except PhotoReused:  # a near copy claimed for another NIK since the check above
        flash(photo_reused_message(label), "error")
        return redirect(url_for("upload.page", token=token))
    flash(_("{document} diterima. Terima kasih.").format(document=label), "success")
    return redirect(url_for("upload.page", token=token))
