"""HTML and CSS support in email clients, from the caniemail.com data set (vendored, local).

For each HTML body part, the features it uses are found with real parsers (lxml for elements
and attributes, tinycss2 for declarations, values, selectors and at-rules) and looked up in the
caniemail data (``mailcore/checks/data/caniemail.json``, the MIT-licensed npm package
``caniemail``; ``scripts/refresh_caniemail.sh`` refreshes it). One finding per feature used:

- WARNING when some current client does not support it (``"n"``);
- INFO when every client supports it but some only partly (``"a"``).

Each finding's ``data`` has the clients by name, the shares, the uses (count and lines) and the
data's notes for each client that lacks the feature or has it only in part.

A *client* is a family and platform (``Outlook (Windows)``, ``Gmail (Android)``); its *current*
support is the newest version the data lists for it (the data lists versions oldest first, and
their names mix years and numbers, so they are taken in that order, not sorted). A client whose
newest entry is ``"u"`` (unknown), or that the feature does not list, is left out of that
feature's numbers.

The summary, as Mailpit's HTML Check reports it:

- ``supported`` / ``partial`` / ``unsupported``: percentages over every (feature used, client)
  pair whose support is known; 100 % supported when the message uses no known feature;
- ``clients``: how many clients the data set has (after ``families``);
- ``families``: per client family, the same three percentages over its platforms and the
  features used, with the features some platform of the family does not (or only partly)
  support, and ``coverage`` (the share of the features used the data has tested there); worst
  first, except that families with a coverage under 50 % come after the others.

    from mailcore.checks import check_message
    report = check_message(msg, ["clients"])
    report.result("clients").summary["families"][0]   # the worst client family
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from mailcore.checks import html
from mailcore.checks.base import CheckResult, Finding, Location, MessageView, Part, Severity

NAME = "clients"
DATA_PACKAGE = "mailcore.checks.data"
DATA_FILE = "caniemail.json"
REFERENCE = "https://www.caniemail.com/"

__all__ = [
    "Client",
    "Feature",
    "data",
    "data_version",
    "detectable",
    "features",
    "run",
    "undetected",
]


# -- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """One email client: a family on a platform."""

    family: str  # slug: "outlook"
    platform: str  # slug: "windows"
    name: str  # "Outlook (Windows)"
    family_name: str  # "Outlook"


@dataclass(frozen=True)
class Feature:
    """One caniemail feature with each client's current support."""

    slug: str
    title: str
    category: str
    url: str
    # (family, platform) -> ("y" | "a" | "n" | "u", note numbers)
    support: dict[tuple[str, str], tuple[str, tuple[str, ...]]]
    notes: dict[str, str]


@functools.cache
def data() -> dict[str, Any]:
    """The vendored caniemail JSON, read once from the package data."""
    text = importlib.resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_text("utf-8")
    return json.loads(text)


@functools.cache
def data_version() -> str:
    """The npm package version the data came from (the ``Version:`` line of the data README),
    or the data's own ``api_version`` when the README is missing."""
    try:
        readme = importlib.resources.files(DATA_PACKAGE).joinpath("README.md").read_text("utf-8")
    except OSError:
        readme = ""
    for line in readme.splitlines():
        if line.startswith("Version: "):
            return line.split(":", 1)[1].strip()
    return str(data().get("api_version", "unknown"))


def _status(value: Any) -> tuple[str, tuple[str, ...]]:
    """``"a #1 #3"`` -> ``("a", ("1", "3"))``; anything odd is unknown."""
    bits = str(value or "").split()
    if not bits:
        return "u", ()
    kind = bits[0][:1].lower()
    notes = tuple(b.lstrip("#") for b in bits[1:] if b.startswith("#"))
    return (kind if kind in ("y", "a", "n") else "u"), notes


@functools.cache
def features() -> dict[str, Feature]:
    """Every feature of the data set by slug, with each client's current support."""
    out: dict[str, Feature] = {}
    for raw in data().get("data", []):
        support: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        for family, platforms in (raw.get("stats") or {}).items():
            for platform, versions in (platforms or {}).items():
                if versions:
                    newest = list(versions.values())[-1]  # the data lists versions oldest first
                    support[(family, platform)] = _status(newest)
        out[raw["slug"]] = Feature(
            raw["slug"],
            raw.get("title") or raw["slug"],
            raw.get("category") or "",
            raw.get("url") or REFERENCE,
            support,
            {str(k): str(v) for k, v in (raw.get("notes_by_num") or {}).items()},
        )
    return out


