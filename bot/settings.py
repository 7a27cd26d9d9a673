"""Settings read from the environment, in one place.

Every variable is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; build with `Settings.from_env()` or directly in tests."""

    data_dir: Path
    database_url: str
    redis_url: str | None = None
    redis_prefix: str = "loket"
    payment_window: timedelta = timedelta(hours=2)
    booking_horizon_days: int = 62
    payment_secret: str | None = None
    api_key: str | None = None  # bearer key of the JSON chat API (gateways, call centres)
    document_key: str | None = None
    secret_key: str | None = None  # signs staff and web-chat cookies (derived if not set)
    secure_cookies: bool = True  # cookies only over HTTPS (0 for plain-HTTP development)
    trusted_proxies: int = 0  # proxies in front whose X-Forwarded-For/-Proto are believed
    telegram_token: str | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_base_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_secret: str | None = None
    public_url: str | None = None
    telegram_bot_username: str | None = None  # for group links: https://t.me/<name>?start=CODE
    telegram_rate: int = 30  # messages a second, all chats together (Bot API guidance)
    telegram_chat_rate: int = 1  # messages a second to one chat
    telegram_send_threads: int = 16  # chats one sender delivers to side by side (they mostly wait)
    # WhatsApp Cloud API (bot/channels/whatsapp.py): on when the token, the phone number id,
    # the app secret and the verify token are all set.
    whatsapp_token: str | None = None
    whatsapp_phone_id: str | None = None
    whatsapp_app_secret: str | None = None  # signs every webhook POST (X-Hub-Signature-256)
    whatsapp_verify_token: str | None = None  # the webhook's verification handshake
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_rate: int = 80  # messages a second from the business number (Meta's default)
    whatsapp_chat_rate: int = 1  # messages a second to one user
    # Templates for notices outside the 24-hour window: notice kind=template name, and the
    # chat's language=the template language's code at Meta.
    whatsapp_templates: str = (
        "payment=loket_pembayaran,status=loket_status,reminder=loket_pengingat,"
        "announcement=loket_pengumuman"
    )
    whatsapp_template_languages: str = "id=id,en=en"
    apply_in_web: bool = True  # False: web processes only accept; `python -m bot apply` applies
    host: str = "127.0.0.1"  # the address `serve` listens on (0.0.0.0: every interface)
    port: int = 8000
    idle_timeout: timedelta = timedelta(hours=24)
    max_applicants_per_account: int = 5
    max_seats_per_phone: int = 5  # people one verified phone number may hold seats for
    require_verified_phone: bool = True  # a seat is held only by a verified phone number
    # A generic HTTP SMS/WhatsApp gateway for one-time codes (bot/phone_sender.py); unset: the
    # codes are printed on the terminal (the embedded default).
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_gateway_timeout: float = 10.0  # seconds one gateway request may take
    # Token buckets of the web chat and the chat API (turns a second, and the burst): per
    # account, per verified phone number, and per source address (generous: carrier-grade NAT).
    rate_account_per_second: float = 1.0
    rate_account_burst: int = 10
    rate_phone_per_second: float = 2.0
    rate_phone_burst: int = 20
    rate_address_per_second: float = 50.0
    rate_address_burst: int = 200
    max_upload_bytes: int = 10 * 1024 * 1024
    # Memory the photo checks of one process may use at once (one check at most all of it).
    image_memory_budget: int = 80 * 1024 * 1024
    # Threads of one process that run the photo checks; every channel's thread hands its photo
    # to them and waits. The budget still decides how many decode at once. One by default:
    # each thread keeps what its checks freed for its next one (its malloc arena), so two
    # threads can keep twice one photo's memory, while the worst accepted photo takes the
    # whole default budget and would run alone anyway.
    image_check_threads: int = 1
    walk_in_daily_quota: int = 50  # priority walk-ins one office serves a day
    # Overload: new turns are answered "sedang ramai" when this many updates wait in the inbox
    # or a database query takes longer than this; the retry time said is at least this long.
    overload_backlog: int = 2000
    overload_db_ms: int = 1000
    overload_retry_minutes: int = 2
    apply_rate: int = 100  # updates applied a second, all appliers together (for the wait said)
    ready_timeout_ms: int = 2000  # /readyz: the database must answer within this
    metrics_key: str | None = None  # bearer key of /metrics (unset: loopback clients only)
    # Personal data (UU PDP): how long it is kept (storage/privacy.py, the daily retention job),
    # and how long a /datasaya download link works.
    retention_document_days: int = 30  # photos, after the appointment or the cancellation
    retention_application_days: int = 365  # then applications are anonymised
    retention_conversation_days: int = 90  # chats silent this long lose their conversation
    export_link_minutes: int = 10
    auto_migrate: bool = True
    log_level: str = "INFO"
    # Email (booking confirmation, H-1 reminder with an .ics file) where the applicant gave an
    # address; off while no SMTP host is set. The password only ever comes from the environment.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Loket <loket@localhost>"
    smtp_starttls: bool = True
    email_rate: float = 5.0  # emails a second from one sender

    @property
    def whatsapp(self) -> bool:
        """Tell whether the WhatsApp channel is configured."""
        return bool(
            self.whatsapp_token
            and self.whatsapp_phone_id
            and self.whatsapp_app_secret
            and self.whatsapp_verify_token
        )

    @property
    def embedded(self) -> bool:
        """Tell whether we run on the embedded default (SQLite, in-process state)."""
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the environment, falling back to the embedded default."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("LOKET_DATA_DIR", "data")).resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'loket.db'}"
        # Heroku-style URLs name the old driver; SQLAlchemy 2 wants psycopg 3 explicitly.
        for prefix in ("postgres://", "postgresql://"):
            if database_url.startswith(prefix):
                database_url = "postgresql+psycopg://" + database_url[len(prefix) :]
        auto_default = "1" if database_url.startswith("sqlite") else "0"
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("LOKET_REDIS_PREFIX", "loket"),
            payment_window=timedelta(minutes=float(env.get("LOKET_PAYMENT_WINDOW_MINUTES", "120"))),
            booking_horizon_days=int(env.get("LOKET_BOOKING_HORIZON_DAYS", "62")),
            payment_secret=env.get("PAYMENT_WEBHOOK_SECRET") or None,
            api_key=env.get("LOKET_API_KEY") or None,
            document_key=env.get("LOKET_DOCUMENT_KEY") or None,
            secret_key=env.get("LOKET_SECRET_KEY") or None,
            secure_cookies=env.get("LOKET_SECURE_COOKIES", "1") == "1",
            trusted_proxies=int(env.get("LOKET_TRUSTED_PROXIES", "0")),
            telegram_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            telegram_base_url=env.get("TELEGRAM_BASE_URL", "https://api.telegram.org/bot"),
            telegram_base_file_url=env.get(
                "TELEGRAM_BASE_FILE_URL", "https://api.telegram.org/file/bot"
            ),
            telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET") or None,
            public_url=env.get("PUBLIC_URL") or None,
            telegram_bot_username=(env.get("TELEGRAM_BOT_USERNAME") or "").lstrip("@") or None,
            telegram_rate=int(env.get("TELEGRAM_RATE_PER_SECOND", "30")),
            telegram_chat_rate=int(env.get("TELEGRAM_CHAT_RATE_PER_SECOND", "1")),
            telegram_send_threads=int(env.get("TELEGRAM_SEND_THREADS", "16")),
            whatsapp_token=env.get("WHATSAPP_TOKEN") or None,
            whatsapp_phone_id=env.get("WHATSAPP_PHONE_ID") or None,
            whatsapp_app_secret=env.get("WHATSAPP_APP_SECRET") or None,
            whatsapp_verify_token=env.get("WHATSAPP_VERIFY_TOKEN") or None,
            whatsapp_api_base=env.get("WHATSAPP_API_BASE") or "https://graph.facebook.com/v21.0",
            whatsapp_rate=int(env.get("WHATSAPP_RATE_PER_SECOND", "80")),
            whatsapp_chat_rate=int(env.get("WHATSAPP_CHAT_RATE_PER_SECOND", "1")),
            whatsapp_templates=env.get("WHATSAPP_TEMPLATES") or cls.whatsapp_templates,
            whatsapp_template_languages=(
                env.get("WHATSAPP_TEMPLATE_LANGUAGES") or cls.whatsapp_template_languages
            ),
            apply_in_web=env.get("LOKET_APPLY_IN_WEB", "1") == "1",
            host=env.get("HOST") or "127.0.0.1",
            port=int(env.get("PORT", "8000")),
            idle_timeout=timedelta(hours=float(env.get("LOKET_IDLE_TIMEOUT_HOURS", "24"))),
            max_applicants_per_account=int(env.get("LOKET_MAX_APPLICANTS_PER_ACCOUNT", "5")),
            max_seats_per_phone=int(env.get("LOKET_MAX_SEATS_PER_PHONE", "5")),
            require_verified_phone=env.get("LOKET_REQUIRE_VERIFIED_PHONE", "1") == "1",
            sms_gateway_url=env.get("LOKET_SMS_GATEWAY_URL") or None,
            sms_gateway_token=env.get("LOKET_SMS_GATEWAY_TOKEN") or None,
            sms_gateway_timeout=float(env.get("LOKET_SMS_GATEWAY_TIMEOUT_SECONDS", "10")),
            rate_account_per_second=float(env.get("LOKET_RATE_ACCOUNT_PER_SECOND", "1")),
            rate_account_burst=int(env.get("LOKET_RATE_ACCOUNT_BURST", "10")),
            rate_phone_per_second=float(env.get("LOKET_RATE_PHONE_PER_SECOND", "2")),
            rate_phone_burst=int(env.get("LOKET_RATE_PHONE_BURST", "20")),
            rate_address_per_second=float(env.get("LOKET_RATE_ADDRESS_PER_SECOND", "50")),
            rate_address_burst=int(env.get("LOKET_RATE_ADDRESS_BURST", "200")),
            max_upload_bytes=int(env.get("LOKET_MAX_UPLOAD_BYTES", str(10 * 1024 * 1024))),
            image_memory_budget=int(float(env.get("LOKET_IMAGE_MEMORY_MB", "80")) * 1024 * 1024),
            image_check_threads=max(1, int(env.get("LOKET_IMAGE_THREADS", "1"))),
            walk_in_daily_quota=int(env.get("LOKET_WALK_IN_DAILY_QUOTA", "50")),
            overload_backlog=int(env.get("LOKET_OVERLOAD_BACKLOG", "2000")),
            overload_db_ms=int(env.get("LOKET_OVERLOAD_DB_MS", "1000")),
            overload_retry_minutes=int(env.get("LOKET_OVERLOAD_RETRY_MINUTES", "2")),
            apply_rate=int(env.get("LOKET_APPLY_RATE", "100")),
            ready_timeout_ms=int(env.get("LOKET_READY_TIMEOUT_MS", "2000")),
            metrics_key=env.get("LOKET_METRICS_KEY") or None,
            retention_document_days=int(env.get("LOKET_RETENTION_DOCUMENT_DAYS", "30")),
            retention_application_days=int(env.get("LOKET_RETENTION_APPLICATION_DAYS", "365")),
            retention_conversation_days=int(env.get("LOKET_RETENTION_CONVERSATION_DAYS", "90")),
            export_link_minutes=int(env.get("LOKET_EXPORT_LINK_MINUTES", "10")),
            auto_migrate=env.get("LOKET_AUTO_MIGRATE", auto_default) == "1",
            log_level=env.get("LOG_LEVEL", "INFO"),
            smtp_host=env.get("LOKET_SMTP_HOST") or None,
            smtp_port=int(env.get("LOKET_SMTP_PORT", "587")),
            smtp_user=env.get("LOKET_SMTP_USER") or None,
            smtp_password=env.get("LOKET_SMTP_PASSWORD") or None,
            smtp_from=env.get("LOKET_SMTP_FROM") or "Loket <loket@localhost>",
            smtp_starttls=env.get("LOKET_SMTP_STARTTLS", "1") == "1",
            email_rate=float(env.get("LOKET_EMAIL_RATE_PER_SECOND", "5")),
        )
