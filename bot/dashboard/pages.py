"""The dashboard's pages, as pure functions from data to HTML (every value escaped by `render`).

Read-only for consent: no page has a form or a button that writes a tag or a consent event; the
only forms are the search (GET) and the login.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from bot.broadcast.deliveries import Broadcast
from bot.broadcast.report import Report
from bot.consent import OPT_OUT
from bot.dashboard.conversation import Line
from bot.dashboard.evidence import (
    EVENT_TEXT,
    REQUEST_SOURCE_TEXT,
    SOURCE_TEXT,
    evidence_summary,
    how_text,
    language_name,
)
from bot.dashboard.html import Safe, attributes, join, render
from bot.dashboard.queries import CustomerPage, CustomerRow, DeliveryRecord, OptOutTotals
from bot.dashboard.stats import PERIODS, Bucket, Period, bar_chart

NAV = (
    ("/customers", "Customers"),
    ("/opt-outs", "Opt-outs"),
    ("/broadcasts", "Broadcasts"),
    ("/models", "Published model"),
)


def when(at: datetime | str | None) -> Safe:
    if at is None:
        return render('<span class="muted">never</span>')
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return render(
        '<time datetime="{iso}">{text}</time>',
        iso=moment.isoformat(),
        text=moment.strftime("%Y-%m-%d %H:%M UTC"),
    )


def layout(title: str, body: Safe, current: str = "", simulator: bool = False) -> Safe:
    links = [*NAV, ("/simulator", "Simulator")] if simulator else list(NAV)
    nav = join(
        render(
            "<li><a{attrs}>{label}</a></li>",
            attrs=attributes(href=href, aria_current="page" if href == current else None),
            label=label,
        )
        for href, label in links
    )
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · WhatsApp opt-out bot</title>
<link rel="stylesheet" href="/static/dashboard.css">
<link rel="icon" href="data:,">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><p class="brand">WhatsApp opt-out bot</p>
<nav aria-label="Dashboard"><ul>{nav}</ul></nav>
<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>
</header>
<main id="main">
{body}
</main>
</body>
</html>
""",
        title=title,
        nav=nav,
        body=body,
    )


def tag_badge(name: str) -> Safe:
    if name == OPT_OUT:
        return render('<span class="tag tag-opt-out">{name}</span>', name=name)
    return render('<span class="tag">{name}</span>', name=name)


# What a customer with an open opt-out request is shown as, in the list and on the profile.
ASKED_TO_STOP = "asked to stop, not confirmed"


def request_badge() -> Safe:
    return render('<span class="tag tag-pending">{label}</span>', label=ASKED_TO_STOP)


def customer_link(key: str) -> str:
    """A profile's address: the customer key, which no number change or merge makes stale
    (the route also takes a phone number, BSUID or parent BSUID)."""
    return f"/customers/{quote(key, safe='')}"


def whatsapp_id(phone: str | None, bsuid: str | None, key: str) -> str:
    """How a customer is shown: their number when WhatsApp shared one, else their BSUID, else
    (no active identifier left) their key."""
    if phone:
        return f"+{phone}"
    return bsuid or key


def _whatsapp_cell(row: CustomerRow) -> Safe:
    shown = render("{id}", id=whatsapp_id(row.phone, row.bsuid, row.key))
    if row.username:
        return render('{shown}<br><span class="muted">@{username}</span>', shown=shown, username=row.username)
    return shown