@functools.cache
def _clients() -> dict[tuple[str, str], Client]:
    """Every client of the data set, in the data's own order of families (Gmail, Outlook,
    Yahoo! Mail, Apple Mail, ...) and platforms, so lists name the big clients first."""
    names = data().get("nicenames", {})
    families, platforms = names.get("family", {}), names.get("platform", {})
    fam_order = {k: i for i, k in enumerate(families)}
    plat_order = {k: i for i, k in enumerate(platforms)}
    keys = sorted({k for f in features().values() for k in f.support},
                  key=lambda k: (fam_order.get(k[0], len(fam_order)), k[0],
                                 plat_order.get(k[1], len(plat_order)), k[1]))
    return {
        (fam, plat): Client(
            fam, plat, f"{families.get(fam, fam)} ({platforms.get(plat, plat)})",
            families.get(fam, fam),
        )
        for fam, plat in keys
    }


# -- what the HTML and CSS use -> which feature -----------------------------------------------

_NAME = re.compile(r"-?[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")  # a CSS property or HTML name
_VENDOR = ("-webkit-", "-moz-", "-ms-", "-o-")

# Features whose data-set keywords are the longhand/related property names they cover.
_KEYWORD_PROPERTIES = (
    "css-border", "css-margin", "css-border-inline-block-individual",
    "css-border-inline-block-longhand", "css-border-radius-logical",
    "css-column-layout-properties", "css-grid-template", "css-inset", "css-overflow",
    "css-margin-block-start-end", "css-margin-inline-start-end", "css-margin-inline-block",
    "css-padding-block-start-end", "css-padding-inline-start-end", "css-padding-inline-block",
)
# Features whose title is not a property name: the properties, spelt out.
_EXPLICIT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "css-color-scheme": ("color-scheme",),
    "css-padding": ("padding-top", "padding-right", "padding-bottom", "padding-left"),
    "css-animation": (
        "animation-name", "animation-duration", "animation-timing-function", "animation-delay",
        "animation-iteration-count", "animation-direction", "animation-fill-mode",
        "animation-play-state",
    ),
    "css-transition": (
        "transition-property", "transition-duration", "transition-timing-function",
        "transition-delay",
    ),
    "css-text-emphasis": ("text-emphasis-color", "text-emphasis-style"),
    "css-scroll-snap": (
        "scroll-snap-type", "scroll-snap-align", "scroll-snap-stop", "scroll-margin",
        "scroll-padding",
    ),
}
# Keyword values that are a feature wherever they appear.
_EXPLICIT_IDENTS: dict[str, tuple[str, ...]] = {
    "css-intrinsic-size": ("fit-content", "min-content", "max-content"),
    "css-sytem-ui": ("system-ui", "ui-serif", "ui-sans-serif", "ui-rounded", "ui-monospace"),
    "css-unit-initial": ("initial",),
}
_FUNCTION_ALIASES = {  # function -> the function the data names
    "repeating-linear-gradient": "linear-gradient",
    "repeating-radial-gradient": "radial-gradient",
    "repeating-conic-gradient": "conic-gradient",
    "fit-content": "fit-content",
}
_LEGACY_PSEUDO_ELEMENTS = ("before", "after", "first-line", "first-letter")
_SELECTOR_FUNCTIONS = ("not", "has", "is", "where")  # pseudo-classes that take selectors
_IMAGE_EXTENSIONS = {  # extension -> slug suffix, beyond "image-<ext>"
    "jpeg": "jpg", "jfif": "jpg", "heic": "heif", "tif": "tiff", "svgz": "svg",
}
_IMAGE_MIME = {"jpeg": "jpg", "svg+xml": "svg", "x-icon": "ico", "vnd.microsoft.icon": "ico",
               "heic": "heif", "x-ms-bmp": "bmp"}
# Slugs the code below finds itself (not from a table).
_CODED = frozenset({
    "amp", "css-important", "css-variables", "css-comments", "css-nesting",
    "css-display", "html-anchor-links", "html-mailto-links", "html-doctype", "html-comments",
    "html-body", "html-image-maps", "html-meta-color-scheme", "html-srcset",
    "image-base64", "image-mp4",
    "css-selector-adjacent-sibling", "css-selector-attribute", "css-selector-chaining",
    "css-selector-child", "css-selector-class", "css-selector-descendant",
    "css-selector-general-sibling", "css-selector-grouping", "css-selector-id",
    "css-selector-type", "css-selector-universal",
})


