"""What logs may say about people: phone numbers masked to their last four digits.

Logs are read by more people than results are, and a phone number is personal data; the
results keep the numbers, the logs of every part (client, emulator, receiver) mask them
with :func:`mask_phone`.
"""

from __future__ import annotations

__all__ = ["mask_phone"]


def mask_phone(number: str) -> str:
    """Mask a phone number to its last four digits for logs (personal data).

    >>> mask_phone("+919876543210")
    '********3210'
    """
    digits = "".join(ch for ch in str(number) if ch.isdigit())
    return "*" * max(len(digits) - 4, 0) + digits[-4:]
