"""Command line: `python -m bot chat|migrate`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.channels.telegram import TelegramChannel
    from bot.delivery import Delivery
    from bot.service import Loket


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="Loket")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--user", default="local", help="chat identity (state persists per user)")
    chat.add_argument("--jsonl", action="store_true", help="one JSON object per bot message")
    chat.add_argument("--lang", choices=("id", "en"), default=None, help="channel language")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("i18n", help="extract messages and update the catalogs")
    commands.add_parser("seed", help="create the demo offices and extend every calendar")
    payment = commands.add_parser("payment", help="record a payment notice (idempotent)")
    payment.add_argument("--code", required=True, help="the 15-digit billing code")
    payment.add_argument("--amount", required=True, help="amount paid, in whole rupiah")
    payment.add_argument("--reference", required=True, help="the bank's payment reference")
    payment.add_argument("--paid-at", default=None, help="ISO time with zone (default: now)")
    commands.add_parser("sweep", help="expire unpaid holds and return their seats")
    commands.add_parser("stats", help="print delivery counts for operators (no personal data)")
    commands.add_parser(
        "retention", help="delete and anonymise personal data past its retention (counts only)"
    )
    poll = commands.add_parser("poll", help="run the Telegram bot by long polling")
    poll.add_argument("--rounds", type=int, default=None, help="stop after this many polls")
    commands.add_parser("serve", help="run the web app on PORT (registers the webhook)")
    apply = commands.add_parser("apply", help="apply accepted Telegram updates as they come")
    apply.add_argument("--seconds", type=float, default=None, help="stop after this long")
    apply.add_argument("--threads", type=int, default=4, help="chats applied side by side")
    staff = commands.add_parser("staff", help="manage staff accounts")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True)
    staff_add = staff_commands.add_parser("add", help="create a staff account")
    staff_add.add_argument("username")
    staff_add.add_argument("--name", default="", help="full name shown in the consoles")
    staff_add.add_argument("--role", required=True, choices=("agent", "office_admin", "superadmin"))
    staff_add.add_argument("--office", default=None, help="office code (office admins only)")
    staff_add.add_argument(
        "--password-env", default="LOKET_NEW_STAFF_PASSWORD",
        help="environment variable holding the password (else it is asked for)",
    )  # fmt: skip
    staff_passwd = staff_commands.add_parser(
        "passwd", help="set a new password (ends the account's sessions)"
    )
    staff_passwd.add_argument("username")
    staff_passwd.add_argument(
        "--password-env", default="LOKET_NEW_STAFF_PASSWORD",
        help="environment variable holding the password (else it is asked for)",
    )  # fmt: skip
    staff_deactivate = staff_commands.add_parser(
        "deactivate", help="close an account (ends its sessions at once)"
    )
    staff_deactivate.add_argument("username")
    announce = commands.add_parser(
        "announce", help="announce to an office's subscribers and show the delivery's progress"
    )
    announce.add_argument("--office", required=True, help="office code, e.g. bandung")
    announce.add_argument("--text", required=True, help="the announcement, 10 to 800 characters")
    announce.add_argument(
        "--watch-only", action="store_true",
        help="only show progress (the worker sends) even when Telegram is configured",
    )  # fmt: skip
    worker = commands.add_parser("worker", help="run background work in a loop")
    worker.add_argument("--interval", type=float, default=30.0, help="seconds between rounds")
    worker.add_argument("--rounds", type=int, default=None, help="stop after this many rounds")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    # The terminal chat is for people and scripts: keep logs to warnings there.
    level = logging.WARNING if args.command == "chat" else settings.log_level
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        return run_command(args, settings)
    except (OperationalError, InterfaceError) as error:
        # One line an operator can act on, not 120 lines of driver traceback (nor credentials).
        print(f"database not reachable: {database_reason(error, settings)}", file=sys.stderr)
        return 1


def database_reason(error: Exception, settings: Settings) -> str:
    """Say why the database did not answer, in one line, without the URL's password."""
    from sqlalchemy.engine import make_url

    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    reason = lines[0].strip()
    password = make_url(settings.database_url).password
    if password:
        reason = reason.replace(str(password), "***")
    return reason


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command."""
    if args.command == "i18n":
        from bot.catalogs import main as catalogs_main

        return catalogs_main()
    if args.command == "migrate":
        from storage.db import upgrade

        upgrade(settings.database_url)
        return 0

    from bot.channels.terminal import TerminalChat
    from bot.service import Loket

    if args.command == "staff":
        return run_staff(args, Loket(settings))
    if args.command in ("seed", "payment", "sweep", "worker", "stats", "announce", "retention"):
        return run_service_command(args, Loket(settings))
    if args.command == "poll":
        return run_poll(settings, args.rounds)
    if args.command == "serve":
        return run_serve(settings)
    if args.command == "apply":
        return run_apply(settings, args.seconds, args.threads)
    if args.command == "chat":
        loket = Loket(settings)
        loket.prepare_demo()
        try:
            TerminalChat(
                loket, args.user, jsonl=args.jsonl, language=args.lang, out=sys.stdout
            ).run(sys.stdin)
        finally:
            loket.close()
    return 0


def run_poll(settings: Settings, rounds: int | None) -> int:
    """Serve Telegram by long polling until stopped (or for `rounds` polls)."""
    from bot.channels.telegram import TelegramChannel
    from bot.runtime import Runtime

    if not settings.telegram_token:
        print("TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return 2
    runtime = Runtime.build(settings)
    runtime.loket.log_start()
    if settings.embedded:
        runtime.loket.prepare_demo()
    try:
        channel = runtime.channel("telegram")
        assert isinstance(channel, TelegramChannel)
        channel.set_commands()
        channel.poll(rounds=rounds)
    finally:
        runtime.close()
    return 0


def run_apply(settings: Settings, seconds: float | None, threads: int) -> int:
    """Apply webhook updates accepted by web processes that only accept (LOKET_APPLY_IN_WEB=0),
    every push channel's side by side."""
    import threading

    from bot.runtime import Runtime

    runtime = Runtime.build(settings)
    if not runtime.channels:
        print("no push channel is configured (TELEGRAM_BOT_TOKEN)", file=sys.stderr)
        runtime.close()
        return 2
    runtime.loket.log_start()
    counts = dict.fromkeys((channel.name for channel in runtime), 0)

    def apply(channel: Delivery) -> None:
        counts[channel.name] = channel.apply_forever(seconds, threads)

    try:
        workers = [threading.Thread(target=apply, args=(channel,), name=f"apply-{channel.name}")
                   for channel in runtime]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        print(json.dumps({"applied": sum(counts.values())}))
    finally:
        runtime.close()
    return 0


