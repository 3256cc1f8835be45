"""Consent evidence as HTML: a cell of the dashboard's consent history, and the printable page of
`python -m bot customers evidence ID --html FILE`. Pure functions; every value escaped (`render`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.consent import KEPT_MARKETING
from bot.dashboard.html import Safe, join, render

# How a consent event reached us (bot.consent.SOURCES) and what it was, for people.
SOURCE_TEXT = {
    "text": "the customer wrote it (e.g. STOP), then confirmed",
    "button": "the customer tapped a reply button, then confirmed",
    "template": "the customer tapped “Stop promotions” on a marketing template, then confirmed",
    "meta_preferences": "the customer chose “Stop promotions” in WhatsApp itself",
    "meta_131050": "WhatsApp refused a marketing message: the customer had stopped marketing (error 131050)",
    "import": "imported from a customer list (CSV)",
    "link": "the customer confirmed on the opt-out link of a marketing template",
}
# How an opt-out request was made (only the customer's own messages open one), when it was not
# confirmed: the request of a "no" (`kept_marketing`), an open request.
REQUEST_SOURCE_TEXT = {
    "text": "the customer wrote it (e.g. STOP)",
    "button": "the customer tapped a reply button",
    "template": "the customer tapped “Stop promotions” on a marketing template",
}
EVENT_TEXT = {
    "opt_out": "Opted out of marketing",
    "opt_out_repeated": "Asked to opt out again (already opted out)",
    KEPT_MARKETING: "Asked to stop, then answered “no”: keeps marketing",
    "resume": "Resumed promotions in WhatsApp (the opt-out stays: it is permanent)",
    "signup": "Signed up for promotions in WhatsApp (an existing opt-out stays)",
}
LANGUAGE_TEXT = {
    "en": "English",
    "es": "Spanish",
    "pt": "Portuguese",
    "fr": "French",
    "de": "German",
    "id": "Indonesian",
    "hi": "Hinglish / Hindi",
}


def how_text(kind: str, source: str) -> str:
    """How a consent event reached us; a "no" was asked for, never confirmed."""
    texts = REQUEST_SOURCE_TEXT if kind == KEPT_MARKETING else SOURCE_TEXT
    return texts.get(source, source)


def language_name(code: str | None) -> str:
    if code is None:
        return "not detected yet"
    return f"{LANGUAGE_TEXT.get(code, code)} ({code})"


def _moment(at: str | None) -> str:
    return "–" if at is None else datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M:%S UTC")


def _quoted(words: str | None) -> Safe:
    if words is None:
        return render('<span class="muted">not recorded</span>')
    return render("<q>{w}</q>", w=words)


def evidence_summary(evidence: dict[str, Any]) -> Safe:
    """What the customer said, was asked and answered (`evidence_record`'s shape), as a <dl>."""
    request, question, answer = evidence["request"], evidence["question"], evidence["answer"]
    parts = [
        render("<dt>Language</dt><dd>{lang}</dd>", lang=language_name(evidence["language"])),
        render(
            "<dt>Request</dt><dd>{words} · {at}{message}</dd>",
            words=_quoted(request["words"]),
            at=_moment(request["at"]),
            message=render(" · message <code>{m}</code>", m=request["message_id"])
            if request["message_id"]
            else Safe(""),
        ),
    ]
    if question is not None:
        buttons = question["buttons"]
        parts.append(
            render(
                '<dt>Question shown</dt><dd>{text}{buttons}<br><span class="muted">response'
                " <code>{response}</code>, version <code>{version}</code>{message}</span></dd>",
                text=_quoted(question["text"]),
                buttons=render(" — buttons: {b}", b=join((render("[{t}]", t=t) for t in buttons), " "))
                if buttons
                else Safe(""),
                response=question["response"],
                version=question["version"],
                message=render(", message <code>{m}</code>", m=question["message_id"])
                if question["message_id"]
                else Safe(""),
            )
        )
    if answer is not None:
        parts.append(
            render(
                "<dt>Answer</dt><dd>{words} · {at}{message}</dd>",
                words=_quoted(answer["words"]),
                at=_moment(answer["at"]),
                message=render(" · message <code>{m}</code>", m=answer["message_id"])
                if answer["message_id"]
                else Safe(""),
            )
        )
    return render('<dl class="evidence">{parts}</dl>', parts=join(parts))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Consent record {key}</title>
<style>
body{{font:11pt/1.45 system-ui,sans-serif;color:#111;max-width:52rem;margin:2rem auto;padding:0 1rem}}
h1{{font-size:1.4rem}} h2{{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #999}}
table{{border-collapse:collapse;width:100%}} th,td{{border:1px solid #999;padding:.3rem .4rem;text-align:left;vertical-align:top}}
dl.evidence{{margin:0}} dl.evidence dt{{font-weight:600}} dl.evidence dd{{margin:0 0 .3rem 0}}
.muted{{color:#555}} code{{font-size:.9em;word-break:break-all}}
@media print{{body{{margin:0}} a{{color:inherit}}}}
</style>
</head>
<body>
<h1>Consent record of customer <code>{key}</code></h1>
<p>Generated {generated}. Marketing allowed now: <strong>{allowed}</strong>.{suppressed}
Language: {language}.</p>
<h2>Opt-out</h2>
{opt_out}
<h2>Identifiers</h2>
{identities}
<h2>Consent events, oldest first</h2>
{events}
<h2>Opt-out requests</h2>
{requests}
</body>
</html>
"""


def evidence_document(record: dict[str, Any]) -> str:
    """Pure: a printable, self-contained HTML page of `consent_record`'s output."""
    customer, tag = record["customer"], record["opt_out"]
    identities = join(
        render(
            "<tr><td>{kind}</td><td><code>{value}</code></td><td>{status}</td><td>{first}</td></tr>",
            kind=identity["kind"],
            value=identity["value"],
            status=identity["status"],
            first=_moment(identity["first_seen_at"]),
        )
        for identity in customer["identities"]
    )
    events = join(
        render(
            "<tr><td>{at}</td><td>{what}</td><td>{how}</td><td>{evidence}</td></tr>",
            at=_moment(event["occurred_at"]),
            what=EVENT_TEXT.get(event["kind"], event["kind"]),
            how=how_text(event["kind"], event["source"]),
            evidence=evidence_summary(event["evidence"]),
        )
        for event in record["consent_events"]
    )
    requests = join(
        render(
            "<tr><td>{at}</td><td>{source}</td><td>{resolution}</td><td>{resolved}</td></tr>",
            at=_moment(request["requested_at"]),
            source=request["source"],
            resolution=request["resolution"] or "open: no marketing until answered",
            resolved=_moment(request["resolved_at"]),
        )
        for request in record["opt_out_requests"]
    )

    def table(head: str, rows: Safe, empty: str) -> Safe:
        if not rows:
            return render("<p>{e}</p>", e=empty)
        return render(
            "<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>", head=Safe(head), rows=rows
        )

    return str(
        render(
            _PAGE,
            key=customer["key"],
            generated=_moment(record["generated_at"]),
            allowed="yes" if record["marketing_allowed"] else "no",
            suppressed=Safe(" An identifier of this customer is on the suppression list.")
            if record["suppressed"]
            else Safe(""),
            language=language_name(customer["language"]),
            opt_out=render(
                "<p>OPT_OUT since {at}; how: {how}.</p>",
                at=_moment(tag["added_at"]),
                how=SOURCE_TEXT.get(tag["source"], tag["source"]),
            )
            if tag
            else render("<p>No opt-out.</p>"),
            identities=table(
                "<th>Kind</th><th>Value</th><th>Status</th><th>First seen</th>", identities, "No identifiers."
            ),
            events=table(
                "<th>When (confirmation)</th><th>What</th><th>How</th><th>Evidence</th>",
                events,
                "No consent events.",
            ),
            requests=table(
                "<th>Asked</th><th>How</th><th>Outcome</th><th>Answered</th>",
                requests,
                "No opt-out requests.",
            ),
        )
    )