@dataclass
class _Rules:
    """Lookup tables from what a message uses to caniemail slugs, built from the data."""

    elements: dict[str, list[str]] = field(default_factory=dict)  # tag -> slugs
    attributes: dict[str, list[str]] = field(default_factory=dict)  # attribute -> slugs
    typed: dict[tuple[str, str], str] = field(default_factory=dict)  # (tag, type) -> slug
    properties: dict[str, list[str]] = field(default_factory=dict)  # property -> slugs
    values: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # prop -> (kw, slug)
    functions: dict[str, list[str]] = field(default_factory=dict)  # function -> slugs
    units: dict[str, str] = field(default_factory=dict)  # unit ("%" too) -> slug
    idents: dict[str, list[str]] = field(default_factory=dict)  # keyword value -> slugs
    at_rules: dict[str, str] = field(default_factory=dict)  # "media" -> slug
    media: dict[str, str] = field(default_factory=dict)  # media feature -> slug
    pseudo_classes: dict[str, str] = field(default_factory=dict)
    pseudo_elements: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # extension -> slug
    coded: frozenset[str] = frozenset()

    def slugs(self) -> set[str]:
        out: set[str] = set(self.coded)
        for table in (self.elements, self.attributes, self.properties, self.functions,
                      self.idents):
            for slugs in table.values():
                out.update(slugs)
        for pairs in self.values.values():
            out.update(s for _, s in pairs)
        for simple in (self.typed, self.units, self.at_rules, self.media, self.pseudo_classes,
                       self.pseudo_elements, self.images):
            out.update(simple.values())
        return out


def _add(table: dict[str, list[str]], key: str, slug: str) -> None:
    slugs = table.setdefault(key, [])
    if slug not in slugs:
        slugs.append(slug)


def _names(text: str) -> list[str]:
    """``"gap, column-gap, row-gap"`` / ``"block-size & inline-size"`` -> names, or []."""
    bits = [b.strip() for b in re.split(r",|&| and ", text)]
    return bits if bits and all(_NAME.match(b) for b in bits) else []


def _html_rules(rules: _Rules, f: Feature, raw: dict[str, Any]) -> None:
    title = f.title
    if f.slug == "html-h1-h6":
        for n in range(1, 7):
            _add(rules.elements, f"h{n}", f.slug)
        return
    if f.slug == "html-semantics":
        for tag in _names(raw.get("keywords") or ""):
            _add(rules.elements, tag, f.slug)
        return
    if f.slug == "html-address":
        _add(rules.elements, "address", f.slug)
        return
    typed = re.fullmatch(r'<(\w+) type="(\w+)"> element', title)
    if typed:
        rules.typed[(typed.group(1), typed.group(2))] = f.slug
        return
    if title.endswith(" attribute") and _NAME.match(title[: -len(" attribute")]):
        _add(rules.attributes, title[: -len(" attribute")], f.slug)
        return
    if f.slug in _CODED:
        return
    for tag in re.findall(r"<([a-z][a-z0-9]*)>", title):  # "<abbr> element", "<ul>, <ol>..."
        _add(rules.elements, tag, f.slug)


def _css_rules(rules: _Rules, f: Feature, raw: dict[str, Any]) -> None:
    slug, title = f.slug, f.title.strip()
    if slug in _CODED or slug in _EXPLICIT_IDENTS:
        return
    if slug.startswith("css-pseudo-class-"):
        rules.pseudo_classes[slug[len("css-pseudo-class-"):]] = slug
        return
    if slug.startswith("css-pseudo-element-"):
        rules.pseudo_elements[slug[len("css-pseudo-element-"):]] = slug
        return
    if title.startswith("@media"):  # "@media (hover), @media (any-hover)"
        for name in re.findall(r"\(([a-z-]+)\)", title):
            rules.media[name] = slug
        if title == "@media":
            rules.at_rules["media"] = slug
        return
    if title.startswith("@") and _NAME.match(title[1:]):
        rules.at_rules[title[1:]] = slug
        return
    if title.endswith(" unit"):
        unit = title[: -len(" unit")]
        if unit == "%":
            rules.units["%"] = slug
        elif slug not in _EXPLICIT_IDENTS:
            rules.units[unit] = slug
        return
    pair = re.fullmatch(r"([a-z-]+):\s*([a-z-]+)", title)  # "display:flex", "flex-wrap: wrap"
    if pair:
        rules.values.setdefault(pair.group(1), []).append((pair.group(2), slug))
        return
    if "()" in title:  # "clamp()", "lch(), oklch(), lab(), oklab()", "CSS calc() function"
        for name in re.findall(r"([a-z-]+)\(\)", title):
            _add(rules.functions, name, slug)
        return
    names = list(_EXPLICIT_PROPERTIES.get(slug, ()))
    if slug in _KEYWORD_PROPERTIES:
        names += _names(raw.get("keywords") or "")
    base = title.removesuffix(" shorthand").removesuffix(" property").strip()
    names += _names(base)
    for name in names:
        _add(rules.properties, name, slug)


