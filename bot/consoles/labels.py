"""How statuses and categories are named on staff pages, in the reader's language."""

from __future__ import annotations

from bot.i18n import _
from storage.models import ApplicationStatus, BillingStatus, BookingStatus, WalkInCategory


def status_label(status: str) -> str:
    """Name an application status as office staff say it."""
    labels: dict[str, str] = {
        ApplicationStatus.REGISTERED: _("terdaftar"),
        ApplicationStatus.HELD: _("menunggu pembayaran"),
        ApplicationStatus.CONFIRMED: _("sudah bayar"),
        ApplicationStatus.CHECKED_IN: _("hadir"),
        ApplicationStatus.VERIFIED: _("berkas diverifikasi"),
        ApplicationStatus.INTERVIEWED: _("foto dan wawancara selesai"),
        ApplicationStatus.PRINTED: _("paspor dicetak"),
        ApplicationStatus.READY: _("siap diambil"),
        ApplicationStatus.POSTED: _("dikirim lewat Pos"),
        ApplicationStatus.CANCELLED: _("dibatalkan"),
        ApplicationStatus.COMPLETED: _("selesai"),
    }
    return labels.get(status, status)


def category_label(category: str) -> str:
    """Name a walk-in priority category."""
    return {
        WalkInCategory.LANSIA: _("Lansia (60+)"),
        WalkInCategory.DISABILITAS: _("Disabilitas"),
        WalkInCategory.BALITA: _("Balita"),
        WalkInCategory.IBU_HAMIL: _("Ibu hamil"),
    }[WalkInCategory(category)]


def booking_label(status: str) -> str:
    """Name a booking status."""
    labels: dict[str, str] = {
        BookingStatus.HELD: _("ditahan, menunggu pembayaran"),
        BookingStatus.CONFIRMED: _("pasti (sudah bayar)"),
        BookingStatus.CHECKED_IN: _("hadir"),
        BookingStatus.EXPIRED: _("kedaluwarsa (tidak dibayar)"),
        BookingStatus.CANCELLED: _("dibatalkan"),
        BookingStatus.NO_SHOW: _("tidak datang"),
    }
    return labels.get(status, status)


def billing_label(status: str) -> str:
    """Name a billing code's status."""
    labels: dict[str, str] = {
        BillingStatus.UNPAID: _("belum dibayar"),
        BillingStatus.PAID: _("lunas"),
        BillingStatus.EXPIRED: _("kedaluwarsa"),
        BillingStatus.CANCELLED: _("dibatalkan"),
    }
    return labels.get(status, status)


def channel_label(channel: str) -> str:
    """Name the channel an application came through."""
    labels = {
        "telegram": "Telegram",
        "web": _("web chat"),
        "agent": _("layanan pelanggan"),
        "api": _("mitra (API)"),
        "terminal": _("terminal"),
    }
    return labels.get(channel, channel)