def customers_page(page: CustomerPage, search: str, tag: str, tags: Sequence[str]) -> Safe:
    options = join(
        render(
            "<option{attrs}>{label}</option>", attrs=attributes(value=name, selected=name == tag), label=name
        )
        for name in tags
    )
    rows = join(
        render(
            '<tr><td><a href="{href}">{name}</a></td><td>{whatsapp}</td><td>{tags}</td><td>{seen}</td></tr>',
            href=customer_link(row.key),
            name=row.name or "(no name)",
            whatsapp=_whatsapp_cell(row),
            tags=join(
                [
                    *(tag_badge(t) for t in row.tags),
                    # An OPT_OUT tag says more; the request is then only history.
                    *([request_badge()] if row.opt_out_requested and OPT_OUT not in row.tags else []),
                ],
                " ",
            )
            if row.tags or row.opt_out_requested
            else render('<span class="muted">none</span>'),
            seen=when(row.last_seen_at),
        )
        for row in page.rows
    )
    table = (
        render(
            '<table><caption>Customers, most recent message first</caption><thead><tr><th scope="col">Name</th>'
            '<th scope="col">WhatsApp number or BSUID</th><th scope="col">Tags</th><th scope="col">Last message</th>'
            "</tr></thead><tbody>{rows}</tbody></table>",
            rows=rows,
        )
        if page.rows
        else render('<p class="empty">No customers match.</p>')
    )

    def page_link(number: int, label: str, rel: str) -> Safe:
        query = urlencode({k: v for k, v in (("q", search), ("tag", tag), ("page", number)) if v})
        return render(
            '<a href="/customers?{query}" rel="{rel}">{label}</a>', query=query, rel=rel, label=label
        )

    pager = []
    if page.page > 1:
        pager.append(page_link(page.page - 1, "← Previous page", "prev"))
    if page.has_next:
        pager.append(page_link(page.page + 1, "Next page →", "next"))
    return render(
        """<h1>Customers</h1>
<form method="get" action="/customers" role="search" class="filters">
<div><label for="q">Name, username, number or BSUID</label><input type="search" id="q" name="q" value="{search}"></div>
<div><label for="tag">Tag</label><select id="tag" name="tag"><option value="">Any tag</option>{options}</select></div>
<button type="submit">Search</button>
</form>
<p role="status">{total} customer{s} found.</p>
{table}
<nav aria-label="Pages" class="pager">{pager}</nav>""",
        search=search,
        options=options,
        total=page.total,
        s="" if page.total == 1 else "s",
        table=table,
        pager=join(pager, " "),
    )


def _opt_out_banner(profile: dict[str, Any]) -> Safe:
    tag = next((t for t in profile["tags"] if t["name"] == OPT_OUT), None)
    request = profile["opt_out_request"]
    if tag is None and request is not None:
        return render(
            '<div class="banner warning" id="opt-out-request"><p><strong>Asked to stop, not confirmed</strong>:'
            " no marketing messages until the customer answers. Asked {at}; how: {how}.</p>"
            "<p>The bot asked them to confirm. A “yes” opts them out for good, a “no” allows"
            " marketing again; until then the request stays open, however long that takes.</p></div>",
            at=when(request["requested_at"]),
            how=REQUEST_SOURCE_TEXT.get(request["source"], request["source"]),
        )
    if tag is None:
        return render(
            '<div class="banner allowed"><p><strong>Marketing allowed</strong>: this customer has no OPT_OUT tag.</p></div>'
        )
    return render(
        '<div class="banner opted-out" id="opt-out"><p><strong>OPT_OUT</strong>: no marketing messages. '
        "Added {at}; how: {how}.</p>"
        "<p>An opt-out is permanent: it cannot be removed, here or anywhere else.</p></div>",
        at=when(tag["added_at"]),
        how=SOURCE_TEXT.get(tag["source"], tag["source"]),
    )


def _conversation_section(lines: list[Line] | None, records: list[DeliveryRecord]) -> Safe:
    if lines is not None:
        if not lines:
            return render('<p class="empty">No messages in Rasa\'s conversation store.</p>')
        items = join(
            render(
                '<li class="line {speaker}"><p class="who">{who} · {at}</p><p class="said">{text}</p>{detail}</li>',
                speaker=line.speaker,
                who="Customer" if line.speaker == "customer" else "Bot",
                at=when(line.at),
                text=line.text or "(no text)",
                detail=render('<p class="muted">{d}</p>', d=line.detail) if line.detail else Safe(""),
            )
            for line in lines
        )
        return render(
            '<p class="muted">From Rasa\'s conversation store.</p><ol class="conversation">{items}</ol>',
            items=items,
        )
    note = render(
        '<p class="banner warning">The Rasa server could not be reached, so the words are not shown. '
        "Below: the message records the webhooks left in the database.</p>"
    )
    if not records:
        return render('{note}<p class="empty">No message records.</p>', note=note)
    rows = join(
        render(
            "<tr><td>{at}</td><td>{direction}</td><td>{status}</td><td><code>{wamid}</code></td></tr>",
            at=when(r.at),
            direction="from the customer" if r.direction == "in" else "to the customer",
            status=r.status + (f" (error {r.error_code})" if r.error_code else ""),
            wamid=r.wamid,
        )
        for r in records
    )
    return render(
        '{note}<table><caption>Message records</caption><thead><tr><th scope="col">When</th><th scope="col">Direction</th>'
        '<th scope="col">Status</th><th scope="col">Message id</th></tr></thead><tbody>{rows}</tbody></table>',
        note=note,
        rows=rows,
    )


