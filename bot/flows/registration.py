"""Registration: consent, service, application type, identity, documents, summary, submit.

M-Paspor parity (DOMAIN.md). The steps are data; what is specific to one step lives in the
small functions right above the `FLOW` declaration.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.core.capabilities import Upload, capabilities
from bot.core.flow import (
    Answers,
    Context,
    Flow,
    Invalid,
    Jump,
    Option,
    StartFlow,
    Stay,
    Step,
    Transition,
)
from bot.core.messages import EventKind, Expect, Inbound
from bot.documents import (
    REQUIREMENTS,
    SUPPORTING_LABELS,
    Requirement,
    accept_upload,
    document_label,
    is_personal,
    photo_reused_message,
    required_documents,
)
from bot.fees import FeeQuote, quote, schedule_on
from bot.flows.booking import booking_after_registration
from bot.i18n import N_, _, format_date, format_money
from bot.timezones import EASTERNMOST, local_date
from bot.validators import (
    age_on,
    parse_address,
    parse_date,
    parse_email,
    parse_full_name,
    parse_passport_number,
    parse_phone,
    parse_place,
    suggest_email,
)
from storage.applications import (
    DocumentRecord,
    NikAlreadyOpen,
    PhotoReused,
    count_open_for_account,
    create_application,
    open_application_for_nik,
)
from storage.models import Application

NAME = "registration"
ADULT_AGE = 17

# ---- derived facts -------------------------------------------------------------------------


def is_child(a: Answers) -> bool:
    """Tell whether the applicant is a child under 17."""
    return a.get("category") == "child"


def had_passport(a: Answers) -> bool:
    """Tell whether the applicant has had a passport (so this is a replacement)."""
    return a.get("had_passport") == "yes"


def application_type(a: Answers) -> str:
    """Return "baru" or "penggantian"; never asked directly, derived from "pernah punya paspor"."""
    return "penggantian" if had_passport(a) else "baru"


def validity_years(a: Answers) -> int:
    """Return the validity; a child's passport is valid for 5 years."""
    return 5 if is_child(a) else int(a.get("validity", 5))


def fee_quote(a: Answers, day: date) -> FeeQuote:
    """Price the application from the fee table in force on `day`."""
    return quote(
        day=day,
        passport_kind=a["passport_kind"],
        validity_years=validity_years(a),
        service=a["service"],
        replacement_reason=a.get("replace_reason") if had_passport(a) else None,
    )


# ---- step behaviour ------------------------------------------------------------------------


def consent_prompt(_ctx: Context) -> str:
    """Explain what we collect and why before asking for any personal data (UU PDP)."""
    return "\n".join(
        [
            _("Sebelum mulai, mohon baca dan setujui pemrosesan data pribadi (UU PDP 27/2022)."),
            "",
            _("• Tujuan: mendaftarkan permohonan paspor Anda ke kantor imigrasi."),
            _(
                "• Data yang kami minta: NIK, nama, tempat dan tanggal lahir, jenis kelamin, "
                "nomor HP, email, alamat, tujuan perjalanan, dan foto dokumen."
            ),
            _(
                "• Penyimpanan: selama permohonan diproses, lalu paling lama 1 tahun setelah "
                "selesai atau dibatalkan, kemudian dihapus."
            ),
            _(
                "• Hak Anda: melihat, memperbaiki, dan meminta penghapusan data, serta menarik "
                'persetujuan kapan saja dengan mengetik "batal".'
            ),
            "",
            _("Apakah Anda setuju?"),
        ]
    )


def after_consent(ctx: Context, value: Any) -> Transition | None:
    """Record when consent was given; without it, stop before any personal data."""
    if value != "yes":
        ctx.say(
            _(
                "Baik, tanpa persetujuan kami tidak dapat memproses pendaftaran. Tidak ada data "
                "yang disimpan. Anda bisa mulai lagi kapan saja."
            )
        )
        return StartFlow("menu")
    ctx.answers["consent_at"] = ctx.now.isoformat()
    return None


def service_prompt(ctx: Context) -> str:
    """Offer reguler and percepatan with the surcharge from the fee table."""
    surcharge = schedule_on(local_date(ctx.now)).surcharge["percepatan"]
    return _(
        "Pilih jenis layanan:\n"
        "• Reguler: paspor selesai sekitar 4 hari kerja.\n"
        "• Percepatan: paspor selesai di hari yang sama, tambahan biaya {fee}."
    ).format(fee=format_money(surcharge))