@functools.cache
def _rules() -> _Rules:
    feats = features()
    rules = _Rules(coded=frozenset(s for s in _CODED if s in feats))
    raws = {r["slug"]: r for r in data().get("data", [])}
    for slug, f in feats.items():
        if f.category == "html":
            _html_rules(rules, f, raws[slug])
        elif f.category == "css":
            _css_rules(rules, f, raws[slug])
        elif f.category == "image" and slug.startswith("image-"):
            ext = slug[len("image-"):]
            if ext not in ("base64", "mp4"):
                rules.images[ext] = slug
    for ext, target in _IMAGE_EXTENSIONS.items():
        if f"image-{target}" in feats:
            rules.images[ext] = f"image-{target}"
    if "image-mp4" in feats:
        rules.images["mp4"] = "image-mp4"
    for slug, idents in _EXPLICIT_IDENTS.items():
        if slug in feats:
            for ident in idents:
                _add(rules.idents, ident, slug)
    for alias, target in _FUNCTION_ALIASES.items():
        for slug in rules.functions.get(target, []) or rules.idents.get(target, []):
            _add(rules.functions, alias, slug)
    return rules


def detectable() -> frozenset[str]:
    """The slugs this check can find in a message."""
    return frozenset(_rules().slugs() & set(features()))


def undetected() -> list[str]:
    """The slugs of the data set this check never reports (they are not in the HTML or CSS)."""
    return sorted(set(features()) - detectable())


# -- finding uses in one part -----------------------------------------------------------------


@dataclass
class _Use:
    line: int | None
    element: str
    count: int = 0
    lines: list[int] = field(default_factory=list)


class _Uses:
    """The features one part uses, each with its first use and every line."""

    MAX_LINES = 50

    def __init__(self) -> None:
        self.by_slug: dict[str, _Use] = {}

    def hit(self, slug: str, line: int | None, element: str) -> None:
        use = self.by_slug.get(slug)
        if use is None:
            use = self.by_slug[slug] = _Use(line, element)
        elif line is not None and (use.line is None or line < use.line):
            use.line, use.element = line, element  # the first use in the source
        use.count += 1
        if line is not None and line not in use.lines and len(use.lines) < self.MAX_LINES:
            use.lines.append(line)


def _tinycss2() -> Any:
    import tinycss2

    return tinycss2


@functools.lru_cache(maxsize=8192)
def _value_tokens(value: str) -> tuple[Any, ...]:
    return tuple(_tinycss2().parse_component_value_list(value, skip_comments=True))


