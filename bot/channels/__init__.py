"""Channels translate their transport's events into engine events and back; nothing more."""
