"""`python -m bot chat` as a newcomer and a script use it: a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.channels.terminal import TerminalChat
from bot.core.messages import Inbound
from bot.service import Loket
from tests.transcript import photo_bytes

ROOT = Path(__file__).resolve().parent.parent


def run_chat(args: list[str], lines: list[str], database_url: str, data_dir: Path) -> str:
    """Run the terminal channel with these input lines and return what it printed."""
    env = {**os.environ, "DATABASE_URL": database_url, "LOKET_DATA_DIR": str(data_dir)}
    env.pop("LOKET_AUTO_MIGRATE", None)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def messy_registration(photo: Path) -> list[str]:
    """A registration typed the way people type: numbers, odd spacing, a few mistakes."""
    return [
        "halo", "1", "setuju", "1", "reguler", "belum", "2", "10",
        "budi   santoso", "bandung", "17 agt 1990", "L",
        "3273 0117 0890 001",  # 15 digits: refused, asked again
        "3273 0117 0890 0001", "0812-3456-7890", "lewati",
        "Jl. Merdeka No. 10, RT 01/RW 02, Braga, Kota Bandung", "wisata", "1",
        f"/foto {photo}", "/foto /no/such/file.jpg", f"/foto {photo}", f"/foto {photo}",
        "kirim",
    ]  # fmt: skip


def test_jsonl_mode_completes_a_registration(
    database_url: str, tmp_path: Path, clean_db: object
) -> None:
    photo = tmp_path / "ktp.jpg"
    photo.write_bytes(photo_bytes())
    lines = messy_registration(photo)
    out = run_chat(["--jsonl", "--user", "script"], lines, database_url, tmp_path / "data")
    records = [json.loads(line) for line in out.splitlines()]
    # One turn for opening the chat and one per input line.
    assert sum(1 for r in records if r.get("turn_end")) == len(lines) + 1
    messages = [r for r in records if "text" in r]
    assert all(set(m) == {"text", "choices", "expects"} for m in messages)
    assert messages[0]["text"].startswith("Selamat datang di Loket")
    assert any("NIK harus 16 digit" in m["text"] for m in messages)
    assert any(m["expects"] == "photo" for m in messages)
    assert any("File tidak dapat dibaca" in m["text"] for m in messages)
    assert any("Nomor pendaftaran: LK-" in m["text"] for m in messages), out
    assert "Di kota mana" in messages[-1]["text"]


def test_human_mode_numbers_choices_and_state_persists(
    database_url: str, tmp_path: Path, clean_db: object
) -> None:
    data = tmp_path / "data"
    out = run_chat(["--user", "ani"], ["1", "setuju", "2"], database_url, data)
    assert "  [1] Daftar paspor" in out
    assert "  [2] Anak (di bawah 17 tahun)" in out
    # A second run picks up where the first stopped.
    out = run_chat(["--user", "ani"], [], database_url, data)
    assert "Reguler" in out and "[2] Percepatan" in out
    out = run_chat(["--user", "ani", "--lang", "en"], ["bantuan"], database_url, data)
    assert "Regular" in out or "regular" in out


def test_english_terminal(database_url: str, tmp_path: Path, clean_db: object) -> None:
    out = run_chat(["--jsonl", "--lang", "en", "--user", "eng"], ["1"], database_url, tmp_path)
    texts = [json.loads(line).get("text", "") for line in out.splitlines()]
    assert texts[0].startswith("Welcome to Loket")
    assert any("personal data" in text for text in texts)
    labels = [json.loads(line).get("choices") for line in out.splitlines()]
    assert ["I agree", "I do not agree"] in labels


def test_a_failing_turn_gets_an_apology_and_loses_nothing(
    loket: Loket, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    terminal = TerminalChat(loket, "unlucky", jsonl=True, language=None, out=out)
    terminal.send(Inbound.say("/daftar"))
    real_handle = loket.converse

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("database went away")

    monkeypatch.setattr(loket, "converse", broken)
    terminal.send(Inbound.say("setuju"))
    monkeypatch.setattr(loket, "converse", real_handle)
    terminal.send(Inbound.say("setuju"))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    texts = [record["text"] for record in records if "text" in record]
    assert any("Maaf, terjadi gangguan" in text for text in texts)
    assert "Untuk siapa paspor ini?" in texts[-1]
