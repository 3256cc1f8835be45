"""Where a broadcast stands: each delivery's state joined, through its wamid, with the latest
status the webhooks reported for that message (`message_statuses`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from bot.broadcast.deliveries import Broadcast
from bot.broadcast.states import TO_DO, DeliveryState
from bot.schema import broadcast_deliveries, message_statuses

# Statuses that mean the message reached the phone (read implies delivered).
DELIVERED_STATUSES = frozenset({"delivered", "read"})


@dataclass(frozen=True, slots=True)
class ReportRow:
    """How many deliveries are in `state` with webhook `status` and this error code."""

    state: str
    status: str | None
    error_code: int | None
    count: int


@dataclass
class Report:
    sent: int = 0  # accepted by WhatsApp (whatever happened next)
    delivered: int = 0  # of those, delivered to the phone (read ones included)
    read: int = 0
    failed_at_send: int = 0  # refused when sending
    failed_after_send: int = 0  # accepted, then a `failed` status
    failed_by_code: Counter[int | None] = field(default_factory=Counter)
    skipped_at_selection: int = 0  # opted out when the audience was selected
    skipped_at_send: int = 0  # opted out between the selection and their turn
    interrupted: int = 0  # claimed, outcome never recorded: never sent again
    pending: int = 0

    @property
    def failed(self) -> int:
        return self.failed_at_send + self.failed_after_send

    @property
    def skipped_opted_out(self) -> int:
        return self.skipped_at_selection + self.skipped_at_send


def aggregate(rows: Iterable[ReportRow], skipped_at_selection: int) -> Report:
    """Pure: the report from grouped rows."""
    report = Report(skipped_at_selection=skipped_at_selection)
    for row in rows:
        if row.state == DeliveryState.SENT:
            report.sent += row.count
            if row.status in DELIVERED_STATUSES:
                report.delivered += row.count
            if row.status == "read":
                report.read += row.count
            if row.status == "failed":
                report.failed_after_send += row.count
                report.failed_by_code[row.error_code] += row.count
        elif row.state == DeliveryState.FAILED:
            report.failed_at_send += row.count
            report.failed_by_code[row.error_code] += row.count
        elif row.state == DeliveryState.SKIPPED_OPTED_OUT:
            report.skipped_at_send += row.count
        elif row.state == DeliveryState.SENDING:
            report.interrupted += row.count
        elif row.state in TO_DO:  # a claim nothing was sent for yet is still to do
            report.pending += row.count
    return report


def load_rows(conn: Connection, broadcast_id: str) -> list[ReportRow]:
    deliveries = broadcast_deliveries.c
    statuses = message_statuses.c
    # A delivery's own error (refused at send) or, once sent, the one its failed status carries.
    error_code = func.coalesce(deliveries.error_code, statuses.error_code)
    statement = (
        select(deliveries.state, statuses.status, error_code, func.count())
        .select_from(broadcast_deliveries.outerjoin(message_statuses, statuses.wamid == deliveries.wamid))
        .where(deliveries.broadcast_id == broadcast_id)
        .group_by(deliveries.state, statuses.status, error_code)
    )
    return [ReportRow(*row) for row in conn.execute(statement)]


def format_report(broadcast: Broadcast, report: Report) -> str:
    codes = ", ".join(
        f"{'no code' if code is None else code}: {n}"
        for code, n in sorted(report.failed_by_code.items(), key=lambda item: (item[0] is None, item[0] or 0))
    )
    lines = [
        f"broadcast {broadcast.id}: template {broadcast.template} ({broadcast.language}),"
        f" created {broadcast.created_at.isoformat()}",
        f"audience:     {broadcast.audience_count} ({broadcast.audience})",
        f"sent:         {report.sent}",
        f"delivered:    {report.delivered}",
        f"read:         {report.read}",
        f"failed:       {report.failed} ({report.failed_at_send} when sending,"
        f" {report.failed_after_send} after){f'; by error code: {codes}' if codes else ''}",
        f"skipped (opted out): {report.skipped_opted_out} ({report.skipped_at_selection} at selection,"
        f" {report.skipped_at_send} at send time)",
        f"interrupted:  {report.interrupted} (claimed but no outcome recorded; never sent again)",
        f"pending:      {report.pending}",
    ]
    return "\n".join(lines)
