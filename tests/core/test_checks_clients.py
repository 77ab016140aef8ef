"""The clients check: caniemail.com's data matched against the HTML and CSS of a message.

Every expected client list and percentage is computed here from the vendored JSON itself (the
newest version listed per client family and platform), never written down, so the tests follow
the data when scripts/refresh_caniemail.sh updates it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mailcore import EmailMessage, EmailMultiAlternatives
from mailcore.checks import MessageView, Severity, check_message, clients

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "mailcore" / "checks" / "data"
SCRIPT = ROOT / "scripts" / "refresh_caniemail.sh"
RAW = json.loads((DATA_DIR / "caniemail.json").read_text("utf-8"))
BY_SLUG = {f["slug"]: f for f in RAW["data"]}
FAMILY = RAW["nicenames"]["family"]
PLATFORM = RAW["nicenames"]["platform"]


# -- the data, read independently of the module --------------------------------------------------


def current(slug: str) -> dict[tuple[str, str], str]:
    """(family, platform) -> the letter of the newest version the data lists (y/a/n/u)."""
    out = {}
    for family, platforms in BY_SLUG[slug]["stats"].items():
        for platform, versions in platforms.items():
            if versions:
                newest = list(versions.values())[-1]
                letter = newest.split()[0][0] if newest.strip() else "u"
                out[(family, platform)] = letter if letter in "yan" else "u"
    return out


def name(key: tuple[str, str]) -> str:
    return f"{FAMILY.get(key[0], key[0])} ({PLATFORM.get(key[1], key[1])})"


def expected(slug: str, families: set[str] | None = None) -> dict:
    support = {k: v for k, v in current(slug).items() if families is None or k[0] in families}
    known = [k for k, v in support.items() if v != "u"]
    unsupported = sorted(name(k) for k, v in support.items() if v == "n")
    partial = sorted(name(k) for k, v in support.items() if v == "a")
    return {
        "unsupported": unsupported,
        "partial": partial,
        "unsupported_pct": round(100 * len(unsupported) / len(known), 1) if known else 0.0,
        "partial_pct": round(100 * len(partial) / len(known), 1) if known else 0.0,
    }


def has_no(slug: str) -> bool:
    return "n" in current(slug).values()


# -- messages -------------------------------------------------------------------------------------


def message(html: str, text: str = "The text version.") -> EmailMultiAlternatives:
    msg = EmailMultiAlternatives("Newsletter", text, "from@example.com", ["to@example.com"])
    msg.attach_alternative(html, "text/html")
    return msg


def check(html: str, **options):
    report = check_message(message(html), ["clients"], options={"clients": options})
    result = report.result("clients")
    assert result is not None and result.error == ""
    return result


def by_feature(result) -> dict:
    return {f.data["feature"]: f for f in result.findings}


def line_of(html: str, needle: str) -> int:
    lines = html.splitlines()
    hits = [i for i, line in enumerate(lines, 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} should be on one line"
    return hits[0]


def html_part_section(msg) -> str:
    return MessageView.of(msg).html_parts[0].section


# -- the vendored data ----------------------------------------------------------------------------


def test_data_is_vendored_with_version_and_licence():
    licence = (DATA_DIR / "CANIEMAIL-LICENSE").read_text("utf-8")
    assert licence.startswith("MIT License")
    readme = (DATA_DIR / "README.md").read_text("utf-8")
    version = re.search(r"^Version: (\S+)$", readme, re.M).group(1)
    updated = re.search(r"^Data updated: (.+)$", readme, re.M).group(1)
    assert clients.data_version() == version
    assert updated == RAW["last_update_date"]
    assert clients.data() is clients.data()  # read once
    assert set(clients.features()) == set(BY_SLUG)
    summary = check("<p>x</p>").summary
    assert summary["data_version"] == version
    assert summary["data_updated"] == RAW["last_update_date"]


def test_current_support_is_the_newest_listed_version():
    for slug, feature in clients.features().items():
        for key, letter in current(slug).items():
            assert feature.support[key][0] == letter, (slug, key)


# -- known unsupported features -------------------------------------------------------------------

UNSUPPORTED_HTML = """<!DOCTYPE html>
<html>
<head>
<style>
@media (prefers-color-scheme: dark) {
  .dark { color: #ffffff; }
}
.row { display: flex; }
</style>
</head>
<body>
<div class="row">
  <div style="display: grid; grid-template-columns: 1fr 1fr;">grid</div>
  <div style="position: absolute; top: 0;">pinned</div>
</div>
<svg width="20" height="20"><circle cx="10" cy="10" r="5"/></svg>
<img src="https://cdn.example.com/hero.webp" alt="Hero">
</body>
</html>
"""

CASES = {  # slug -> text on the line where it is used
    "css-at-media-prefers-color-scheme": "@media (prefers-color-scheme: dark)",
    "css-display-flex": "display: flex",
    "css-display-grid": "display: grid",
    "css-grid-template": "grid-template-columns",
    "css-position": "position: absolute",
    "css-left-right-top-bottom": "top: 0",
    "html-svg": "<svg",
    "image-webp": "hero.webp",
    "html-style": "<style>",
}


def test_known_unsupported_features_match_the_data():
    msg = message(UNSUPPORTED_HTML)
    result = check_message(msg, ["clients"]).result("clients")
    found = by_feature(result)
    section = html_part_section(msg)
    for slug, needle in CASES.items():
        assert has_no(slug), f"the data no longer lists a client without {slug}"
        finding = found[slug]
        want = expected(slug)
        # a feature few clients lack is worth knowing; one lacked by MINOR_SHARE % or more warns
        assert finding.severity is (
            Severity.WARNING if want["unsupported_pct"] >= clients.MINOR_SHARE
            else Severity.INFO)
        assert finding.check == "clients"
        assert finding.code == f"clients.{slug}"
        assert sorted(finding.data["unsupported"]) == want["unsupported"]
        assert sorted(finding.data["partial"]) == want["partial"]
        assert finding.data["unsupported_pct"] == want["unsupported_pct"]
        assert finding.data["partial_pct"] == want["partial_pct"]
        assert finding.data["title"] == BY_SLUG[slug]["title"]
        assert finding.reference == finding.data["url"] == BY_SLUG[slug]["url"]
        assert finding.location.part == section
        assert finding.location.line == line_of(UNSUPPORTED_HTML, needle), slug
        assert finding.location.element
        assert finding.fix
        # the sentence names the first clients and the share
        assert finding.data["unsupported"][0] in finding.message
        assert f"{want['unsupported_pct']:g} % of clients" in finding.message


def test_value_specific_features_are_told_apart():
    used = check('<div style="display: block">a</div><p style="display:none">b</p>').summary[
        "features"]
    assert used.get("css-display") == 1 and used.get("css-display-none") == 1
    assert "css-display-flex" not in used and "css-display-grid" not in used
    used = check('<div style="display: inline-flex">a</div>').summary["features"]
    assert "css-display-flex" in used and "css-display" not in used


def test_partial_support_is_info_with_the_datas_notes():
    # a feature no current client lacks but some support only partly
    slug = next(s for s in ("css-margin", "css-background-color", "css-rgb", "css-text-align")
                if not has_no(s) and expected(s)["partial"])
    snippet = {
        "css-margin": '<p style="margin: 4px">x</p>',
        "css-background-color": '<p style="background-color: #eee">x</p>',
        "css-rgb": '<p style="color: rgb(1, 2, 3)">x</p>',
        "css-text-align": '<p style="text-align: center">x</p>',
    }[slug]
    finding = by_feature(check(snippet))[slug]
    assert finding.severity is Severity.INFO
    assert finding.data["unsupported"] == []
    assert sorted(finding.data["partial"]) == expected(slug)["partial"]
    notes = BY_SLUG[slug]["notes_by_num"] or {}
    for client, texts in finding.data["notes"].items():
        assert client in finding.data["partial"] + finding.data["unsupported"]
        assert all(t in notes.values() for t in texts)
    # every partial client whose newest entry carries a note number gets that note
    for key, letter in current(slug).items():
        newest = list(BY_SLUG[slug]["stats"][key[0]][key[1]].values())[-1]
        nums = re.findall(r"#(\d+)", newest)
        if letter == "a" and any(n in notes for n in nums):
            assert finding.data["notes"][name(key)] == [notes[n] for n in nums if n in notes]


def test_uses_counts_every_line():
    html = ("<table>\n<tr><td style=\"position: relative\">a</td></tr>\n"
            "<tr><td style=\"position: relative\">b</td></tr>\n</table>")
    finding = by_feature(check(html))["css-position"]
    assert finding.data["uses"] == {"count": 2, "lines": [2, 3]}
    assert finding.location.line == 2


# -- the data's own features, one snippet each --------------------------------------------------

SELECTORS = {
    "css-selector-adjacent-sibling": "h1 + p",
    "css-selector-attribute": 'a[href^="https"]',
    "css-selector-chaining": ".a.b",
    "css-selector-child": "div > p",
    "css-selector-class": ".a",
    "css-selector-descendant": "div p",
    "css-selector-general-sibling": "h1 ~ p",
    "css-selector-grouping": "h1, h2",
    "css-selector-id": "#main",
    "css-selector-type": "p",
    "css-selector-universal": "*",
}


def snippet(feature: dict) -> str | None:
    """A small HTML document that uses this feature, built from its title (the data has
    ``test_url`` pages, not example code)."""
    slug, title, keywords = feature["slug"], feature["title"].strip(), feature["keywords"] or ""

    def css(body: str) -> str:
        return f"<html><head><style>\n{body}\n</style></head><body><p>x</p></body></html>"

    def style(decl: str) -> str:
        return f'<p style="{decl}">x</p>'

    special = {
        "amp": '<html amp4email><body><p>x</p></body></html>',
        "html-h1-h6": "<h2>x</h2>",
        "html-lists": "<ul><li>x</li></ul>",
        "html-semantics": "<article>x</article>",
        "html-address": "<address>x</address>",
        "html-anchor-links": '<a href="#top">top</a>',
        "html-mailto-links": '<a href="mailto:a@example.com">mail</a>',
        "html-doctype": "<!DOCTYPE html>\n<html><body><p>x</p></body></html>",
        "html-comments": "<p>x</p><!-- a note -->",
        "html-image-maps": '<img src="m.png" usemap="#m"><map name="m">'
                           '<area href="https://example.com/" coords="0,0,1,1"></map>',
        "html-meta-color-scheme": '<html><head><meta name="color-scheme" content="light dark">'
                                  "</head><body><p>x</p></body></html>",
        "html-srcset": '<img src="a.png" srcset="a.png 1x, b.png 2x">',
        "html-body": '<html><body bgcolor="#ffffff"><p>x</p></body></html>',
        "image-base64": '<img src="data:image/png;base64,iVBORw0KGgo=" alt="">',
        "image-mp4": '<img src="https://example.com/clip.mp4" alt="">',
        "css-comments": css("/* a comment */ p { color: red; }"),
        "css-nesting": css(".a { color: red; .b { color: blue; } }"),
        "css-variables": css(":root { --brand: #f00; } p { color: var(--brand); }"),
        "css-important": style("color: red !important"),
        "css-unit-initial": style("color: initial"),
        "css-unit-percent": style("width: 50%"),
        "css-intrinsic-size": style("width: fit-content"),
        "css-sytem-ui": style("font-family: system-ui, sans-serif"),
        "css-color-scheme": style("color-scheme: light dark"),
        "css-scroll-snap": style("scroll-snap-type: x mandatory"),
        "css-display": style("display: inline-block"),
    }
    if slug in special:
        return special[slug]
    if slug in SELECTORS:
        return css(f"{SELECTORS[slug]} {{ color: red; }}")
    if slug.startswith("css-pseudo-class-"):
        pseudo = slug.removeprefix("css-pseudo-class-")
        arg = {"has": "(img)", "lang": "(en)", "not": "(.x)"}.get(pseudo, "")
        arg = "(2)" if pseudo.startswith("nth-") else arg
        return css(f"a:{pseudo}{arg} {{ color: red; }}")
    if slug.startswith("css-pseudo-element-"):
        return css(f"p::{slug.removeprefix('css-pseudo-element-')} {{ color: red; }}")
    if title.startswith("@media ("):
        media = re.findall(r"\(([a-z-]+)\)", title)[0]
        return css(f"@media ({media}: 2) {{ p {{ color: red; }} }}")
    if title.startswith("@"):
        body = {"@font-face": "@font-face { font-family: X; src: url(x.woff2); }",
                "@import": '@import url("https://example.com/a.css");',
                "@keyframes": "@keyframes spin { from { opacity: 0; } to { opacity: 1; } }",
                "@media": "@media screen { p { color: red; } }",
                "@supports": "@supports (display: grid) { p { color: red; } }"}.get(title)
        return css(body) if body else None
    if feature["category"] == "image":
        ext = slug.removeprefix("image-")
        return f'<img src="https://example.com/picture.{ext}" alt="">'
    if feature["category"] == "html":
        typed = re.fullmatch(r'<(\w+) type="(\w+)"> element', title)
        if typed:
            return f'<form><{typed.group(1)} type="{typed.group(2)}"></form>'
        if title.endswith(" attribute"):
            return f'<p {title.removesuffix(" attribute")}="x">x</p>'
        tags = re.findall(r"<([a-z]+)>", title)
        if tags:
            return f"<{tags[0]}>x</{tags[0]}>"
        return None
    if feature["category"] != "css":
        return None
    if title.endswith(" unit"):
        return style(f"width: 3{title.removesuffix(' unit')}")
    pair = re.fullmatch(r"([a-z-]+):\s*([a-z-]+)", title)
    if pair:
        return style(f"{pair.group(1)}: {pair.group(2)}")
    functions = re.findall(r"([a-z-]+)\(\)", title)
    if functions:
        return style(f"width: {functions[0]}(10px, 20px)")
    prop = title.removesuffix(" shorthand").removesuffix(" property").strip()
    names = [n.strip() for n in re.split(r",|&", prop)]
    if all(re.fullmatch(r"[a-z-]+", n) for n in names):
        return style(f"{names[0]}: inherit")
    properties = [k.strip() for k in keywords.split(",")
                  if re.fullmatch(r"[a-z]+(-[a-z]+)+", k.strip())]
    return style(f"{properties[0]}: inherit") if properties else None


@pytest.mark.parametrize("slug", sorted(BY_SLUG))
def test_each_feature_of_the_data_is_found_in_its_own_snippet(slug):
    html = snippet(BY_SLUG[slug])
    if html is None:
        # nothing in HTML or CSS shows this feature; the module must say so too
        assert slug in clients.undetected()
        return
    assert slug in clients.detectable()
    result = check(html)
    assert slug in result.summary["features"], f"{slug} not found in {html}"
    want = expected(slug)
    finding = by_feature(result).get(slug)
    if want["unsupported"]:
        assert finding is not None and finding.severity is (
            Severity.WARNING if want["unsupported_pct"] >= clients.MINOR_SHARE else Severity.INFO)
        assert sorted(finding.data["unsupported"]) == want["unsupported"]
    elif want["partial"]:
        assert finding is not None and finding.severity is Severity.INFO
    else:
        assert finding is None


def test_undetected_features_are_few_and_named():
    assert set(clients.undetected()) | clients.detectable() == set(BY_SLUG)
    assert not set(clients.undetected()) & clients.detectable()
    built = {s for s, f in BY_SLUG.items() if snippet(f) is not None}
    assert set(clients.undetected()) == set(BY_SLUG) - built


# -- what is not a use ---------------------------------------------------------------------------


def clean_html() -> tuple[str, list[str]]:
    """HTML built only from features no current client lacks (chosen from the data)."""
    candidates = {
        "html-p": "<p>Hello,</p>",
        "html-div": "<div>Here is the news.</div>",
        "html-span": "<span>Short</span>",
        "html-strong": "<strong>and clear.</strong>",
        "html-table": "<table><tr><td>cell</td></tr></table>",
        "html-h1-h6": "<h1>Title</h1>",
        "css-padding": '<div style="padding: 10px">padded</div>',
        "css-font-weight": '<div style="font-weight: bold">bold</div>',
        "css-vertical-align": '<div style="vertical-align: top">top</div>',
    }
    picked = [s for s in candidates if not has_no(s)]
    # padding uses px; keep declarations only when their units are fine too
    if has_no("css-unit-px"):
        picked = [s for s in picked if s != "css-padding"]
    body = "\n".join(candidates[s] for s in picked)
    return f"<html><head><title>News</title></head><body>\n{body}\n</body></html>", picked


def test_clean_plain_html_has_no_warnings():
    html, picked = clean_html()
    assert len(picked) >= 4
    result = check(html)
    assert [f for f in result.findings if f.severity >= Severity.WARNING] == []
    assert set(picked) <= set(result.summary["features"])
    assert result.summary["unsupported"] == 0.0


def test_css_in_comments_and_strings_is_not_a_use():
    html = """<html><head><style>
/* .row { display: flex; position: absolute; } */
p { font-family: "display: grid; position: fixed"; color: red; }
@font-face { font-family: Brand; src: url(https://example.com/brand.svg); }
</style></head><body>
<!-- <svg><circle r="1"/></svg> <video src="a.mp4"></video> -->
<p style="font-family: 'display: flex'">x</p>
</body></html>"""
    used = check(html).summary["features"]
    for slug in ("css-display-flex", "css-display-grid", "css-position", "html-svg",
                 "html-video", "css-display", "image-svg"):
        assert slug not in used, slug
    assert "css-comments" in used and "html-comments" in used
    # and the same text outside the comment is found
    assert "css-position" in check(html.replace("/* .row", ".row").replace("} */", "}")).summary[
        "features"]


def test_line_numbers_point_at_the_use():
    html = "\n".join([
        "<html>",
        "<head>",
        "<style>",
        "p { color: red; }",
        "",
        ".card {",
        "  color: blue;",
        "  box-shadow: 0 0 2px #000;",
        "}",
        "</style>",
        "</head>",
        "<body>",
        "<p>one</p>",
        '<p style="color: red;',
        '   text-shadow: 1px 1px #000">two</p>',
        '<p><video src="a.mp4"></video></p>',
        "<!-- a comment",
        "   over two lines -->",
        "<img",
        '  src="https://example.com/a.webp"',
        '  alt="">',
        "</body>",
        "</html>",
    ])
    found = by_feature(check(html))
    assert found["css-box-shadow"].location.line == 8
    assert found["css-box-shadow"].location.element == "box-shadow: 0 0 2px #000"
    assert found["css-text-shadow"].location.line == 15
    assert found["html-video"].location.line == 16
    assert found["html-video"].location.element.startswith("<video")
    assert found["image-webp"].location.line == 19
    assert found["image-webp"].location.element == '<img src="https://example.com/a.webp">'



def test_malformed_html_does_not_raise():
    broken = [
        '<div><p style="display:flex;;; color:">unclosed <table><td><tr></div></span>',
        "<style>{{{ @media (prefers-color-scheme: dark { p { color: red",
        '<p style="\x00\x01 position: fixed">\ufffd</p><img src="http://[::1">',
        "<!-- never closed <svg>",
        "<html><body><p>" + "<b>" * 500,
        '<img srcset=", ,," src="">' '<a href="mailto:">x</a><input type="">',
    ]
    for html in broken:
        result = check(html)
        assert all(f.check == "clients" for f in result.findings)
        assert "clients.unreadable-part" not in {f.code for f in result.findings}
    raw = (b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n!!!not base64 at all\xff\xfe<svg>\r\n")
    result = check_message(raw, ["clients"]).result("clients")
    assert result.error == ""


def test_plain_text_message_has_no_findings():
    msg = EmailMessage("Hello", "display: flex; <svg> plain words", "a@example.com",
                       ["b@example.com"])
    result = check_message(msg, ["clients"]).result("clients")
    assert result.error == ""
    assert result.findings == []
    assert result.summary["features"] == {}
    assert result.summary["supported"] == 100.0


def test_message_view_and_check_message_agree():
    msg = message(UNSUPPORTED_HTML)
    direct = clients.run(MessageView.of(msg))
    via = check_message(msg, ["clients"]).result("clients")
    assert [f.to_json() for f in direct.findings] == [f.to_json() for f in via.findings]
    assert direct.summary == via.summary
    json.dumps(direct.to_json())  # the CLI's --json can serialise it


# -- the summary ----------------------------------------------------------------------------------


def test_summary_scores_are_the_datas():
    result = check(UNSUPPORTED_HTML)
    summary = result.summary
    used = list(summary["features"])
    assert set(CASES) <= set(used)
    pairs = [v for slug in used for v in current(slug).values() if v != "u"]
    assert summary["tests"] == len(pairs)
    assert summary["supported"] == round(100 * pairs.count("y") / len(pairs), 1)
    assert summary["partial"] == round(100 * pairs.count("a") / len(pairs), 1)
    assert summary["unsupported"] == round(100 * pairs.count("n") / len(pairs), 1)
    all_clients = {k for f in RAW["data"] for k in current(f["slug"])}
    assert summary["clients"] == len(all_clients)

    families = summary["families"]
    assert {f["family"] for f in families} == {k[0] for k in all_clients}
    well_tested = [f for f in families if f["supported"] is not None and f["coverage"] >= 50]
    scores = [f["supported"] for f in well_tested]
    assert scores == sorted(scores)  # worst first
    assert families[: len(well_tested)] == well_tested  # the barely tested ones after
    for fam in families:
        assert fam["name"] == FAMILY.get(fam["family"], fam["family"])
        letters = [current(s)[(fam["family"], p)] for s in used for p in fam["platforms"]
                   if current(s).get((fam["family"], p), "u") != "u"]
        if letters:
            assert fam["supported"] == round(100 * letters.count("y") / len(letters), 1)
        tested = [s for s in used if any(current(s).get((fam["family"], p), "u") != "u"
                                         for p in fam["platforms"])]
        assert fam["coverage"] == round(100 * len(tested) / len(used), 1)
        missing = sorted(BY_SLUG[s]["title"] for s in used
                         if any(current(s).get((fam["family"], p)) == "n"
                                for p in fam["platforms"]))
        assert sorted(fam["unsupported_features"]) == missing


def test_families_limit_the_clients():
    result = check(UNSUPPORTED_HTML, families=["gmail", "Outlook"])
    wanted = {"gmail", "outlook"}
    assert {f["family"] for f in result.summary["families"]} == wanted
    all_clients = {k for f in RAW["data"] for k in current(f["slug"]) if k[0] in wanted}
    assert result.summary["clients"] == len(all_clients)
    for finding in result.findings:
        slug = finding.data["feature"]
        assert sorted(finding.data["unsupported"]) == expected(slug, wanted)["unsupported"]
        for client in finding.data["unsupported"] + finding.data["partial"]:
            assert client.startswith(("Gmail (", "Outlook ("))


def test_unknown_family_is_an_error_not_an_exception():
    result = check_message(message("<p>x</p>"), ["clients"],
                           options={"clients": {"families": ["hotmale"]}}).result("clients")
    assert "hotmale" in result.error
    assert result.findings == []


# -- the refresh script ---------------------------------------------------------------------------


def test_refresh_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def fake_checkout(tmp_path: Path) -> Path:
    """A copy of the script and the data folder, so the refresh runs on files of the test."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts" / SCRIPT.name)
    shutil.copytree(DATA_DIR, root / "mailcore" / "checks" / "data")
    return root


def fake_package(tmp_path: Path, version: str, licence: str = "MIT") -> Path:
    pkg = tmp_path / "package"
    (pkg / "data").mkdir(parents=True)
    data = dict(RAW, last_update_date="2030-01-02 03:04:05 +0000")
    (pkg / "data" / "caniemail.json").write_text(json.dumps(data), "utf-8")
    (pkg / "LICENSE").write_text("MIT License\n\nCopyright test\n", "utf-8")
    (pkg / "package.json").write_text(
        json.dumps({"name": "caniemail", "version": version, "license": licence}), "utf-8")
    return pkg


def test_refresh_script_copies_a_package_and_records_its_version(tmp_path):
    root = fake_checkout(tmp_path)
    pkg = fake_package(tmp_path, "9.8.7")
    done = subprocess.run(["bash", str(root / "scripts" / SCRIPT.name)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin",
                                          "CANIEMAIL_PACKAGE_DIR": str(pkg)})
    assert done.returncode == 0, done.stderr
    data = root / "mailcore" / "checks" / "data"
    readme = (data / "README.md").read_text("utf-8")
    assert re.search(r"^Version: 9\.8\.7$", readme, re.M)
    assert re.search(r"^Data updated: 2030-01-02 03:04:05 \+0000$", readme, re.M)
    assert json.loads((data / "caniemail.json").read_text())["last_update_date"].startswith(
        "2030")
    assert (data / "CANIEMAIL-LICENSE").read_text() == "MIT License\n\nCopyright test\n"


def test_refresh_script_fails_loudly_and_changes_nothing(tmp_path):
    root = fake_checkout(tmp_path)
    pkg = fake_package(tmp_path, "9.8.7", licence="GPL-3.0")
    data = root / "mailcore" / "checks" / "data"
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    done = subprocess.run(["bash", str(root / "scripts" / SCRIPT.name)], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin",
                                          "CANIEMAIL_PACKAGE_DIR": str(pkg)})
    assert done.returncode != 0
    assert "MIT" in done.stderr
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()} == before
