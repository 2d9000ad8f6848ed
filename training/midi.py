"""A tiny Standard MIDI File (format 0) writer: just what the data recipe needs.

Events are given in seconds; the file uses 480 ticks per quarter note at 120 bpm, i.e.
960 ticks per second, so timing is exact to about a millisecond.
"""

from __future__ import annotations

import struct
from pathlib import Path

TICKS_PER_QUARTER = 480
TICKS_PER_SECOND = 960  # 120 bpm: one quarter = 0.5 s
ALL_SOUND_OFF = 120
BANK_SELECT = 0


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


class MidiTrack:
    """Collects channel events at times in seconds and writes one format-0 file."""

    def __init__(self) -> None:
        self._events: list[tuple[int, int, bytes]] = []  # (tick, order, bytes)

    def _add(self, seconds: float, data: bytes, order: int) -> None:
        self._events.append((round(seconds * TICKS_PER_SECOND), order, data))

    def program(self, seconds: float, channel: int, program: int, bank: int = 0) -> None:
        self._add(seconds, bytes([0xB0 | channel, BANK_SELECT, bank & 0x7F]), 0)
        self._add(seconds, bytes([0xC0 | channel, program]), 1)

    def note(self, start: float, duration: float, channel: int, pitch: int, velocity: int) -> None:
        self._add(start, bytes([0x90 | channel, pitch, velocity]), 3)
        self._add(start + duration, bytes([0x80 | channel, pitch, 0]), 2)

    def sound_off(self, seconds: float, channel: int) -> None:
        """Cut every sounding voice (and its release tail) at once."""
        self._add(seconds, bytes([0xB0 | channel, ALL_SOUND_OFF, 0]), 2)

    def save(self, path: Path) -> None:
        body = bytearray()
        # Tempo 500000 us per quarter (120 bpm), matching TICKS_PER_SECOND.
        body += b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big")
        previous = 0
        for tick, _, data in sorted(self._events, key=lambda e: (e[0], e[1])):
            body += _variable_length(tick - previous) + data
            previous = tick
        body += b"\x00\xff\x2f\x00"
        header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
        Path(path).write_bytes(header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body))