@functools.lru_cache(maxsize=8192)
def _value_features(prop: str, value: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The slugs a declaration's value uses, and the URLs in it."""
    rules = _rules()
    found: list[str] = []
    urls: list[str] = []
    idents: list[str] = []

    def walk(tokens: Iterable[Any]) -> None:
        for tok in tokens:
            kind = tok.type
            if kind == "ident":
                idents.append(tok.lower_value)
                found.extend(rules.idents.get(tok.lower_value, ()))
            elif kind == "dimension":
                slug = rules.units.get(tok.lower_unit)
                if slug:
                    found.append(slug)
            elif kind == "percentage":
                if "%" in rules.units:
                    found.append(rules.units["%"])
            elif kind == "url":
                urls.append(tok.value)
            elif kind == "function":
                name = tok.lower_name
                if name == "url":
                    urls.extend(t.value for t in tok.arguments if t.type == "string")
                elif name == "var":
                    found.append("css-variables")
                found.extend(rules.functions.get(name, ()))
                walk(tok.arguments)
            elif kind in ("() block", "[] block", "{} block"):
                walk(tok.content)

    walk(_value_tokens(value))
    pairs = rules.values.get(prop, ())
    for keyword, slug in pairs:
        if any(i == keyword or i == f"inline-{keyword}" or i == f"{keyword}-reverse"
               for i in idents):
            found.append(slug)
    if prop == "display" and not any(s in found for _, s in pairs):
        found.append("css-display")
    return tuple(dict.fromkeys(found)), tuple(urls)


def _property_slugs(prop: str) -> list[str]:
    rules = _rules()
    slugs = rules.properties.get(prop)
    if slugs is None:
        for prefix in _VENDOR:
            if prop.startswith(prefix):
                return rules.properties.get(prop[len(prefix):], [])
        return []
    return slugs


def _image_slugs(url: str) -> list[str]:
    """The image-format features of one image URL (by extension, or a data: URL's type)."""
    rules = _rules()
    url = url.strip()
    if url[:5].lower() == "data:":
        head = url[5:].split(",", 1)[0].lower()
        mime = head.split(";", 1)[0]
        out = ["image-base64"] if ";base64" in head and mime.startswith("image/") else []
        sub = mime.removeprefix("image/")
        slug = rules.images.get(_IMAGE_MIME.get(sub, sub))
        return out + ([slug] if slug and mime.startswith("image/") else [])
    try:
        path = unquote(urlsplit(url).path)
    except ValueError:
        return []
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return []
    slug = rules.images.get(name.rsplit(".", 1)[-1].lower())
    return [slug] if slug else []


def _srcset_urls(srcset: str) -> list[str]:
    """The URLs of a ``srcset`` (candidates are "URL [descriptor]", comma separated)."""
    out = []
    for candidate in srcset.split(","):
        bits = candidate.split()
        if bits and not bits[0].lower().startswith("data:"):
            out.append(bits[0])
    return out


def _scan_elements(tree: Any, uses: _Uses, source: html.SourceLines) -> None:
    from lxml import etree

    rules = _rules()
    feats = features()
    docinfo = tree.getroottree().docinfo
    doctype = (docinfo.doctype or "").strip()
    if "html-doctype" in feats and doctype.lower() == "<!doctype html>":
        uses.hit("html-doctype", 1, doctype)
    for comment in tree.iter(etree.Comment):
        text = comment.text or ""
        line = (comment.sourceline - text.count("\n")) if comment.sourceline else None
        uses.hit("html-comments", line, "<!--" + text[:40] + "-->")  # lxml: its last line
    for el in html.elements(tree):
        tag = el.tag.lower()
        line = source.start(el)
        for slug in rules.elements.get(tag, ()):
            uses.hit(slug, line, html.describe(el))
        attrib = el.attrib
        if tag == "body" and attrib:
            uses.hit("html-body", line, html.describe(el))
        elif tag == "input":
            kind = (attrib.get("type") or "text").strip().lower()
            slug = rules.typed.get(("input", kind))
            if slug:
                uses.hit(slug, line, html.describe(el, "type"))
        elif tag == "button":
            kind = (attrib.get("type") or "submit").strip().lower()
            slug = rules.typed.get(("button", kind))
            if slug:
                uses.hit(slug, line, html.describe(el, "type"))
        elif tag == "a":
            href = (attrib.get("href") or "").strip()
            if href.startswith("#") or ("name" in attrib and "href" not in attrib):
                uses.hit("html-anchor-links", line, html.describe(el, "href" if href else "name"))
            elif href[:7].lower() == "mailto:":
                uses.hit("html-mailto-links", line, html.describe(el, "href"))
        elif tag == "meta":
            if (attrib.get("name") or "").strip().lower() in ("color-scheme",
                                                               "supported-color-schemes"):
                uses.hit("html-meta-color-scheme", line, html.describe(el, "name"))
        elif tag == "html":
            if any(a in attrib for a in ("amp4email", "⚡4email", "⚡")):
                uses.hit("amp", line, html.describe(el))
        elif tag in ("map", "area"):
            uses.hit("html-image-maps", line, html.describe(el))
        if not attrib:
            continue
        for name in attrib:
            if not isinstance(name, str):
                continue
            lname = name.lower()
            for slug in rules.attributes.get(lname, ()):
                uses.hit(slug, line, html.describe(el, name))
            if lname in ("srcset", "sizes") and tag in ("img", "source"):
                uses.hit("html-srcset", line, html.describe(el, name))
            if lname == "usemap":
                uses.hit("html-image-maps", line, html.describe(el, name))
        images: list[tuple[str, str]] = []
        if tag in ("img", "input") and attrib.get("src"):
            images.append(("src", attrib["src"]))
        if tag in ("img", "source") and attrib.get("srcset"):
            images.extend(("srcset", u) for u in _srcset_urls(attrib["srcset"]))
        if attrib.get("background"):
            images.append(("background", attrib["background"]))
        for attr, url in images:
            for slug in _image_slugs(url):
                uses.hit(slug, line, html.describe(el, attr))


def _decl_text(d: html.Declaration, limit: int = 80) -> str:
    text = f"{d.property}: {d.value}" + (" !important" if d.important else "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scan_declarations(decls: Sequence[html.Declaration], uses: _Uses) -> None:
    previous = ""
    for d in decls:
        prop = d.property
        element = _decl_text(d)
        if prop.startswith("--"):
            uses.hit("css-variables", d.line, element)
        for slug in _property_slugs(prop):
            uses.hit(slug, d.line, element)
        slugs, urls = _value_features(prop, d.value)
        for slug in slugs:
            uses.hit(slug, d.line, element)
        if d.important:
            uses.hit("css-important", d.line, element)
        if d.selector != "@font-face":  # its src: url() is a font, not an image
            for url in urls:
                for slug in _image_slugs(url):
                    uses.hit(slug, d.line, element)
        if d.selector and d.selector != previous and not d.selector.startswith("@"):
            # once per rule: a rule's declarations come together and share its selector
            for slug in _selector_features(d.selector):
                uses.hit(slug, d.line, d.selector[:80])
        previous = d.selector


def _media_feature(name: str) -> str:
    """``-webkit-min-device-pixel-ratio`` -> ``-webkit-device-pixel-ratio``; ``max-width`` ->
    ``width``: the name the data uses for a media feature."""
    vendor = name.startswith("-") and name.count("-") >= 2
    rest = name.split("-", 2)[2] if vendor else name
    rest = rest.removeprefix("min-").removeprefix("max-")
    if vendor and rest == "device-pixel-ratio":
        return "-webkit-device-pixel-ratio"
    return rest


@functools.lru_cache(maxsize=1024)
def _at_rule_features(name: str, prelude: str) -> tuple[str, ...]:
    rules = _rules()
    found: list[str] = []
    base = name
    for prefix in _VENDOR:
        if name.startswith(prefix):
            base = name[len(prefix):]
    if base in rules.at_rules:
        found.append(rules.at_rules[base])
    if base == "media":
        def walk(tokens: Iterable[Any]) -> None:
            for tok in tokens:
                if tok.type == "() block":
                    first = next((t for t in tok.content if t.type == "ident"), None)
                    if first is not None:
                        slug = rules.media.get(first.lower_value) or rules.media.get(
                            _media_feature(first.lower_value))
                        if slug:
                            found.append(slug)
                    walk(tok.content)

        walk(_value_tokens(prelude))
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=4096)
def _selector_features(selector: str) -> tuple[str, ...]:
    """The selector features of a rule's prelude (combinators, pseudo-classes, ...)."""
    rules = _rules()
    found: list[str] = []
    groups: list[list[Any]] = [[]]
    for tok in _value_tokens(selector):
        if tok.type == "literal" and tok.value == ",":
            groups.append([])
        else:
            groups[-1].append(tok)
    if len([g for g in groups if g]) > 1:
        found.append("css-selector-grouping")
    for tokens in groups:
        simple = 0  # simple selectors (type, class, id, attribute) in the current compound
        pending_space = False  # whitespace after a compound: a descendant combinator, unless
        after_combinator = True  # ... it only surrounds ">", "+" or "~"
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            kind = tok.type
            if kind == "whitespace":
                pending_space = not after_combinator
                i += 1
                continue
            if kind == "literal" and tok.value in (">", "+", "~"):
                found.append({">": "css-selector-child", "+": "css-selector-adjacent-sibling",
                              "~": "css-selector-general-sibling"}[tok.value])
                pending_space, after_combinator, simple = False, True, 0
                i += 1
                continue
            if pending_space:
                found.append("css-selector-descendant")
                simple = 0
            pending_space = after_combinator = False
            if kind == "ident":
                found.append("css-selector-type")
                simple += 1
            elif kind == "literal" and tok.value == "*":
                found.append("css-selector-universal")
            elif kind == "literal" and tok.value == "&":
                found.append("css-nesting")
            elif kind == "literal" and tok.value == "." and i + 1 < len(tokens) \
                    and tokens[i + 1].type == "ident":
                found.append("css-selector-class")
                simple += 1
                i += 1
            elif kind == "hash":
                found.append("css-selector-id")
                simple += 1
            elif kind == "[] block":
                found.append("css-selector-attribute")
                simple += 1
            elif kind == "literal" and tok.value == ":":
                element = i + 1 < len(tokens) and tokens[i + 1].type == "literal" \
                    and tokens[i + 1].value == ":"
                if element:
                    i += 1
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                if nxt is not None and nxt.type in ("ident", "function"):
                    pname = nxt.lower_value if nxt.type == "ident" else nxt.lower_name
                    if element or pname in _LEGACY_PSEUDO_ELEMENTS:
                        slug = rules.pseudo_elements.get(pname)
                    else:
                        slug = rules.pseudo_classes.get(pname)
                    if slug:
                        found.append(slug)
                    if nxt.type == "function" and pname in _SELECTOR_FUNCTIONS:
                        found.extend(_selector_features(_tinycss2().serialize(nxt.arguments)))
                    i += 1
            if simple == 2:
                found.append("css-selector-chaining")
            i += 1
    return tuple(dict.fromkeys(s for s in found if s in features()))


def _scan_part(view: MessageView, part: Part, tree: Any) -> _Uses:
    uses = _Uses()
    _scan_elements(tree, uses, html.source_lines(view, part))
    css = html.css_of(view, part)
    _scan_declarations(css.declarations, uses)
    for rule in css.at_rules:
        for slug in _at_rule_features(rule.name, rule.prelude):
            uses.hit(slug, rule.line, f"@{rule.name} {rule.prelude}".strip()[:80])
    for slug, line, element in css.extra:
        uses.hit(slug, line, element)
    return uses


# -- scoring ----------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _name_list(names: Sequence[str], limit: int = 6) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


def _pick_families(families: Sequence[str] | None) -> tuple[set[str] | None, str]:
    if families is None:
        return None, ""
    if isinstance(families, str):
        families = [families]
    nice = data().get("nicenames", {}).get("family", {})
    known = {c.family for c in _clients().values()}
    by_name = {v.lower(): k for k, v in nice.items()}
    picked: set[str] = set()
    unknown: list[str] = []
    for f in families:
        key = str(f).strip().lower()
        slug = key if key in known else by_name.get(key)
        if slug in known:
            picked.add(slug)
        else:
            unknown.append(str(f))
    if unknown:
        return None, (
            f"unknown client famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
            f"the data set knows {', '.join(sorted(known))}"
        )
    return picked, ""


def run(view: MessageView, *, families: Sequence[str] | None = None) -> CheckResult:
    """Match the HTML and CSS of each HTML part against the caniemail data.

    ``families`` limits the clients to these families (caniemail slugs such as ``"gmail"``,
    ``"outlook"``, ``"apple-mail"``, or their names, ``"Apple Mail"``); default: every client.
    """
    try:
        feats = features()
        clients = _clients()
    except (OSError, ValueError, KeyError) as exc:
        return CheckResult(NAME, error=f"the caniemail data cannot be read ({exc}); restore "
                                       "mailcore/checks/data/caniemail.json or run "
                                       "scripts/refresh_caniemail.sh")
    picked, problem = _pick_families(families)
    if problem:
        return CheckResult(NAME, error=problem)
    chosen = [c for k, c in clients.items() if picked is None or c.family in picked]
    result = CheckResult(NAME)
    used: dict[str, int] = {}  # slug -> uses over all parts
    for part in view.html_parts:
        try:
            tree = view.html_tree(part)
            if tree is None:  # an empty part
                continue
            uses = _scan_part(view, part, tree)
        except html.MissingParser as exc:
            return CheckResult(NAME, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a check never raises for a malformed part
            result.findings.append(Finding(
                NAME, "clients.unreadable-part", Severity.INFO,
                f"The HTML of part {part.section} could not be analysed ({exc}).",
                location=Location(part.section), reference=REFERENCE,
            ))
            continue
        for slug, use in sorted(uses.by_slug.items(), key=lambda kv: (kv[1].line or 0, kv[0])):
            if slug not in feats:
                continue
            used[slug] = used.get(slug, 0) + use.count
            finding = _finding(feats[slug], chosen, part, use)
            if finding is not None:
                result.findings.append(finding)
    result.summary = _summary(feats, chosen, used)
    result.summary["html_parts"] = len(view.html_parts)  # 0: the scores say nothing
    return result


def _support_lists(feature: Feature, chosen: Sequence[Client]) -> dict[str, list[Client]]:
    out: dict[str, list[Client]] = {"y": [], "a": [], "n": [], "u": []}
    for c in chosen:
        status, _ = feature.support.get((c.family, c.platform), ("u", ()))
        out[status].append(c)
    return out


MINOR_SHARE = 5.0  # % of clients: a feature fewer lack is an INFO finding, not a WARNING


def _finding(feature: Feature, chosen: Sequence[Client], part: Part, use: _Use) -> Finding | None:
    lists = _support_lists(feature, chosen)
    unsupported, partial = lists["n"], lists["a"]
    if not unsupported and not partial:
        return None
    known = len(lists["y"]) + len(partial) + len(unsupported)
    pct_n, pct_a = _pct(len(unsupported), known), _pct(len(partial), known)
    notes: dict[str, list[str]] = {}
    for c in unsupported + partial:
        _, nums = feature.support[(c.family, c.platform)]
        texts = [feature.notes[n] for n in nums if n in feature.notes]
        if texts:
            notes[c.name] = texts
    if unsupported:
        names = _name_list([c.name for c in unsupported])
        message = f"{feature.title}: not supported by {names} — {_fmt(pct_n)} % of clients"
        if partial:
            message += f", and only partly by {len(partial)} more ({_fmt(pct_a)} %)"
        # a feature only a few clients lack (one webmail) is worth knowing, not a warning
        severity = Severity.WARNING if pct_n >= MINOR_SHARE else Severity.INFO
        fix = (f"Provide a fallback for {feature.title} that those clients render (or avoid "
               f"it); the caniemail page lists the workarounds.")
    else:
        message = (f"{feature.title}: only partly supported by "
                   f"{_name_list([c.name for c in partial])} — {_fmt(pct_a)} % of clients")
        severity = Severity.INFO
        fix = "Read the notes for those clients on the caniemail page and test there."
    return Finding(
        NAME,
        f"clients.{feature.slug}",
        severity,
        message + ".",
        fix=fix,
        location=Location(part.section, use.line, use.element),
        reference=feature.url,
        data={
            "feature": feature.slug,
            "title": feature.title,
            "category": feature.category,
            "url": feature.url,
            "unsupported": [c.name for c in unsupported],
            "partial": [c.name for c in partial],
            "unknown": [c.name for c in lists["u"]],
            "unsupported_pct": pct_n,
            "partial_pct": pct_a,
            "clients": known,
            "uses": {"count": use.count, "lines": sorted(use.lines)},
            "notes": notes,
        },
    )


def _fmt(pct: float) -> str:
    return f"{pct:g}"


def _summary(feats: dict[str, Feature], chosen: Sequence[Client],
             used: dict[str, int]) -> dict[str, Any]:
    counts = {"y": 0, "a": 0, "n": 0}
    per_family: dict[str, dict[str, Any]] = {}
    for c in chosen:
        fam = per_family.setdefault(c.family, {
            "family": c.family, "name": c.family_name, "platforms": [],
            "y": 0, "a": 0, "n": 0, "unsupported_features": [], "partial_features": [],
        })
        fam["platforms"].append(c.platform)
    covered: dict[str, set[str]] = {}  # family -> used features it has data for
    for slug in used:
        feature = feats[slug]
        for c in chosen:
            status, _ = feature.support.get((c.family, c.platform), ("u", ()))
            if status == "u":
                continue
            counts[status] += 1
            covered.setdefault(c.family, set()).add(slug)
            fam = per_family[c.family]
            fam[status] += 1
            key = {"n": "unsupported_features", "a": "partial_features"}.get(status)
            if key and feature.title not in fam[key]:
                fam[key].append(feature.title)
    families = []
    for fam in per_family.values():
        y, a, n = fam.pop("y"), fam.pop("a"), fam.pop("n")
        total = y + a + n
        fam["partial_features"] = [t for t in fam["partial_features"]
                                   if t not in fam["unsupported_features"]]
        fam.update({
            "supported": _pct(y, total) if total else (100.0 if not used else None),
            "partial": _pct(a, total),
            "unsupported": _pct(n, total),
            "tests": total,
            "coverage": _pct(len(covered.get(fam["family"], ())), len(used)) if used else 100.0,
        })
        families.append(fam)
    # worst first; a family the data has tested on less than half of the features used (a
    # handful of webmails with a few entries) comes after the others, so it cannot top the
    # list with a score computed from one or two features
    families.sort(key=lambda f: (f["supported"] is None, f["coverage"] < 50.0,
                                 f["supported"] or 0.0, -f["unsupported"], f["name"].lower()))
    total = sum(counts.values())
    return {
        "supported": _pct(counts["y"], total) if total else 100.0,
        "partial": _pct(counts["a"], total),
        "unsupported": _pct(counts["n"], total),
        "tests": total,
        "clients": len(chosen),
        "features": dict(sorted(used.items())),
        "families": families,
        "data_version": data_version(),
        "data_updated": data().get("last_update_date", ""),
        "reference": REFERENCE,
        "definition": "percentages of (feature used, client) pairs with known support; a "
                      "client's support is the newest version the data lists for it; families "
                      "worst first, those with data for under half the features used last",
    }
