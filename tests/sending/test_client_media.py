"""KaleyraClient: media messages, with a link or a file part, against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SENDER

from kwa_batch import ConfigurationError
from kwa_batch.emulator.server import Emulator

PRIYA = "+919876543210"


def test_a_media_file_part(emulator: Emulator, tmp_path: Path) -> None:
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 " + bytes(range(256)) * 100)
    with emulator.client(sender=SENDER) as client:
        result = client.send_message(
            PRIYA, type="media", media_file=invoice, extra={"caption": "Invoice A1005"}
        )
    ledger = emulator.messages
    row = ledger[ledger["message_id"] == result.message_ids[PRIYA]].iloc[0]
    assert (row["type"], row["caption"]) == ("media", "Invoice A1005")


def test_a_media_link(emulator: Emulator) -> None:
    with emulator.client(sender=SENDER) as client:
        result = client.send_message(
            PRIYA, type="media", extra={"media_url": "https://cdn.example.com/a.jpg"}
        )
    ledger = emulator.messages
    row = ledger[ledger["message_id"] == result.message_ids[PRIYA]].iloc[0]
    assert row["media_url"] == "https://cdn.example.com/a.jpg"


def test_a_missing_file_is_a_configuration_error(emulator: Emulator, tmp_path: Path) -> None:
    with emulator.client(sender=SENDER) as client, pytest.raises(ConfigurationError, match="nope"):
        client.send_message(PRIYA, type="media", media_file=tmp_path / "nope.pdf")