def after_had_passport(ctx: Context, value: Any) -> Transition | None:
    """Steer away from the costly mistake of applying for a "new" passport after having one."""
    if value == "yes":
        ctx.say(
            _(
                "Karena Anda pernah memiliki paspor, permohonan Anda adalah penggantian, bukan "
                "paspor baru. Mengajukan paspor baru padahal pernah punya paspor bisa membuat "
                "permohonan ditolak di kantor imigrasi, dan biaya tidak dapat dikembalikan."
            )
        )
    return None


def kind_prompt(ctx: Context) -> str:
    """List passport kinds with their fees from the table in force today."""
    fees = schedule_on(local_date(ctx.now)).passport
    return _(
        "Pilih jenis paspor:\n"
        "• Paspor biasa (non-elektronik): 5 tahun {b5}, 10 tahun {b10}\n"
        "• Paspor elektronik: 5 tahun {e5}, 10 tahun {e10}"
    ).format(
        b5=format_money(fees["biasa_5"]),
        b10=format_money(fees["biasa_10"]),
        e5=format_money(fees["elektronik_5"]),
        e10=format_money(fees["elektronik_10"]),
    )


def read_birth_date(ctx: Context, event: Inbound) -> str:
    """Parse a birth date and store it as ISO text."""
    return parse_date(event.text, local_date(ctx.now, EASTERNMOST)).isoformat()


def check_birth_date(ctx: Context, value: Any) -> None:
    """The age must fit the category chosen (child under 17, adult from 17)."""
    age = age_on(date.fromisoformat(value), local_date(ctx.now))
    if is_child(ctx.answers) and age >= ADULT_AGE:
        raise Invalid(
            _(
                "Menurut tanggal lahir ini, pemohon berumur {age} tahun, jadi bukan pemohon anak "
                "(di bawah 17 tahun). Periksa tanggal lahir, atau ubah kategori pemohon."
            ).format(age=age),
            fixes=("category",),
        )
    if ctx.answers.get("category") == "adult" and age < ADULT_AGE:
        raise Invalid(
            _(
                "Menurut tanggal lahir ini, pemohon berumur {age} tahun. Pemohon di bawah 17 "
                "tahun mendaftar sebagai anak, dengan dokumen orang tua. Periksa tanggal lahir, "
                "atau ubah kategori pemohon."
            ).format(age=age),
            fixes=("category",),
        )


def read_nik(ctx: Context, event: Inbound) -> str:
    """Validate the NIK's structure."""
    return ctx.identity.read_nik(event.text)


def check_nik(ctx: Context, value: Any) -> None:
    """The NIK must match the birth date and sex, and have no other open application."""
    if "birth_date" in ctx.answers and "sex" in ctx.answers:
        birth_date = date.fromisoformat(ctx.answers["birth_date"])
        ctx.identity.check_person(value, birth_date, ctx.answers["sex"])
    if open_application_for_nik(ctx.session, value) is not None:
        raise Invalid(
            _(
                "NIK ini sudah memiliki permohonan paspor yang masih aktif. Satu NIK hanya boleh "
                "punya satu permohonan aktif. Cek dengan /status, atau hubungi kantor imigrasi "
                "bila Anda tidak pernah mendaftarkannya."
            )
        )


def phone_prompt(ctx: Context) -> str:
    """Ask for the phone number; only channels that can share a contact offer to."""
    if capabilities(ctx.channel).share_contact:
        return _("Ketik nomor HP yang aktif (contoh: 0812 3456 7890), atau bagikan kontak Anda.")
    return _("Ketik nomor HP yang aktif, contoh: 0812 3456 7890.")


def read_phone(_ctx: Context, event: Inbound) -> str:
    """Accept a shared contact or a typed number."""
    if event.kind not in (EventKind.TEXT, EventKind.CONTACT):
        if capabilities(_ctx.channel).share_contact:
            raise Invalid(_("Ketik nomor HP Anda, atau bagikan kontak Anda."))
        raise Invalid(_("Ketik nomor HP Anda, contoh: 0812 3456 7890."))
    return parse_phone(event.text)


