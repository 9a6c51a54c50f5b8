"""Reports for people: evidence records rendered as Markdown and as one self-contained HTML page, JSON beside them.

An auditor reads these without the tool: the HTML has its CSS and its timeline picture (SVG) inline and fetches
nothing, so it still opens in six years. The report states what the records say and no more: the chain's integrity as
verified now, each run's timeline, RTO/RPO against targets, what was verified and how, who ran it with which identity
and MFA, the errors, the availability budget, and, per HIPAA 164.308(a)(7)(ii) paragraph, which runs are evidence for
it, saying plainly when none is; and the records lifecycle (45 CFR 164.310(d)(2)(i), 164.316(b)(2)).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from dr_runbooks.evidence.budget import AvailabilityBudget, availability_budget
from dr_runbooks.evidence.lifecycle import LifecycleSection, lifecycle_section
from dr_runbooks.evidence.readiness import ReadinessPeriod, readiness_periods
from dr_runbooks.evidence.record import DEFAULT_HIPAA, HIPAA_PARAGRAPHS, AwsCall, EvidenceRecord, HipaaParagraph
from dr_runbooks.evidence.timeline import Timeline, build_timeline

SANDBOX_NOTICE = (
    "Ran on the local sandbox (moto and a local PostgreSQL pair): its timings say nothing about AWS timings; "
    "it shows that the procedure works, not how fast it is on AWS."
)


@dataclass(frozen=True)
class RunView:
    record: EvidenceRecord
    timeline: Timeline


@dataclass(frozen=True)
class HipaaSection:
    paragraph: HipaaParagraph
    title: str
    runs: tuple[EvidenceRecord, ...]
    kinds_that_would_cover: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    environment: str
    generated_at: datetime
    runs: tuple[RunView, ...]
    chain_length: int
    chain_problems: tuple[str, ...]
    budget: AvailabilityBudget
    hipaa: tuple[HipaaSection, ...]
    lifecycle: LifecycleSection
    #: Hours of each period the hourly readiness evaluation found the estate ready (`evidence.readiness`).
    readiness: tuple[ReadinessPeriod, ...] = ()

    @property
    def sandbox(self) -> bool:
        return any(view.record.sandbox for view in self.runs)

    @property
    def name(self) -> str:
        """The files' base name: the run id for one run, the sequence range for several."""
        records = [view.record for view in self.runs]
        if len(records) == 1:
            return f"{self.environment}-{records[0].run_id}"
        return f"{self.environment}-records-{records[0].sequence}-{records[-1].sequence}"


def build_report(
    chain: Sequence[EvidenceRecord],
    selected: Sequence[EvidenceRecord],
    chain_problems: Sequence[str],
    availability_target: float,
    as_of: datetime,
) -> Report:
    """The report of `selected` runs; the budget counts the whole `chain` of the environment."""
    if not selected:
        raise ValueError("a report needs at least one evidence record")
    hipaa = tuple(
        HipaaSection(
            paragraph=paragraph,
            title=title,
            runs=tuple(record for record in selected if paragraph in record.hipaa),
            kinds_that_would_cover=tuple(kind for kind, covers in DEFAULT_HIPAA.items() if paragraph in covers),
        )
        for paragraph, title in HIPAA_PARAGRAPHS.items()
    )
    return Report(
        environment=selected[0].environment,
        generated_at=as_of,
        runs=tuple(RunView(record=record, timeline=build_timeline(record)) for record in selected),
        chain_length=len(chain),
        chain_problems=tuple(chain_problems),
        budget=availability_budget(chain, availability_target, as_of),
        hipaa=hipaa,
        lifecycle=lifecycle_section(chain),
        readiness=readiness_periods(chain, as_of),
    )


def _md_cell(value: object) -> str:
    """A value safe inside a Markdown table cell: pipes escaped, one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _call_summary(calls: Iterable[AwsCall]) -> list[str]:
    """Calls grouped by operation, region and error, first seen first: a step that read 50 charts is one line, x50."""
    counts = Counter(
        f"{call.service}:{call.operation}"
        + (f" ({call.region})" if call.region else "")
        + (f" failed: {call.error}" if call.error else "")
        for call in calls
    )
    return [line if count == 1 else f"{line} x{count}" for line, count in counts.items()]


def _templates(autoescape: bool) -> Environment:
    environment = Environment(
        loader=PackageLoader("dr_runbooks.evidence", "templates"),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["md"] = _md_cell
    environment.filters["duration"] = _duration
    environment.filters["call_summary"] = _call_summary
    environment.globals["SANDBOX_NOTICE"] = SANDBOX_NOTICE
    return environment


def render_markdown(report: Report) -> str:
    return _templates(autoescape=False).get_template("report.md.j2").render(report=report)


def render_html(report: Report) -> str:
    return _templates(autoescape=True).get_template("report.html.j2").render(report=report)


def render_json(report: Report) -> str:
    """The machine-readable copy: the records as stored, the chain check and the budget."""
    document = {
        "environment": report.environment,
        "generated_at": report.generated_at.isoformat(),
        "chain": {"length": report.chain_length, "intact": not report.chain_problems,
                  "problems": list(report.chain_problems)},
        "availability_budget": report.budget.model_dump(mode="json"),
        "readiness": [{**period.model_dump(mode="json"), "not_evaluated_hours": period.not_evaluated_hours}
                      for period in report.readiness],
        "records": [view.record.model_dump(mode="json") for view in report.runs],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    json: Path


def write_report(report: Report, out_dir: Path) -> ReportFiles:
    """`<name>.md`, `<name>.html` and `<name>.json` in `out_dir` (created); a report of the same runs is replaced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(*(out_dir / f"{report.name}.{suffix}" for suffix in ("md", "html", "json")))
    files.markdown.write_text(render_markdown(report), encoding="utf-8")
    files.html.write_text(render_html(report), encoding="utf-8")
    files.json.write_text(render_json(report), encoding="utf-8")
    return files
