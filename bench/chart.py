"""Draw the results chart with Qt's QPainter, offscreen (no display, no new
dependency): ``QT_QPA_PLATFORM=offscreen python bench/chart.py RAW.json OUT.png``.

Left: mailcore's speed-up over Django for every row that has one, on a log
scale, with the issue's target marked. Right: mass-sending throughput of
mailcore, Django, smtplib and smtp-source on each sink.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen  # noqa: E402

W, H = 1600, 900
GREEN = QColor("#2e7d32")
RED = QColor("#c62828")
GREY = QColor("#9e9e9e")
INK = QColor("#212121")
IMPL_COLORS = {
    "mailcore": QColor("#1565c0"),
    "django": QColor("#0c4b33"),
    "smtplib": QColor("#ef6c00"),
    "smtp-source": QColor("#6a1b9a"),
}


def short(title: str) -> str:
    title = title.replace("`", "")
    for a, b in (("compose ", ""), ("connection.send_messages(list)", "send_messages"),
                 ("send_mass_mail()", "send_mass_mail"), (" (pipelined)", ""),
                 ("text + HTML alternative + 20 KB attachment", "text+HTML+20 KB attachment"),
                 ("non-ASCII subject, display names, IDN domains", "non-ASCII headers")):
        title = title.replace(a, b)
    return title if len(title) <= 52 else title[:51] + "…"


def draw_speedups(p: QPainter, rect: QRectF, rows: list[dict]) -> None:
    rows = [r for r in rows if r.get("speedup")]
    p.setPen(INK)
    p.setFont(QFont("DejaVu Sans", 15, QFont.Weight.Bold))
    p.drawText(QRectF(rect.left(), rect.top(), rect.width(), 30), Qt.AlignmentFlag.AlignLeft,
               "mailcore speed-up over Django (log scale; | = target)")
    if not rows:
        return
    label_w = 400
    top = rect.top() + 50
    plot = QRectF(rect.left() + label_w, top, rect.width() - label_w - 70,
                  rect.bottom() - top - 40)
    lo, hi = 0.5, max(10.0, max(r["speedup"] for r in rows) * 1.3)

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return plot.left() + (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) \
            * plot.width()

    p.setFont(QFont("DejaVu Sans", 10))
    for tick in (0.5, 1, 2, 4, 5, 10, 20, 50, 100, 200, 500, 1000):
        if tick > hi:
            break
        p.setPen(QPen(GREY, 1, Qt.PenStyle.DotLine))
        p.drawLine(QPointF(x(tick), plot.top()), QPointF(x(tick), plot.bottom()))
        p.setPen(INK)
        p.drawText(QRectF(x(tick) - 30, plot.bottom() + 4, 60, 20),
                   Qt.AlignmentFlag.AlignHCenter, f"{tick:g}×")
    step = plot.height() / len(rows)
    bar_h = min(26.0, step * 0.7)
    p.setFont(QFont("DejaVu Sans", 10))
    for i, r in enumerate(rows):
        cy = plot.top() + step * (i + 0.5)
        target = r.get("speedup_target")
        # grey: no ratio target (a sink-bound row is judged against smtp-source instead)
        colour = GREY if target is None else GREEN if r["speedup"] >= target else RED
        p.setPen(INK)
        p.drawText(QRectF(rect.left(), cy - 12, label_w - 10, 24),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, short(r["title"]))
        p.fillRect(QRectF(x(lo), cy - bar_h / 2, x(r["speedup"]) - x(lo), bar_h),
                   colour)
        p.drawText(QRectF(x(r["speedup"]) + 4, cy - 12, 80, 24), Qt.AlignmentFlag.AlignVCenter,
                   f"{r['speedup']:.2f}×" if r["speedup"] < 10 else f"{r['speedup']:.1f}×")
        if target:
            p.setPen(QPen(INK, 3))
            tx = x(target)
            p.drawLine(QPointF(tx, cy - bar_h / 2 - 4), QPointF(tx, cy + bar_h / 2 + 4))
    p.setPen(QPen(INK, 1))
    p.drawLine(QPointF(x(1), plot.top()), QPointF(x(1), plot.bottom()))


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def draw_mass(p: QPainter, rect: QRectF, details: list[dict]) -> None:
    p.setPen(INK)
    p.setFont(QFont("DejaVu Sans", 15, QFont.Weight.Bold))
    p.drawText(QRectF(rect.left(), rect.top(), rect.width(), 30), Qt.AlignmentFlag.AlignLeft,
               "Mass sending, messages/s (best run)")
    groups: dict[str, dict[str, float]] = {}
    for d in details:
        bench = d["benchmark"]
        if "→" not in bench or "attachment" in bench or "runs" not in d:
            continue
        what, sink = (s.strip() for s in bench.split("→", 1))
        impl = d["impl"]
        if what.startswith("send_mass_mail"):
            key = f"send_mass_mail → {sink}"
        elif what.startswith("connection.send_messages"):
            key = f"send_messages → {sink}"
        else:
            key = f"send_mass_mail → {sink}"
        groups.setdefault(key, {})[impl] = d["n"] / d["best_s"]
    if not groups:
        return
    top = rect.top() + 80
    plot = QRectF(rect.left() + 60, top, rect.width() - 80, rect.bottom() - top - 70)
    top_value = max(v for g in groups.values() for v in g.values())
    step = nice_step(top_value / 5)
    vmax = max(step * math.ceil(top_value * 1.12 / step), step)
    p.setFont(QFont("DejaVu Sans", 10))
    tick = 0.0
    while tick <= vmax + 1e-9:
        y = plot.bottom() - tick / vmax * plot.height()
        p.setPen(QPen(GREY, 1, Qt.PenStyle.DotLine))
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(INK)
        p.drawText(QRectF(rect.left(), y - 10, 55, 20),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                   f"{tick:,.0f}")
        tick += step
    # legend
    lx = rect.left() + 60
    for impl, color in IMPL_COLORS.items():
        p.fillRect(QRectF(lx, rect.top() + 42, 14, 14), color)
        p.setPen(INK)
        p.drawText(QRectF(lx + 18, rect.top() + 38, 120, 22), Qt.AlignmentFlag.AlignVCenter,
                   impl if impl != "django" else "Django")
        lx += 130
    gw = plot.width() / len(groups)
    for gi, (name, values) in enumerate(groups.items()):
        impls = [i for i in IMPL_COLORS if i in values]
        bw = gw * 0.8 / max(1, len(impls))
        for ii, impl in enumerate(impls):
            v = values[impl]
            h = v / vmax * plot.height()
            bx = plot.left() + gi * gw + gw * 0.1 + ii * bw
            p.fillRect(QRectF(bx, plot.bottom() - h, bw - 3, h), IMPL_COLORS[impl])
            p.setPen(INK)
            p.setFont(QFont("DejaVu Sans", 8))
            p.drawText(QRectF(bx - 12, plot.bottom() - h - 18, bw + 18, 16),
                       Qt.AlignmentFlag.AlignHCenter, f"{v:,.0f}")
            p.setFont(QFont("DejaVu Sans", 10))
        p.drawText(QRectF(plot.left() + gi * gw, plot.bottom() + 6, gw, 40),
                   Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap, name)


def main() -> None:
    raw = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    image = QImage(W, H, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(INK)
    p.setFont(QFont("DejaVu Sans", 18, QFont.Weight.Bold))
    p.drawText(QRectF(30, 14, W - 60, 34), Qt.AlignmentFlag.AlignLeft,
               f"mailcore vs Django 5.2 — {raw['config']['name']} run, "
               f"{raw['started'][:16].replace('T', ' ')}")
    p.setFont(QFont("DejaVu Sans", 10))
    header = " · ".join(h.lstrip("- ").split(" (run took")[0] for h in raw.get("header", [])[1:3])
    p.drawText(QRectF(30, 50, W - 60, 22), Qt.AlignmentFlag.AlignLeft, header.replace("`", ""))
    draw_speedups(p, QRectF(30, 90, W * 0.56, H - 110), raw["rows"])
    draw_mass(p, QRectF(W * 0.58 + 20, 90, W * 0.42 - 50, H - 110), raw["details"])
    p.end()
    if not image.save(str(out)):
        sys.exit(f"could not write {out}")
    del app


if __name__ == "__main__":
    main()
