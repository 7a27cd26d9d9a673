"""Command line: `python -m bot chat|migrate`."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.settings import Settings


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
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    # The terminal chat is for people and scripts: keep logs to warnings there.
    level = logging.WARNING if args.command == "chat" else settings.log_level
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.command == "i18n":
        from bot.catalogs import main as catalogs_main

        return catalogs_main()
    if args.command == "migrate":
        from storage.db import upgrade

        upgrade(settings.database_url)
        return 0

    from bot.channels.terminal import TerminalChat
    from bot.service import Loket

    if args.command == "chat":
        loket = Loket(settings)
        try:
            TerminalChat(
                loket, args.user, jsonl=args.jsonl, language=args.lang, out=sys.stdout
            ).run(sys.stdin)
        finally:
            loket.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