def run_serve(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run the whole product on HOST:PORT: web chat, consoles, API, webhook; on the embedded
    default also the background worker, Telegram polling when a token is set, and demo staff
    logins. One runtime (one Loket, one of each push channel) serves all of them, so
    in-process state (sold-out hints, rate counters) is one."""
    import threading

    from bot import worker
    from bot.channels.telegram import TelegramChannel
    from bot.runtime import Runtime
    from bot.web import create_app

    runtime = Runtime.build(settings, web=True, embedded=settings.embedded)
    loket = runtime.loket
    loket.log_start()
    app = create_app(settings, runtime=runtime)
    telegram = runtime.channel("telegram")
    webhook = bool(settings.telegram_webhook_secret)
    if telegram is not None and webhook and settings.public_url:
        assert isinstance(telegram, TelegramChannel)
        telegram.set_commands()
        telegram.set_webhook(settings.public_url, settings.telegram_webhook_secret or "")
    # Updates a previous process accepted but did not live to apply: take them up now.
    runtime.resume_waiting()
    if settings.embedded:
        loket.prepare_demo()
        show_demo_logins(demo_staff(loket), settings, out)
        threading.Thread(
            target=worker.run, args=(loket, 30.0, None, runtime.channels), name="worker",
            daemon=True,
        ).start()  # fmt: skip
        if telegram is not None and not webhook:
            # No webhook configured: take Telegram's updates by polling instead.
            threading.Thread(
                target=poll_forever, args=(telegram,), name="telegram-poll", daemon=True
            ).start()
    print(f"Loket: http://{settings.host}:{settings.port}/ (staff: /staff/login)",
          file=out, flush=True)  # fmt: skip
    app.run(host=settings.host, port=settings.port, threaded=True)
    return 0


def poll_forever(telegram: TelegramChannel) -> None:
    """Publish the command menus and serve Telegram by long polling (a `serve` thread)."""
    telegram.set_commands()
    telegram.poll()


def show_demo_logins(lines: list[str], settings: Settings, out: TextIO) -> None:
    """Hand demo passwords to the person at the terminal, never to a log.

    On a terminal they are printed; otherwise (a service manager turns standard output into a
    log) they go to a file only the owner can read, and only its path is printed.
    """
    import os

    if not lines:
        return
    if out.isatty():
        print("\n".join(lines), file=out, flush=True)
        return
    path = settings.data_dir / "demo-staff-logins.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was already there
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines) + "\n")
    print(f"Demo staff logins written to {path} (readable only by you).", file=out, flush=True)


def demo_staff(loket: Loket) -> list[str]:
    """On first start of the embedded default, create demo staff and say how to log in."""
    import secrets

    from sqlalchemy import select

    from storage.models import Staff
    from storage.staff import add_staff

    with loket.sessions() as session, session.begin():
        if session.execute(select(Staff.id).limit(1)).first() is not None:
            return []
        lines = ["Demo staff logins (shown once; add more with `python -m bot staff add`):"]
        for username, role, office in (
            ("demo.agent", "agent", None),
            ("demo.kantor", "office_admin", "jakarta-selatan"),
            ("demo.admin", "superadmin", None),
        ):
            password = secrets.token_urlsafe(9)
            add_staff(session, username, username, role, password, office)
            lines.append(f"  {role:<13} {username:<12} password: {password}")
    return lines


def run_staff(args: argparse.Namespace, loket: Loket) -> int:
    """Create an account, give it a new password, or close it; the last two end its sessions.

    A password comes from the environment or the terminal, never from the command line.
    """
    import getpass
    import os

    from storage.staff import StaffError, add_staff, deactivate, set_password

    command = args.staff_command
    password = ""
    if command in ("add", "passwd"):
        password = os.environ.get(args.password_env) or getpass.getpass("Password: ")
    try:
        if loket.settings.embedded:
            loket.prepare_demo()
        with loket.sessions() as session, session.begin():
            now = loket.now(session)
            if command == "add":
                staff = add_staff(
                    session, args.username, args.name, args.role, password, args.office
                )
                print(json.dumps({"staff": staff.username, "role": staff.role,
                                  "office": args.office}))  # fmt: skip
            elif command == "passwd":
                staff = set_password(session, args.username, password, now)
                print(json.dumps({"staff": staff.username, "password": "changed"}))
            else:
                staff = deactivate(session, args.username, now)
                print(json.dumps({"staff": staff.username, "active": False}))
    except StaffError as error:
        print(f"staff {command}: {error}", file=sys.stderr)
        return 2
    finally:
        loket.close()
    return 0


def run_service_command(args: argparse.Namespace, loket: Loket) -> int:
    """Run one of the operational commands against the configured database."""
    from bot import payments, worker
    from bot.seed import extend_calendars, seed_offices

    try:
        if args.command == "seed":
            with loket.sessions() as session, session.begin():
                offices = seed_offices(session)
                slots = extend_calendars(
                    session, loket.now(session), loket.settings.booking_horizon_days
                )
            print(json.dumps({"offices_created": offices, "slots_created": slots}))
        elif args.command == "payment":
            # The same reading as the endpoint's: a notice typed here is checked as one posted.
            notice = payments.read_notice(
                {
                    "reference": args.reference,
                    "billing_code": args.code,
                    "amount": payments.parse_amount(args.amount),
                    "paid_at": args.paid_at or datetime.now(UTC).isoformat(),
                }
            )
            result = payments.apply_notice(
                loket, reference=notice.reference, code=notice.code, amount=notice.amount,
                paid_at=notice.paid_at,
            )  # fmt: skip
            print(json.dumps(result.to_json()))
        elif args.command == "sweep":
            print(json.dumps({"expired": payments.sweep(loket)}))
        elif args.command == "retention":
            from bot.retention import run_retention

            print(json.dumps(run_retention(loket)))
        elif args.command == "stats":
            from storage.outbox import delivery_figures

            with loket.sessions() as session:
                print(json.dumps(delivery_figures(session)))
        elif args.command == "announce":
            from bot.announcing import announce_from_cli

            return announce_from_cli(loket, args.office, args.text, args.watch_only)
        elif args.command == "worker":
            worker.check_database(loket)  # down at start: one line and a non-zero exit
            loket.log_start()
            failed = worker.run(loket, args.interval, args.rounds)
            if failed and args.rounds is not None:
                print(f"worker: {failed} of {args.rounds} rounds failed", file=sys.stderr)
                return 1
    except payments.BadNotice as error:
        print(json.dumps({"error": str(error)}), file=sys.stderr)
        return 2
    except payments.ConflictingNotice:
        conflict = "reference already used by a different notice; nothing recorded"
        print(json.dumps({"error": conflict}), file=sys.stderr)
        return 3
    finally:
        loket.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