def read_text(parser: Any) -> Any:
    """Wrap a text parser so a photo or button at a text step gets a clear refusal."""

    def read(_ctx: Context, event: Inbound) -> Any:
        if event.kind is not EventKind.TEXT:
            raise Invalid(_("Mohon jawab dengan mengetik teks."))
        return parser(event.text)

    return read


def check_old_passport(ctx: Context, value: Any) -> None:
    """Only a lost passport's number may be left out."""
    if value is None and ctx.answers.get("replace_reason") != "lost":
        raise Invalid(_("Nomor paspor lama wajib diisi. Lihat halaman data paspor lama Anda."))


def old_passport_prompt(ctx: Context) -> str:
    """Ask for the old passport number; a lost one may be skipped."""
    text = _("Ketik nomor paspor lama (contoh: X1234567).")
    if ctx.answers.get("replace_reason") == "lost":
        text += "\n" + _('Jika tidak ingat, pilih "Lewati".')
    return text


EMAIL_SUGGESTION = "email_suggestion"  # a likely-meant address, while we ask about it


def after_email(ctx: Context, value: Any) -> Transition | None:
    """Ask "did you mean ...@gmail.com?" when the domain looks like a typo of a common one."""
    ctx.answers.pop(EMAIL_SUGGESTION, None)
    suggestion = suggest_email(value) if value else None
    if suggestion is None:
        return None
    ctx.answers[EMAIL_SUGGESTION] = suggestion
    return Jump("email_check")


def email_check_prompt(ctx: Context) -> str:
    """Ask whether the suggested address is the one meant."""
    return _("Maksud Anda {suggestion}?").format(suggestion=ctx.answers[EMAIL_SUGGESTION])


def email_check_options(ctx: Context) -> list[Option]:
    """Offer the suggested address, or keeping what was typed."""
    return [
        Option("yes", _("Ya, {email}").format(email=ctx.answers.get(EMAIL_SUGGESTION, "")),
               YES_NO[0].aliases),
        Option("no", _("Tidak, tetap {email}").format(email=ctx.answers.get("email", "")),
               YES_NO[1].aliases),
    ]  # fmt: skip


def after_email_check(ctx: Context, value: Any) -> Transition | None:
    """Take the suggestion, or keep the address as typed if the applicant insists."""
    suggestion = ctx.answers.pop(EMAIL_SUGGESTION, None)
    if value == "yes" and suggestion:
        ctx.answers["email"] = suggestion
    return None


def supporting_applies(a: Answers) -> bool:
    """Adults applying for a first passport choose one supporting document."""
    return a.get("category") == "adult" and a.get("had_passport") == "no"


def how_to_send(channel: str) -> str:
    """Say how to send a document photo with what this channel has."""
    upload = capabilities(channel).upload
    if upload is Upload.TELEGRAM:
        return _("Kirim sebagai foto (JPEG/PNG); file PDF tidak bisa kami terima.")
    if upload is Upload.BUTTON:
        return _('Unggah fotonya (JPEG/PNG) dengan tombol "Kirim foto / file".')
    if upload is Upload.COMMAND:
        return _("Kirim fotonya dengan /foto PATH, contoh: /foto ~/ktp.jpg")
    return _("Kirim fotonya (JPEG/PNG).")


def document_prompt(requirement: Requirement) -> Any:
    """Ask for one document photo, saying where it stands in the checklist."""

    def prompt(ctx: Context) -> str:
        checklist = required_documents(ctx.answers)
        position = [r.key for r in checklist].index(requirement.key) + 1
        text = _("Dokumen {n} dari {total}: {document}").format(
            n=position, total=len(checklist), document=document_label(requirement, ctx.answers)
        )
        return text + "\n" + _(requirement.hint) + "\n" + how_to_send(ctx.channel)

    return prompt


def read_document(requirement: Requirement) -> Any:
    """Take a photo or file upload of one document; text at a photo step gets a reminder."""

    def parse(ctx: Context, event: Inbound) -> dict[str, Any]:
        if event.kind is not EventKind.FILE or event.upload is None:
            raise Invalid(_("Di langkah ini kami perlu foto dokumen, bukan teks. Kirim fotonya."))
        document = document_label(requirement, ctx.answers)
        personal = is_personal(requirement.key, ctx.answers)
        return accept_upload(
            event.upload, ctx.blobs, document, personal=personal, owner=ctx.answers.get("nik")
        )

    return parse