# How we learnt that an identifier is the customer's (bot.store.identities.EVIDENCE), for people.
EVIDENCE_TEXT = {
    "webhook_pair": "one WhatsApp message or notice carried it with another identifier",
    "status_pair": "a delivery status from WhatsApp carried it with another identifier",
    "system_rotation": "WhatsApp said the customer changed number or ID",
    "contact_request": "the customer shared their number with WhatsApp's request button",
    "first_contact": "the customer wrote from it",
    "import": "imported from a customer list (CSV)",
    "migrated": "the customer's number before identities were recorded",
}
KIND_TEXT = {"phone": "Phone number", "bsuid": "BSUID", "parent_bsuid": "Parent BSUID"}


def _active_bsuid(profile: dict[str, Any]) -> str | None:
    return next(
        (
            i["value"]
            for kind in ("bsuid", "parent_bsuid")
            for i in profile["identities"]
            if i["kind"] == kind and i["status"] == "active"
        ),
        None,
    )


def _identities_section(profile: dict[str, Any]) -> Safe:
    if not profile["identities"]:
        return render('<p class="empty">No WhatsApp identifier: the customer cannot be messaged.</p>')
    rows = join(
        render(
            "<tr><td>{kind}</td><td><code>{value}</code></td><td>{status}</td><td>{evidence}</td>"
            "<td>{first}</td><td>{last}</td></tr>",
            kind=KIND_TEXT.get(identity["kind"], identity["kind"]),
            value=f"+{identity['value']}" if identity["kind"] == "phone" else identity["value"],
            status="active"
            if identity["status"] == "active"
            else render("former (since {at})", at=when(identity["superseded_at"])),
            evidence=EVIDENCE_TEXT.get(identity["evidence"], identity["evidence"]),
            first=when(identity["first_seen_at"]),
            last=when(identity["last_seen_at"]),
        )
        for identity in profile["identities"]
    )
    return render(
        "<table><caption>Identifiers WhatsApp uses for this customer, active first. Former ones (a changed"
        " number, a rotated BSUID) are kept as evidence.</caption><thead><tr>"
        '<th scope="col">Kind</th><th scope="col">Value</th><th scope="col">Status</th>'
        '<th scope="col">How we know</th><th scope="col">First seen</th><th scope="col">Last seen</th>'
        "</tr></thead><tbody>{rows}</tbody></table>",
        rows=rows,
    )


def _merges_section(profile: dict[str, Any]) -> Safe:
    if not profile["merged"]:
        return Safe("")
    items = join(
        render(
            "<li>{at}: customer <code>{source}</code> merged into <code>{target}</code>: {how}</li>",
            at=when(merge["merged_at"]),
            source=merge["from_key"],
            target=merge["into_key"],
            how=EVIDENCE_TEXT.get(merge["evidence"], merge["evidence"]),
        )
        for merge in profile["merged"]
    )
    return render(
        '<h2 id="merges">Merges</h2><p>WhatsApp showed these customers are one person; their tags and'
        " consent history are shown here together.</p><ul>{items}</ul>",
        items=items,
    )


