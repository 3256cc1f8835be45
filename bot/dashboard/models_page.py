"""The "Published model" page: what the bot runs, since when, its opt-out evaluation, the history.

Read from the publication log that `python -m bot publish` appends to (bot/publish/records.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.dashboard.html import Safe, join, render
from bot.dashboard.pages import when
from bot.publish.gate import Evaluation
from bot.publish.records import INITIAL, ROLLBACK, Publication, current

KIND_TEXT = {
    "publish": "published",
    ROLLBACK: "rolled back to",
    INITIAL: "running before the first publish",
}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluation_text(evaluation: Evaluation | None) -> str:
    if evaluation is None:
        return "not evaluated"
    return (
        f"recall {_number(evaluation.recall)}, false-positive rate {_number(evaluation.false_positive_rate)}"
    )


def _facts(live: Publication) -> Safe:
    evaluation = live.evaluation
    return render(
        """<dl class="facts">
<dt>Model</dt><dd><code>{file}</code> (fingerprint <code>{model_id}</code>)</dd>
<dt>Since</dt><dd>{at} ({kind}, publication {id})</dd>
<dt>Opt-out evaluation</dt><dd>{evaluation}{details}</dd>
<dt>Forced</dt><dd>{forced}</dd>
<dt>Replicas</dt><dd>{replicas}</dd>
<dt>Git commit</dt><dd>{commit}</dd>
</dl>""",
        file=live.model_file.rsplit("/", 1)[-1],
        model_id=live.model_id,
        at=when(live.at),
        kind=KIND_TEXT.get(live.kind, live.kind),
        id=live.id,
        evaluation=evaluation_text(evaluation),
        details=""
        if evaluation is None
        else f" on {evaluation.holdout} ({evaluation.opt_out_examples} opt-outs, "
        f"{evaluation.non_opt_out_examples} other messages); “no” answers read as “yes”: "
        f"{evaluation.no_read_as_yes}",
        forced="yes: " + "; ".join(live.gate_reasons) if live.forced else "no",
        replicas=", ".join(r.url for r in live.replicas) or "none loaded by publish",
        commit="none (not a git checkout)"
        if live.git_commit is None
        else live.git_commit[:12] + (" with uncommitted changes" if live.git_dirty else ""),
    )


def models_page(history: Sequence[Publication]) -> Safe:
    live = current(list(history))
    if live is None:
        return render(
            "<h1>Published model</h1><p>Nothing has been published yet: the bot runs the model it was "
            "started with. <code>make publish</code> publishes (docs/conversation-design.md).</p>"
        )
    rows = join(
        render(
            "<tr><td>{id}</td><td>{at}</td><td>{kind}</td><td><code>{model_id}</code></td>"
            "<td>{recall}</td><td>{fpr}</td><td>{forced}</td></tr>",
            id=p.id,
            at=when(p.at),
            kind=KIND_TEXT.get(p.kind, p.kind),
            model_id=p.model_id[:12],
            recall=_number(p.evaluation.recall if p.evaluation else None),
            fpr=_number(p.evaluation.false_positive_rate if p.evaluation else None),
            forced="forced" if p.forced else "",
        )
        for p in reversed(history)
    )
    return render(
        """<h1>Published model</h1>
{facts}
<h2>History</h2>
<table><caption>Newest first. <code>python -m bot publish --rollback</code> goes back one.</caption>
<thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">What</th><th scope="col">Fingerprint</th>
<th scope="col">Recall</th><th scope="col">False-positive rate</th><th scope="col">Forced</th></tr></thead>
<tbody>{rows}</tbody></table>""",
        facts=_facts(live),
        rows=rows,
    )
