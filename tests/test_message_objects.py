"""WhatsApp's message objects built from a row's columns (what v2 sends)."""

from __future__ import annotations

import pandas as pd
import pytest

from kwa_batch.message_objects import extra_info, media_kind, messaging_object, split_params

TO = "+919876543210"


def test_text_with_a_link_previews_it() -> None:
    out = messaging_object({"type": "text", "body": "See https://x.io"}, TO)
    assert out == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "919876543210",
        "type": "text",
        "text": {"body": "See https://x.io", "preview_url": True},
    }


def test_a_row_without_a_type_is_text_and_missing_values_are_left_out() -> None:
    out = messaging_object({"body": "Hi", "type": pd.NA, "caption": float("nan")}, TO)
    assert out["type"] == "text"
    assert out["text"] == {"body": "Hi", "preview_url": False}


@pytest.mark.parametrize(
    ("url", "kind"),
    [("https://x.io/a.png", "image"), ("https://x.io/v.MP4", "video"),
     ("https://x.io/s.ogg", "audio"), ("https://x.io/doc.pdf", "document"),
     ("https://x.io/noext", "document"), ("https://x.io/dir.jpg/file", "document")],
)  # fmt: skip
def test_media_kind_from_the_links_extension(url: str, kind: str) -> None:
    assert media_kind(url) == kind


def test_media_with_a_caption() -> None:
    out = messaging_object({"type": "media", "media_url": "https://x.io/a.jpg", "caption": "C"}, TO)
    assert (out["type"], out["image"]) == ("image", {"link": "https://x.io/a.jpg", "caption": "C"})


def test_a_media_template_with_body_params_and_a_url_button() -> None:
    out = messaging_object(
        {
            "type": "mediatemplate",
            "template_name": "new_collection",
            "lang_code": "en",
            "media_url": "https://x.io/c.jpg",
            "params": '"Tan, Wei Ling",Pune',
            "param_url": "A-1001",
        },
        TO,
    )
    template = out["template"]
    assert template["name"] == "new_collection"
    assert template["language"] == {"code": "en"}
    header, body, button = template["components"]
    image = {"type": "image", "image": {"link": "https://x.io/c.jpg"}}
    assert header == {"type": "header", "parameters": [image]}
    assert [p["text"] for p in body["parameters"]] == ["Tan, Wei Ling", "Pune"]
    assert button == {"type": "button", "sub_type": "url", "index": "0",
                      "parameters": [{"type": "text", "text": "A-1001"}]}  # fmt: skip


def test_a_text_header_parameter() -> None:
    out = messaging_object({"type": "template", "template_name": "t", "param_header": "H"}, TO)
    assert out["template"]["components"][0] == {
        "type": "header", "parameters": [{"type": "text", "text": "H"}]
    }  # fmt: skip


def test_an_authentication_template_puts_its_code_in_the_body_and_the_button() -> None:
    out = messaging_object(
        {
            "type": "authenticationtemplate",
            "template_name": "login_code",
            "verification_code": "123456",
            "lang_code": "en",
        },
        TO,
    )
    body, button = out["template"]["components"]
    assert body["parameters"] == [{"type": "text", "text": "123456"}]
    assert button["parameters"] == [{"type": "text", "text": "123456"}]


def test_params_split_as_csv_and_refs_as_extra_info() -> None:
    assert split_params(None) == []
    assert split_params('a,"b,c"') == ["a", "b,c"]
    assert extra_info({"ref": "R", "ref1": "", "ref2": pd.NA}) == {"ref": "R"}
