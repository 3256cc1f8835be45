"""The opt-out page's markup: pure functions from texts to HTML, escaped by default.

Mobile-first and without JavaScript: one column, 48 px buttons, system fonts, a plain form that
posts back to the page's own URL. Colours meet WCAG AA: body text 15.8:1, the confirm button's
white on #0b57d0 6.4:1, the keep button's #1f2328 on white 15.8:1 and its #5f6368 border 6.0:1.
Every control has a visible label and focus ring.
"""

from __future__ import annotations

from bot.dashboard.html import Safe, render
from bot.opt_out_link.texts import PageTexts

_STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#fff;color:#1f2328;font:1.0625rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:32rem;margin:0 auto;padding:2rem 1.25rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
p{margin:0 0 1.5rem}
form{display:flex;flex-direction:column;gap:.75rem}
button{min-height:48px;width:100%;padding:.75rem 1rem;border-radius:.5rem;font:inherit;font-weight:600;cursor:pointer}
.stop{background:#0b57d0;color:#fff;border:2px solid #0b57d0}
.keep{background:#fff;color:#1f2328;border:2px solid #5f6368}
button:focus-visible{outline:3px solid #1f2328;outline-offset:3px}
"""

_DOCUMENT = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{content}
</main>
</body>
</html>
"""

_CONFIRM = """<h1>{question}</h1>
<p>{explain}</p>
<form method="post">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="choice" value="stop" class="stop">{confirm}</button>
<button type="submit" name="choice" value="keep" class="keep">{keep}</button>
</form>"""

_MESSAGE = """<h1>{title}</h1>
<p role="status">{text}</p>"""


def document(lang: str, title: str, content: Safe) -> str:
    return str(render(_DOCUMENT, lang=lang, title=title, style=Safe(_STYLE), content=content))


def confirm_page(texts: PageTexts, lang: str, business: str, csrf: str) -> str:
    question = texts.question.format(business=business)
    content = render(
        _CONFIRM,
        question=question,
        explain=texts.explain.format(business=business),
        csrf=csrf,
        confirm=texts.confirm,
        keep=texts.keep,
    )
    return document(lang, question, content)


def message_page(lang: str, title: str, text: str) -> str:
    return document(lang, title, render(_MESSAGE, title=title, text=text))