def show_document(value: Any) -> str:
    """Show an uploaded document as received (never its contents)."""
    return _("diterima") if value else _("tidak ada")


def _phash(record: dict[str, Any]) -> int | None:
    value = record.get("phash")
    return None if value is None else int(value, 16)


def document_step(requirement: Requirement) -> Step:
    """Declare the photo step of one checklist document."""
    return Step(
        key=f"doc_{requirement.key}",
        prompt=document_prompt(requirement),
        expects=Expect.PHOTO,
        parse=read_document(requirement),
        when=requirement.applies,
        skippable=requirement.optional,
        label=requirement.label,
        show=show_document,
        help=N_(
            "Foto dokumen asli di tempat terang, tanpa lampu kilat, seluruh dokumen masuk "
            "bingkai dan tulisan terbaca. Kirim foto JPEG atau PNG (bukan PDF), maksimal 10 MB."
        ),
    )


# ---- summary and submission ----------------------------------------------------------------

FEE_LINE_LABELS = {
    "percepatan": N_("Layanan percepatan"),
    "lost": N_("Denda paspor hilang"),
    "damaged": N_("Denda paspor rusak"),
}


def fee_lines(a: Answers, day: date) -> list[str]:
    """Render the fee breakdown from the fee table."""
    priced = fee_quote(a, day)
    kind = _("Paspor elektronik") if a["passport_kind"] == "elektronik" else _("Paspor biasa")
    lines = [_("Biaya ({schedule}):").format(schedule=priced.schedule)]
    for key, amount in priced.lines:
        if key == "passport":
            label = _("{kind} {years} tahun").format(kind=kind, years=validity_years(a))
        else:
            label = _(FEE_LINE_LABELS[key])
        lines.append(f"• {label}: {format_money(amount)}")
    lines.append(_("Total: {total}").format(total=format_money(priced.total)))
    return lines


def summary_prompt(ctx: Context) -> str:
    """Show every answer, the documents and the fee, and ask for confirmation."""
    a = ctx.answers
    lines = [_("Ringkasan pendaftaran. Periksa sekali lagi sebelum dikirim:"), ""]
    type_line = _("Paspor baru") if application_type(a) == "baru" else _("Penggantian")
    lines.append(_("Jenis permohonan: {value}").format(value=type_line))
    documents = []
    for step in FLOW.applicable(a):
        if not step.label or step.key not in a:
            continue
        if step.key.startswith("doc_"):
            if a[step.key]:
                documents.append(_(step.label))
            continue
        lines.append(f"{_(step.label)}: {step.display(a[step.key], ctx)}")
    if is_child(a):
        lines.append(_("Masa berlaku: 5 tahun (pemohon anak)"))
    lines.append(_("Dokumen diterima: {documents}").format(documents=", ".join(documents) or "-"))
    lines.append("")
    lines.extend(fee_lines(a, local_date(ctx.now)))
    lines.append("")
    lines.append(
        _('Jika semua sudah benar, pilih "Benar, kirim". Untuk memperbaiki, pilih "Ubah data".')
    )
    return "\n".join(lines)


def after_summary(ctx: Context, value: Any) -> Transition | None:
    """Submit, or open the list of answers to change."""
    if value == "edit":
        return Jump("edit_field")
    return submit(ctx)


DOCUMENT_STEPS = {f"doc_{requirement.key}": requirement for requirement in REQUIREMENTS}


def edit_label(step: Step, answers: Answers) -> str:
    """Name an answer in the "ubah data" list; a document photo names its document."""
    requirement = DOCUMENT_STEPS.get(step.key)
    if requirement is not None:
        return document_label(requirement, answers)
    return _(step.label or step.key)


def edit_options(ctx: Context) -> list[Option]:
    """Offer every answered, labelled step for editing, plus a way back to the summary."""
    options = [
        Option(step.key, edit_label(step, ctx.answers))
        for step in FLOW.applicable(ctx.answers)
        if step.label and step.key in ctx.answers
    ]
    options.append(Option("summary", N_("Kembali ke ringkasan")))
    return options


def after_edit_field(_ctx: Context, value: Any) -> Transition | None:
    """Open the chosen answer for editing; the engine returns to the summary afterwards."""
    return Jump(value, edit=value != "summary")


class FamilyLimit(Exception):
    """The account already has the most open applications it may have."""