def profile_page(profile: dict[str, Any], lines: list[Line] | None, records: list[DeliveryRecord]) -> Safe:
    tags = join(
        render(
            "<tr{cls}><td>{badge}</td><td>{at}</td><td>{how}</td><td><code>{message}</code></td></tr>",
            cls=attributes(class_="opt-out-row" if tag["name"] == OPT_OUT else None),
            badge=tag_badge(tag["name"]),
            at=when(tag["added_at"]),
            how=SOURCE_TEXT.get(tag["source"], tag["source"]),
            message=tag["message_id"] or "–",
        )
        for tag in profile["tags"]
    )
    history = join(
        render(
            "<tr><td>{at}</td><td>{what}</td><td>{how}</td><td>{evidence}</td><td>{detail}</td>"
            "<td><code>{message}</code></td></tr>",
            at=when(event["occurred_at"]),
            what=EVENT_TEXT.get(event["kind"], event["kind"]),
            how=how_text(event["kind"], event["source"]),
            evidence=evidence_summary(event["evidence"]),
            detail=event["detail"] or "",
            message=event["message_id"] or "–",
        )
        for event in profile["consent_history"]
    )
    return render(
        """<p><a href="/customers">← All customers</a></p>
<h1>{name} <span class="muted">{wa_id}</span></h1>
<p>{username}Customer key <code>{key}</code>. First message {first}; last message {last}.
Language: <span id="language">{language}</span>.</p>
{banner}
<h2 id="identities">WhatsApp identities</h2>
{identities}
{merges}
<h2 id="tags">Tags</h2>
{tags}
<h2 id="history">Consent history</h2>
{history}
<h2 id="conversation">Conversation</h2>
{conversation}""",
        name=profile["name"] or "(no name)",
        wa_id=whatsapp_id(profile["wa_id"], _active_bsuid(profile), profile["key"]),
        username=render("Username @{u}. ", u=profile["username"]) if profile["username"] else Safe(""),
        key=profile["key"],
        language=language_name(profile["language"]),
        identities=_identities_section(profile),
        merges=_merges_section(profile),
        first=when(profile["first_seen_at"]),
        last=when(profile["last_seen_at"]),
        banner=_opt_out_banner(profile),
        tags=render(
            '<table><caption>Tags, oldest first</caption><thead><tr><th scope="col">Tag</th><th scope="col">Added</th>'
            '<th scope="col">How</th><th scope="col">Message id</th></tr></thead><tbody>{rows}</tbody></table>',
            rows=tags,
        )
        if profile["tags"]
        else render('<p class="empty">No tags.</p>'),
        history=render(
            '<table><caption>Consent events, oldest first (append-only)</caption><thead><tr><th scope="col">When</th>'
            '<th scope="col">What</th><th scope="col">How</th><th scope="col">Evidence</th><th scope="col">Detail</th>'
            '<th scope="col">Message id</th>'
            "</tr></thead><tbody>{rows}</tbody></table>",
            rows=history,
        )
        if profile["consent_history"]
        else render('<p class="empty">No consent events.</p>'),
        conversation=_conversation_section(lines, records),
    )


def opt_outs_page(
    period: Period, bucket_list: Sequence[Bucket], counts: Sequence[int], totals: OptOutTotals
) -> Safe:
    choices = join(
        render(
            "<li><a{attrs}>{label}</a></li>",
            attrs=attributes(href=f"/opt-outs?period={p.key}", aria_current="true" if p == period else None),
            label=p.label,
        )
        for p in PERIODS
    )
    in_period = sum(counts)
    chart = bar_chart(
        [b.label for b in bucket_list],
        counts,
        title=f"Opt-outs, {period.label.lower()} (UTC)",
        description=f"{in_period} opt-outs in the period; the table below lists each {period.unit}.",
    )
    rows = join(
        render("<tr><td>{label}</td><td>{count}</td></tr>", label=b.label, count=count)
        for b, count in zip(bucket_list, counts, strict=True)
    )
    sources = join(
        render("<tr><td>{how}</td><td>{count}</td></tr>", how=SOURCE_TEXT.get(source, source), count=count)
        for source, count in sorted(totals.by_source.items(), key=lambda item: -item[1])
    )
    share = f"{100 * totals.opted_out / totals.customers:.1f}%" if totals.customers else "–"
    return render(
        """<h1>Opt-outs</h1>
<p class="figures"><span><strong>{opted_out}</strong> of {customers} customers opted out ({share})</span>
<span><strong>{in_period}</strong> in this period</span></p>
<nav aria-label="Period"><ul class="choices">{choices}</ul></nav>
<figure>{chart}<figcaption>When each OPT_OUT tag was added, per {unit} (UTC).</figcaption></figure>
<details><summary>The chart's numbers</summary>
<table><caption>Opt-outs per {unit}</caption><thead><tr><th scope="col">{unit_title}</th><th scope="col">Opt-outs</th></tr></thead>
<tbody>{rows}</tbody></table></details>
<h2>How customers opted out (all time)</h2>
{sources}""",
        opted_out=totals.opted_out,
        customers=totals.customers,
        share=share,
        in_period=in_period,
        choices=choices,
        chart=chart,
        unit=period.unit,
        unit_title=period.unit.capitalize(),
        rows=rows,
        sources=render(
            '<table><caption>Opt-outs by source</caption><thead><tr><th scope="col">How</th><th scope="col">Opt-outs</th></tr>'
            "</thead><tbody>{rows}</tbody></table>",
            rows=sources,
        )
        if totals.by_source
        else render('<p class="empty">No opt-outs yet.</p>'),
    )


