"""Turn the measurements into rows, a Markdown table and the run's header."""

from __future__ import annotations

import hashlib
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

COLUMNS = ("mailcore", "django", "smtplib", "smtp-source")
HEADINGS = ("benchmark", "mailcore", "Django", "smtplib", "smtp-source",
            "mailcore/Django", "target", "met?")


@dataclass
class Row:
    """One line of the table. ``cells`` maps a column to its text; ``ratio``
    is the mailcore/Django comparison as text; ``met`` is None when no target
    applies or a figure is missing."""

    title: str
    cells: dict[str, str] = field(default_factory=dict)
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    section: str = ""
    # numbers for the chart: speed-up over Django (higher is better) and target
    speedup: float | None = None
    speedup_target: float | None = None
    # where the time goes: implementation -> (modules with their shares, hottest functions)
    profile: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    # a sentence for rows whose time cProfile can't see (a C program)
    profile_note: str = ""
    # rows of a section measured by its own script (the window, the inbox, the queue): shown
    # in a table of their own, whose "compared with" column holds the cells other than mailcore
    external: bool = False

    def compared(self) -> str:
        others = [f"{k}: {v}" for k, v in self.cells.items() if k not in OURS and v]
        return "; ".join(others + ([self.ratio] if self.ratio else []))

    def markdown(self) -> str:
        met = "—" if self.met is None else ("yes" if self.met else "**no**")
        cells = [self.cells.get(c, "") for c in COLUMNS]
        return "| " + " | ".join([self.title, *cells, self.ratio, self.target, met]) + " |"


def best(times: list[float]) -> float:
    return min(times)


def median(times: list[float]) -> float:
    return statistics.median(times)


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return ""
    return f"{rate:,.0f} msg/s" if rate >= 100 else f"{rate:,.1f} msg/s"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.2f} s"


def fmt_mb(kib: float | None) -> str:
    if kib is None:
        return ""
    return f"{kib / 1024:,.1f} MB"


def fmt_ratio(x: float | None, word: str = "") -> str:
    if x is None:
        return ""
    if x >= 0.995:
        # two decimals below 10×, so that 3.98× is not shown as "4.0×" next to a miss
        return (f"{x:,.2f}× {word}" if x < 10 else f"{x:,.1f}× {word}").rstrip()
    return f"{x:,.2f}×" + (" (slower)" if word == "faster" else f" {word}".rstrip())


def profile_lines(rows: list[Row]) -> list[str]:
    """One line per row that was profiled: where each implementation's time went (the
    modules with the most time of their own, then the hottest functions)."""
    lines = []
    for row in rows:
        parts = []
        for impl, (modules, hottest) in row.profile.items():
            parts.append(f"{impl}: " + ", ".join(modules) + " (hottest: " + ", ".join(hottest)
                         + ")")
        if row.profile_note:
            parts.append(row.profile_note)
        if parts:
            lines.append(f"- **{row.title.strip()}** — " + "; ".join(parts))
    return lines


OURS = ("mailcore", "mailgui", "mailcore queue")  # the cell an external row measures
EXTERNAL_HEADINGS = ("benchmark", "mailcore / mailgui", "compared with", "target", "met?")


def external_table(rows: list[Row]) -> str:
    """The rows of the sections measured by their own scripts, in a table with a free
    "compared with" column (a reference figure, the idle gap, the direct rate ...)."""
    lines = ["| " + " | ".join(EXTERNAL_HEADINGS) + " |", "|" + "---|" * len(EXTERNAL_HEADINGS)]
    section = None
    for row in rows:
        if not row.external:
            continue
        if row.section and row.section != section:
            section = row.section
            lines.append(f"| **{section}** |" + " |" * (len(EXTERNAL_HEADINGS) - 1))
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        ours = next((row.cells[k] for k in OURS if row.cells.get(k)), "")
        lines.append("| " + " | ".join([row.title, ours,
                                         row.compared(), row.target, met]) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADINGS) + " |", "|" + "---|" * len(HEADINGS)]
    section = None
    for row in rows:
        if row.external:
            continue
        if row.section and row.section != section:
            section = row.section
            lines.append(f"| **{section}** |" + " |" * (len(HEADINGS) - 1))
        lines.append(row.markdown())
    return "\n".join(lines) if len(lines) > 2 else ""


# -- the machine and the packages -----------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def uname() -> str:
    try:
        return subprocess.run(["uname", "-srm"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        u = platform.uname()
        return f"{u.system} {u.release} {u.machine}"


def source_state(root: Path) -> str:
    """Which mailcore/mailgui code was measured: the commit, whether the working tree
    differs from it there, and a hash of the .py files as they were read."""
    digest = hashlib.sha256()
    for sub in ("mailcore", "mailgui"):
        for path in sorted((root / sub).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    text = f"sources sha256 {digest.hexdigest()[:12]}"
    try:
        # read-only: --no-optional-locks keeps git from refreshing the index
        commit = subprocess.run(["git", "--no-optional-locks", "rev-parse", "--short", "HEAD"],
                                cwd=root, capture_output=True, text=True, check=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain",
                                  "--", "mailcore", "mailgui"], cwd=root, capture_output=True,
                                 text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return text
    state = "with uncommitted changes in " + ", ".join(sorted({
        line[3:].split("/", 1)[0] for line in changed.splitlines() if len(line) > 3})) \
        if changed.strip() else "clean"
    return f"git {commit} ({state}), {text}"


def cpu_times() -> list[int] | None:
    """The aggregate line of /proc/stat (user nice system idle iowait irq softirq steal)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def steal_share(before: list[int] | None) -> float | None:
    after = cpu_times()
    if before is None or after is None or len(after) < 8:
        return None
    delta = [a - b for a, b in zip(after, before)]
    total = sum(delta)
    return delta[7] / total if total > 0 else None


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("mailcore", "Django", "aiosmtpd", "PySide6-Essentials", "PySide6"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        postfix = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postfix"],
                                 capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        postfix = ""
    out["postfix (smtp-sink, smtp-source)"] = postfix or "not installed"
    return out