def create_from_answers(ctx: Context) -> Application:
    """Create the application and its documents from the answers, in the caller's transaction.

    The one submission every door uses (the chat's summary and the agent's caller form): the
    per-account limit, the fee from the table, and one open application per NIK (raises
    `FamilyLimit` or `NikAlreadyOpen`). Documents not sent yet are simply not attached.
    """
    a = ctx.answers
    limit = ctx.settings.max_applicants_per_account
    if count_open_for_account(ctx.session, ctx.channel, ctx.user_ref) >= limit:
        raise FamilyLimit(limit)
    priced = fee_quote(a, local_date(ctx.now))
    application = Application(
        channel=ctx.channel,
        account_ref=ctx.user_ref,
        service=a["service"],
        application_type=application_type(a),
        replacement_reason=a.get("replace_reason") if had_passport(a) else None,
        passport_kind=a["passport_kind"],
        validity_years=validity_years(a),
        category=a["category"],
        nik=a["nik"],
        full_name=a["full_name"],
        birth_place=a["birth_place"],
        birth_date=date.fromisoformat(a["birth_date"]),
        sex=a["sex"],
        phone=a["phone"],
        email=a.get("email"),
        address=a["address"],
        travel_purpose=a["travel_purpose"],
        old_passport_number=a.get("old_passport_number"),
        name_changed=a.get("name_same") == "no",
        fee_amount=priced.total,
        fee_schedule=priced.schedule,
        answers={key: value for key, value in a.items() if not key.startswith("doc_")},
        registered_by=ctx.actor,
    )
    documents = [
        DocumentRecord(
            kind=requirement.key,
            sha256=a[f"doc_{requirement.key}"]["sha256"],
            content_type=a[f"doc_{requirement.key}"]["content_type"],
            size=a[f"doc_{requirement.key}"]["size"],
            phash=_phash(a[f"doc_{requirement.key}"]),
            personal=is_personal(requirement.key, a),
        )
        for requirement in required_documents(a)
        if a.get(f"doc_{requirement.key}")
    ]
    return create_application(ctx.session, application, documents)


def submit(ctx: Context) -> Transition | None:
    """Create the application, its documents and its registration number in this transaction."""
    a = ctx.answers
    limit = ctx.settings.max_applicants_per_account
    try:
        created = create_from_answers(ctx)
    except FamilyLimit:
        ctx.say(family_limit_message(limit))
        return Stay()
    except NikAlreadyOpen:
        del a["nik"]
        ctx.say(nik_taken_message())
        return Jump("nik", edit=True)
    except PhotoReused as reused:
        # Another registration submitted a near copy of this photo meanwhile (the check at
        # upload time saw only what was submitted before): ask for this document again.
        requirement = DOCUMENT_STEPS[f"doc_{reused.kind}"]
        del a[f"doc_{reused.kind}"]
        ctx.say(photo_reused_message(document_label(requirement, a)))
        return Jump(f"doc_{reused.kind}", edit=True)
    ctx.say(
        "\n".join(
            [
                _("Pendaftaran berhasil dikirim."),
                _("Nomor pendaftaran: {number}").format(number=created.reg_number),
                _("Nama: {name}").format(name=created.full_name),
                _("Total biaya: {total}").format(total=format_money(created.fee_amount)),
                "",
                _(
                    "Simpan nomor ini. Sekarang pilih kantor imigrasi dan jadwal; setelah itu "
                    "Anda menerima kode billing. Bisa juga nanti dengan /jadwal."
                ),
                _("Satu akun dapat mendaftarkan hingga {limit} orang (satu keluarga).").format(
                    limit=limit
                ),
            ]
        )
    )
    return booking_after_registration(created)


def nik_taken_message() -> str:
    """Say that the NIK was registered meanwhile in another open application."""
    return _(
        "NIK ini baru saja didaftarkan dalam permohonan lain yang masih aktif. Periksa NIK pemohon."
    )


def family_limit_message(limit: int) -> str:
    """Explain the per-account limit."""
    return _(
        "Akun ini sudah punya {limit} permohonan aktif. Satu akun hanya dapat mendaftarkan "
        "hingga {limit} orang (satu keluarga). Pendaftaran berikutnya bisa dilakukan setelah "
        "salah satu permohonan selesai atau dibatalkan."
    ).format(limit=limit)