def _report_cells(report: Report) -> Safe:
    return render(
        "<td>{sent}</td><td>{delivered}</td><td>{read}</td><td>{failed}</td><td>{skipped}</td><td>{pending}</td>",
        sent=report.sent,
        delivered=report.delivered,
        read=report.read,
        failed=report.failed,
        skipped=report.skipped_opted_out,
        pending=report.pending,
    )


_REPORT_HEADERS = (
    '<th scope="col">Sent</th><th scope="col">Delivered</th><th scope="col">Read</th><th scope="col">Failed</th>'
    '<th scope="col">Skipped (opted out)</th><th scope="col">Pending</th>'
)


def broadcasts_page(reports: Sequence[tuple[Broadcast, Report]]) -> Safe:
    if not reports:
        return render(
            '<h1>Broadcasts</h1><p class="empty">No broadcasts yet. Send one with '
            '<code>python -m bot broadcast --template promo_offer --language en_US --param "20% off shoes"</code>.</p>'
        )
    rows = join(
        render(
            '<tr><td><a href="/broadcasts/{href}">{id}</a></td><td>{template}</td><td>{created}</td><td>{audience}</td>{cells}</tr>',
            href=quote(broadcast.id, safe=""),
            id=broadcast.id,
            template=f"{broadcast.template} ({broadcast.language})",
            created=when(broadcast.created_at),
            audience=broadcast.audience_count,
            cells=_report_cells(report),
        )
        for broadcast, report in reports
    )
    return render(
        '<h1>Broadcasts</h1><table><caption>Newest first</caption><thead><tr><th scope="col">Broadcast</th>'
        '<th scope="col">Template</th><th scope="col">Created</th><th scope="col">Audience</th>'
        + _REPORT_HEADERS
        + "</tr></thead><tbody>{rows}</tbody></table>",
        rows=rows,
    )


def broadcast_page(broadcast: Broadcast, report: Report) -> Safe:
    codes = join(
        render("<li>{code}: {count}</li>", code="no code" if code is None else f"error {code}", count=count)
        for code, count in sorted(
            report.failed_by_code.items(), key=lambda item: (item[0] is None, item[0] or 0)
        )
    )
    return render(
        """<p><a href="/broadcasts">← All broadcasts</a></p>
<h1>Broadcast {id}</h1>
<dl class="facts">
<dt>Template</dt><dd>{template} ({language}), parameters: {params}</dd>
<dt>Created</dt><dd>{created}</dd>
<dt>Audience</dt><dd>{audience_count}: {audience}</dd>
<dt>Sent</dt><dd>{sent} (delivered {delivered}, read {read})</dd>
<dt>Failed</dt><dd>{failed} ({at_send} when sending, {after_send} after){codes}</dd>
<dt>Skipped: opted out</dt><dd>{skipped} ({at_selection} when the audience was selected, {skipped_at_send} at send time)</dd>
<dt>Interrupted</dt><dd>{interrupted} (claimed but no outcome recorded; never sent again)</dd>
<dt>Pending</dt><dd>{pending}</dd>
</dl>""",
        id=broadcast.id,
        template=broadcast.template,
        language=broadcast.language,
        params=", ".join(broadcast.params) or "none",
        created=when(broadcast.created_at),
        audience_count=broadcast.audience_count,
        audience=broadcast.audience,
        sent=report.sent,
        delivered=report.delivered,
        read=report.read,
        failed=report.failed,
        at_send=report.failed_at_send,
        after_send=report.failed_after_send,
        codes=render("<ul>{codes}</ul>", codes=codes) if report.failed_by_code else Safe(""),
        skipped=report.skipped_opted_out,
        at_selection=report.skipped_at_selection,
        skipped_at_send=report.skipped_at_send,
        interrupted=report.interrupted,
        pending=report.pending,
    )


