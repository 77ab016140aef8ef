"""HTML and CSS of a message part, parsed by real parsers: lxml (libxml2) and tinycss2.

lxml keeps each element's source line (``element.sourceline``), which is what lets a finding
point at the line to fix; tinycss2 tokenises CSS by the CSS Syntax Level 3 rules, so comments,
strings and escapes never look like declarations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class MissingParser(RuntimeError):
    """lxml or tinycss2 is not installed; the sentence says how to get them."""


def _lxml() -> Any:
    try:
        import lxml.html
    except ImportError as exc:  # pragma: no cover - installed with mailcore[checks]
        raise MissingParser(
            "the HTML checks need lxml: pip install 'mailcore[checks]'"
        ) from exc
    return lxml.html


def _tinycss2() -> Any:
    try:
        import tinycss2
    except ImportError as exc:  # pragma: no cover - installed with mailcore[checks]
        raise MissingParser(
            "the CSS checks need tinycss2: pip install 'mailcore[checks]'"
        ) from exc
    return tinycss2


def parse(text: str) -> Any:
    """The document element of ``text`` parsed as HTML, or None when there is no markup."""
    if not text.strip():
        return None
    lxml_html = _lxml()
    from lxml import etree

    parser = lxml_html.HTMLParser(recover=True, remove_comments=False)
    try:
        return lxml_html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError):  # only comments or whitespace, or an XML prolog
        try:
            return lxml_html.document_fromstring(text.encode("utf-8"), parser=parser)
        except (etree.ParserError, ValueError):
            return None


def elements(tree: Any) -> Iterator[Any]:
    """Every element (not comments or processing instructions) of a parsed tree."""
    if tree is None:
        return
    for el in tree.iter():
        if isinstance(el.tag, str):
            yield el


def describe(el: Any, attribute: str | None = None, limit: int = 80) -> str:
    """A short start tag for a finding: ``<img src="logo.png">``."""
    names = [attribute] if attribute else list(el.attrib)[:2]
    attrs = "".join(
        f' {n}="{el.attrib[n]}"' for n in names if n in el.attrib
    )
    text = f"<{el.tag}{attrs}>"
    return text if len(text) <= limit else text[: limit - 2] + "…>"


class SourceLines:
    """The part's HTML source by line, to find where a start tag begins: lxml gives an element
    the line where its start tag *ends*, which differs when its attributes span lines."""

    LOOK_BACK = 40

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")

    def start(self, el: Any) -> int | None:
        """The 1-based line where ``el``'s start tag begins (its ``sourceline`` if not found)."""
        end = el.sourceline
        if not end or end > len(self.lines):
            return end
        needle = "<" + el.tag.lower()
        for n in range(end, max(0, end - self.LOOK_BACK), -1):
            line = self.lines[n - 1]
            at = line.lower().find(needle) if "<" in line else -1
            while at >= 0:
                after = line[at + len(needle): at + len(needle) + 1]
                if after in ("", ">", "/") or after.isspace():
                    return n
                at = line.lower().find(needle, at + 1)
        return end


def source_lines(view: Any, part: Any) -> SourceLines:
    """The part's SourceLines, made once per view and part."""
    return view.cached(f"lines:{part.section}", lambda: SourceLines(part.text))


@dataclass(frozen=True)
class Declaration:
    """One CSS declaration, where it was found."""

    property: str  # lower-cased name: "display"
    value: str  # serialised value: "flex"
    line: int  # 1-based line in the part's HTML source
    important: bool
    source: str  # "style-attribute" or "style-element"
    selector: str  # the rule's prelude ("" for a style attribute)


@dataclass(frozen=True)
class AtRule:
    """A CSS at-rule (``@media``, ``@font-face``, ``@import``), where it was found."""

    name: str  # lower-cased, without "@"
    prelude: str
    line: int


def _declarations(tokens: Any, line0: int, source: str, selector: str) -> Iterator[Declaration]:
    tinycss2 = _tinycss2()
    for item in tinycss2.parse_blocks_contents(tokens, skip_whitespace=True, skip_comments=True):
        if item.type == "declaration":
            yield Declaration(
                item.lower_name,
                tinycss2.serialize(item.value).strip(),
                line0 + item.source_line - 1,
                item.important,
                source,
                selector,
            )


def style_sheet(css: str, line0: int = 1) -> tuple[list[Declaration], list[AtRule]]:
    """Declarations and at-rules of a style sheet; ``line0`` is the line where it starts."""
    tinycss2 = _tinycss2()
    decls: list[Declaration] = []
    at_rules: list[AtRule] = []

    def walk(rules: Any) -> None:
        for rule in rules:
            if rule.type == "qualified-rule":
                selector = tinycss2.serialize(rule.prelude).strip()
                decls.extend(_declarations(rule.content, line0, "style-element", selector))
            elif rule.type == "at-rule":
                at_rules.append(
                    AtRule(
                        rule.lower_at_keyword,
                        tinycss2.serialize(rule.prelude).strip(),
                        line0 + rule.source_line - 1,
                    )
                )
                if rule.content is not None and rule.lower_at_keyword in (
                    "media", "supports", "document", "layer", "container",
                ):
                    walk(tinycss2.parse_rule_list(
                        rule.content, skip_whitespace=True, skip_comments=True
                    ))
                elif rule.content is not None and rule.lower_at_keyword == "font-face":
                    decls.extend(_declarations(rule.content, line0, "style-element", "@font-face"))

    walk(tinycss2.parse_stylesheet(css, skip_whitespace=True, skip_comments=True))
    return decls, at_rules


def inline_style(el: Any) -> list[Declaration]:
    """The declarations of an element's ``style`` attribute."""
    style = el.attrib.get("style")
    if not style:
        return []
    line = el.sourceline or 1
    return list(_declarations(style, line, "style-attribute", ""))


def all_css(tree: Any) -> tuple[list[Declaration], list[AtRule]]:
    """Every declaration and at-rule of a document: ``<style>`` elements and style attributes."""
    decls: list[Declaration] = []
    at_rules: list[AtRule] = []
    for el in elements(tree):
        if el.tag == "style":
            d, a = style_sheet(el.text or "", el.sourceline or 1)
            decls.extend(d)
            at_rules.extend(a)
        if "style" in el.attrib:
            decls.extend(inline_style(el))
    return decls, at_rules