def may_start(ctx: Context) -> bool:
    """Refuse a new registration when the account has reached the family limit."""
    limit = ctx.settings.max_applicants_per_account
    if count_open_for_account(ctx.session, ctx.channel, ctx.user_ref) >= limit:
        ctx.say(family_limit_message(limit))
        return False
    return True


def show_date(value: Any) -> str:
    """Show an ISO date the way people read it."""
    return format_date(date.fromisoformat(value), full=False)


YES_NO = (
    Option("yes", N_("Ya"), ("ya", "y", "yes", "iya", "pernah", "sudah")),
    Option("no", N_("Tidak"), ("tidak", "t", "no", "belum", "tdk", "gak", "nggak", "enggak")),
)

FLOW = Flow(
    NAME,
    steps=(
        Step(
            key="consent",
            prompt=consent_prompt,
            options=(
                Option("yes", N_("Saya setuju"), ("setuju", "ya", "yes", "agree", "ok")),
                Option("no", N_("Tidak setuju"), ("tidak", "no")),
            ),
            after=after_consent,
            help=N_(
                "Data hanya dipakai untuk permohonan paspor dan tidak dibagikan kepada pihak "
                "lain selain kantor imigrasi."
            ),
        ),
        Step(
            key="category",
            prompt=N_("Untuk siapa paspor ini?"),
            options=(
                Option("adult", N_("Dewasa (17 tahun ke atas)"), ("dewasa", "adult")),
                Option("child", N_("Anak (di bawah 17 tahun)"), ("anak", "child")),
            ),
            label=N_("Kategori pemohon"),
            help=N_(
                "Pemohon anak (di bawah 17 tahun) memerlukan dokumen kedua orang tua, dan kedua "
                "orang tua hadir di kantor imigrasi."
            ),
        ),
        Step(
            key="service",
            prompt=service_prompt,
            options=(
                Option("reguler", N_("Reguler"), ("biasa", "regular")),
                Option("percepatan", N_("Percepatan"), ("cepat", "express", "same day")),
            ),
            label=N_("Layanan"),
        ),
        Step(
            key="had_passport",
            prompt=N_(
                "Apakah pemohon pernah memiliki paspor RI, termasuk yang sudah habis berlaku, "
                "hilang, atau rusak?"
            ),
            options=(
                Option("yes", N_("Ya, pernah"), YES_NO[0].aliases),
                Option("no", N_("Belum pernah"), YES_NO[1].aliases),
            ),
            after=after_had_passport,
            label=N_("Pernah punya paspor"),
            help=N_(
                'Jawab "Ya" bila pemohon pernah punya paspor RI, walaupun sudah lama habis '
                "berlaku. Permohonan paspor baru padahal pernah punya paspor dapat ditolak."
            ),
        ),
        Step(
            key="replace_reason",
            prompt=N_("Mengapa paspor perlu diganti?"),
            options=(
                Option("expired", N_("Habis berlaku atau halaman penuh"), ("habis", "penuh")),
                Option("lost", N_("Hilang"), ("hilang", "lost")),
                Option("damaged", N_("Rusak"), ("rusak", "damaged")),
            ),
            when=had_passport,
            label=N_("Alasan penggantian"),
        ),
        Step(
            key="passport_kind",
            prompt=kind_prompt,
            options=(
                Option("biasa", N_("Paspor biasa"), ("biasa", "non-elektronik", "ordinary")),
                Option("elektronik", N_("Paspor elektronik"), ("elektronik", "e-paspor")),
            ),
            label=N_("Jenis paspor"),
        ),
        Step(
            key="validity",
            prompt=N_("Pilih masa berlaku paspor:"),
            options=(
                Option("5", N_("5 tahun"), ("5",)),
                Option("10", N_("10 tahun"), ("10",)),
            ),
            when=lambda a: not is_child(a),
            label=N_("Masa berlaku"),
        ),
        Step(
            key="full_name",
            prompt=N_(
                "Ketik nama lengkap pemohon, persis seperti di KTP (untuk anak: seperti di akta "
                "kelahiran)."
            ),
            parse=read_text(parse_full_name),
            label=N_("Nama lengkap"),
        ),
        Step(
            key="birth_place",
            prompt=N_("Ketik tempat lahir (kota atau kabupaten), contoh: Bandung."),
            parse=read_text(parse_place),
            label=N_("Tempat lahir"),
        ),
        Step(
            key="birth_date",
            prompt=N_("Ketik tanggal lahir, contoh: 17-08-1990 atau 17 Agustus 1990."),
            parse=read_birth_date,
            check=check_birth_date,
            label=N_("Tanggal lahir"),
            show=show_date,
        ),
        Step(
            key="sex",
            prompt=N_("Jenis kelamin pemohon?"),
            options=(
                Option("M", N_("Laki-laki"), ("l", "laki", "pria", "male", "m")),
                Option("F", N_("Perempuan"), ("p", "wanita", "female", "f")),
            ),
            label=N_("Jenis kelamin"),
        ),
        Step(
            key="nik",
            prompt=N_("Ketik NIK pemohon (16 digit, ada di KTP atau Kartu Keluarga)."),
            parse=read_nik,
            check=check_nik,
            label=N_("NIK"),
            help=N_(
                "NIK adalah Nomor Induk Kependudukan, 16 digit di KTP atau KK. Digit ke-7 sampai "
                "ke-12 memuat tanggal lahir (untuk perempuan tanggalnya ditambah 40)."
            ),
        ),
        Step(
            key="phone",
            prompt=phone_prompt,
            expects=Expect.CONTACT,
            parse=read_phone,
            label=N_("Nomor HP"),
        ),
        Step(
            key="email",
            prompt=N_('Ketik alamat email (tidak wajib; pilih "Lewati" bila tidak ada).'),
            parse=read_text(parse_email),
            skippable=True,
            label=N_("Email"),
            after=after_email,
        ),
        Step(
            key="email_check",
            prompt=email_check_prompt,
            options=email_check_options,
            when=lambda a: EMAIL_SUGGESTION in a,
            after=after_email_check,
            store=False,
        ),
        Step(
            key="address",
            prompt=N_(
                "Ketik alamat tempat tinggal sekarang: jalan dan nomor, RT/RW, kelurahan, "
                "kecamatan, kota."
            ),
            parse=read_text(parse_address),
            label=N_("Alamat"),
        ),
        Step(
            key="travel_purpose",
            prompt=N_("Apa tujuan perjalanan?"),
            options=(
                Option("wisata", N_("Wisata"), ("liburan", "tourism")),
                Option("umrah_haji", N_("Umrah/haji"), ("umrah", "haji", "umroh")),
                Option("bekerja", N_("Bekerja"), ("kerja", "work")),
                Option("belajar", N_("Belajar"), ("sekolah", "kuliah", "study")),
                Option("keluarga", N_("Kunjungan keluarga"), ("keluarga", "family")),
                Option("berobat", N_("Berobat"), ("medical",)),
                Option("lainnya", N_("Lainnya"), ("lain", "other")),
            ),
            label=N_("Tujuan perjalanan"),
        ),
        Step(
            key="old_passport_number",
            prompt=old_passport_prompt,
            parse=read_text(parse_passport_number),
            check=check_old_passport,
            when=had_passport,
            skippable=lambda a: a.get("replace_reason") == "lost",
            label=N_("Nomor paspor lama"),
        ),
        Step(
            key="name_same",
            prompt=N_("Apakah nama di paspor lama sama persis dengan nama di KTP sekarang?"),
            options=YES_NO,
            when=had_passport,
            label=N_("Nama sama dengan paspor lama"),
            help=N_("Bila nama berubah, perlu penetapan pengadilan tentang perubahan nama."),
        ),
        Step(
            key="supporting_kind",
            prompt=N_(
                "Untuk paspor pertama diperlukan satu dokumen pendukung. Dokumen mana yang akan "
                "Anda kirim?"
            ),
            options=tuple(Option(value, label) for value, label in SUPPORTING_LABELS.items()),
            when=supporting_applies,
            label=N_("Jenis dokumen pendukung"),
        ),
        *(document_step(requirement) for requirement in REQUIREMENTS),
        Step(
            key="summary",
            prompt=summary_prompt,
            options=(
                Option("submit", N_("Benar, kirim"), ("benar", "kirim", "ya", "submit")),
                Option("edit", N_("Ubah data"), ("ubah", "edit")),
            ),
            after=after_summary,
            store=False,
        ),
        Step(
            key="edit_field",
            prompt=N_("Bagian mana yang ingin diubah?"),
            options=edit_options,
            after=after_edit_field,
            store=False,
        ),
    ),
)
