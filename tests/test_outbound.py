"""Message bodies within WhatsApp's limits."""

from bot.whatsapp.outbound import (
    TEXT_LIMIT,
    Button,
    button_messages,
    custom_message,
    image_message,
    split_text,
    text_messages,
)

TO = "16505551234"


def test_short_text_is_one_message():
    [body] = text_messages(TO, "hello")
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"preview_url": False, "body": "hello"},
    }


def test_long_text_is_split_at_word_boundaries_within_the_limit():
    words = " ".join(f"word{i}" for i in range(2000))
    chunks = split_text(words)
    assert len(chunks) >= 3
    assert all(len(c) <= TEXT_LIMIT for c in chunks)
    assert " ".join(chunks) == words


def test_text_without_spaces_is_cut_hard():
    chunks = split_text("x" * (TEXT_LIMIT * 2 + 5))
    assert [len(c) for c in chunks] == [TEXT_LIMIT, TEXT_LIMIT, 5]


def test_up_to_three_buttons_are_reply_buttons():
    buttons = [Button("Yes, stop them", "/affirm"), Button("No, keep them", "/deny")]
    [body] = button_messages(TO, "Stop marketing?", buttons)
    interactive = body["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"]["text"] == "Stop marketing?"
    assert interactive["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "/affirm", "title": "Yes, stop them"}},
        {"type": "reply", "reply": {"id": "/deny", "title": "No, keep them"}},
    ]


def test_button_titles_are_truncated_to_20_and_kept_unique():
    buttons = [Button("A very long title that goes on", "/a"), Button("A very long title that goes on", "/b")]
    [body] = button_messages(TO, "Pick", buttons)
    titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
    assert all(len(t) <= 20 for t in titles)
    assert len(set(titles)) == 2


def test_four_to_ten_buttons_become_a_list():
    buttons = [Button(f"Option {i}", f'/choose{{{{"n": {i}}}}}') for i in range(7)]
    [body] = button_messages(TO, "Pick one", buttons)
    assert body["interactive"]["type"] == "list"
    rows = body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [b.payload for b in buttons]
    assert len(body["interactive"]["action"]["button"]) <= 20


def test_more_than_ten_buttons_become_numbered_text():
    buttons = [Button(f"Option {i}", f"/o{i}") for i in range(1, 12)]
    [body] = button_messages(TO, "Pick one", buttons)
    assert body["type"] == "text"
    assert "1. Option 1" in body["text"]["body"]
    assert "11. Option 11" in body["text"]["body"]


def test_a_payload_too_long_for_a_button_id_falls_back_to_numbered_text():
    [body] = button_messages(TO, "Pick", [Button("Yes", "/x" + "y" * 300)])
    assert body["type"] == "text"


def test_image_by_url():
    assert image_message(TO, "https://example.com/a.png")["image"] == {"link": "https://example.com/a.png"}


def test_custom_template_body_keeps_our_recipient():
    template = {"name": "promo", "language": {"code": "en_US"}}
    assert custom_message(TO, {"template": template}) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "template",
        "template": template,
    }
    full = custom_message(TO, {"type": "location", "to": "someone-else", "location": {"latitude": 1}})
    assert full["to"] == TO
    assert full["location"] == {"latitude": 1}