def message_page(heading: str, text: str) -> Safe:
    return render("<h1>{heading}</h1><p>{text}</p>", heading=heading, text=text)


def login_page(next_path: str, error: str = "") -> Safe:
    """A page of its own (no navigation: nothing behind it is reachable yet)."""
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · WhatsApp opt-out bot</title>
<link rel="stylesheet" href="/static/dashboard.css">
<link rel="icon" href="data:,">
</head>
<body>
<main id="main" class="login">
<h1>Log in to the dashboard</h1>
<p>Use the bot's admin token: <code>RASA_AUTH_TOKEN</code>, or the contents of <code>var/rasa_auth_token</code>.</p>
{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Admin token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
""",
        next=next_path,
        error=render('<p class="banner warning" role="alert">{e}</p>', e=error) if error else Safe(""),
    )


@dataclass(frozen=True, slots=True)
class SimulatorCustomer:
    """What the simulator page starts with: a number, and the BSUID and username it uses when the
    "username customer, phone hidden" switch is on."""

    wa_id: str
    name: str
    hide_phone: bool
    user_id: str
    username: str


def simulator_page(business: str, customer: SimulatorCustomer) -> Safe:
    """The phone-shaped chat; simulator.js fills it and talks to the simulator API."""
    return render(
        r"""<h1 class="visually-hidden">WhatsApp simulator</h1>
<div class="simulator">
<section class="phone" aria-label="Chat with {business}">
<header class="wa-header">
<span class="avatar" aria-hidden="true">{initial}</span>
<div><h2>{business}</h2><p id="presence" role="status">connecting…</p></div>
</header>
<div id="chat" class="wa-chat" role="log" aria-live="polite" aria-label="Conversation"></div>
<form id="composer" class="wa-composer">
<label for="message" class="visually-hidden">Message</label>
<input id="message" name="message" autocomplete="off" placeholder="Message" maxlength="4096">
<button type="submit" class="send" aria-label="Send">➤</button>
</form>
</section>
<aside class="sim-tools" aria-labelledby="tools-heading">
<h2 id="tools-heading">Simulated customer</h2>
<p class="banner warning">Local simulator: webhooks are signed and sent to the bot on this machine; the bot's
answers go to the local Graph API stand-in only, never to a phone.</p>
<form id="customer">
<label for="wa_id">WhatsApp number (wa_id)</label>
<input id="wa_id" name="wa_id" inputmode="numeric" pattern="[1-9][0-9]{{7,14}}" value="{wa_id}" required{phone_off}>
<label for="name">Profile name</label>
<input id="name" name="name" value="{name}" maxlength="256">
<p><label><input type="checkbox" id="hide_phone" name="hide_phone"{checked}> Username customer, phone hidden</label></p>
<p class="muted">WhatsApp withholds the number of a customer with a username: webhooks carry only their
business-scoped user ID (BSUID) and username, and the bot answers to the BSUID.</p>
<fieldset id="username-customer"{fieldset_off}>
<legend>Username customer</legend>
<label for="user_id">BSUID (user_id)</label>
<input id="user_id" name="user_id" pattern="[A-Z]{{2}}[.][A-Za-z0-9]{{1,128}}" value="{user_id}" required>
<label for="username">Username</label>
<input id="username" name="username" pattern="@?[A-Za-z0-9._]{{3,35}}" value="{username}">
</fieldset>
<button type="button" id="new-customer">New customer</button>
</form>
<h3>Marketing</h3>
<p>Send the <code>promo_offer</code> template as a broadcast would (not sent if this customer opted out).</p>
<button type="button" id="promo">Send a promo template</button>
<h3>Dashboard</h3>
<p><a id="profile-link" href="{profile}">Open this customer's profile</a></p>
</aside>
</div>
<script src="/static/simulator.js"></script>""",
        business=business,
        initial=business[:1].upper(),
        wa_id=customer.wa_id,
        name=customer.name,
        phone_off=Safe(" disabled") if customer.hide_phone else Safe(""),
        checked=Safe(" checked") if customer.hide_phone else Safe(""),
        fieldset_off=Safe("") if customer.hide_phone else Safe(" disabled hidden"),
        user_id=customer.user_id,
        username=customer.username,
        profile=customer_link(customer.user_id if customer.hide_phone else customer.wa_id),
    )
