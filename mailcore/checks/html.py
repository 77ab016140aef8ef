"""HTML and CSS of a message part, parsed by real parsers: lxml (libxml2) and tinycss2.

lxml keeps each element's source line (``element.sourceline``), which is what lets a finding
point at the line to fix; tinycss2 tokenises CSS by the CSS Syntax Level 3 rules, so comments,
strings and escapes never look like declarations.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
    """Where each element's start tag and attributes begin in the part's HTML source. lxml
    gives an element the line where its start tag *ends*, which differs when its attributes
    span lines; the start tags of each name are found in the text once, and paired (from the
    end) with the elements of that name whose start tags end on each line."""

    _TAG = re.compile(r"<([A-Za-z][A-Za-z0-9:_.-]*)")

    def __init__(self, text: str, tree: Any = None) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.tags: dict[str, list[int]] = {}
        for match in self._TAG.finditer(text):
            self.tags.setdefault(match.group(1).lower(), []).append(match.start())
        self.starts: dict[Any, int] = {}
        if tree is not None:
            self.locate(elements(tree))

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos)

    def _line_end(self, line: int) -> int:
        return self.line_starts[line] if line < len(self.line_starts) else len(self.text)

    def locate(self, els: Iterable[Any]) -> None:
        groups: dict[tuple[str, int], list[Any]] = {}
        for el in els:
            if el.sourceline:
                groups.setdefault((el.tag.lower(), el.sourceline), []).append(el)
        for (tag, line), same in groups.items():
            positions = self.tags.get(tag, [])
            before = positions[: bisect.bisect_left(positions, self._line_end(line))]
            for el, pos in zip(reversed(same), reversed(before)):
                if self.line_of(pos) <= line:
                    self.starts[el] = pos

    def start(self, el: Any) -> int | None:
        """The 1-based line where ``el``'s start tag begins (its ``sourceline`` if not found)."""
        pos = self.starts.get(el)
        return self.line_of(pos) if pos is not None else el.sourceline

    def attribute_line(self, el: Any, attribute: str) -> int | None:
        """The line where ``attribute=`` is written in ``el``'s start tag."""
        line = el.sourceline
        pos = self.starts.get(el)
        if pos is None or not line:
            return line
        span = self.text[pos: self._line_end(line)]
        match = re.search(r"[\s\"'/]" + re.escape(attribute) + r"\s*=", span, re.I)
        return self.line_of(pos + (match.start() + 1 if match else 0))


def source_lines(view: Any, part: Any) -> SourceLines:
    """The part's SourceLines, made once per view and part."""
    return view.cached(f"lines:{part.section}",
                       lambda: SourceLines(part.text, view.html_tree(part)))


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


@dataclass
class Css:
    """A part's CSS: every declaration and at-rule (``<style>`` elements and ``style``
    attributes), and what checks look for besides: comments and rules nested in rules, as
    (feature slug, line, what to show)."""

    declarations: list[Declaration] = field(default_factory=list)
    at_rules: list[AtRule] = field(default_factory=list)
    extra: list[tuple[str, int, str]] = field(default_factory=list)


_GROUPING_AT_RULES = ("media", "supports", "document", "layer", "container")


def _no_comments(tokens: Iterable[Any]) -> list[Any]:
    return [t for t in tokens if t.type != "comment"]


def style_sheet(css: str, line0: int = 1, out: Css | None = None) -> Css:
    """The declarations, at-rules, comments and nested rules of a style sheet, in one tinycss2
    pass; ``line0`` is the line where it starts."""
    t = _tinycss2()
    out = Css() if out is None else out

    def line(node: Any) -> int:
        return line0 + node.source_line - 1

    def comments(tokens: Iterable[Any]) -> None:
        for tok in tokens:
            if tok.type == "comment":
                out.extra.append(("css-comments", line(tok), f"/*{tok.value[:40]}*/"))
            elif tok.type in ("() block", "[] block", "{} block"):
                comments(tok.content)
            elif tok.type == "function":
                comments(tok.arguments)

    def block(content: list[Any], selector: str) -> None:
        for item in t.parse_blocks_contents(content, skip_whitespace=True, skip_comments=False):
            if item.type == "declaration":
                comments(item.value)
                value = t.serialize(_no_comments(item.value)).strip()
                out.declarations.append(Declaration(
                    item.lower_name, value, line(item), item.important, "style-element",
                    selector,
                ))
            elif item.type == "comment":
                comments([item])
            elif item.type == "qualified-rule":  # a rule inside a rule
                inner = t.serialize(_no_comments(item.prelude)).strip()
                out.extra.append(("css-nesting", line(item), f"{selector} {{ {inner} }}"[:80]))
                block(item.content, inner if "&" in inner else f"{selector} {inner}")
            elif item.type == "at-rule":
                at(item, selector)

    def at(rule: Any, selector: str | None) -> None:
        prelude = t.serialize(_no_comments(rule.prelude)).strip()
        out.at_rules.append(AtRule(rule.lower_at_keyword, prelude, line(rule)))
        comments(rule.prelude)
        if rule.content is None:
            return
        if rule.lower_at_keyword == "font-face":
            block(rule.content, "@font-face")
        elif rule.lower_at_keyword in _GROUPING_AT_RULES:
            if selector is not None:  # @media inside a rule: declarations of that rule
                block(rule.content, selector)
            else:
                walk(t.parse_rule_list(rule.content, skip_whitespace=True, skip_comments=False))
        else:  # @keyframes and the like: their "selectors" (from, 50%) are not selectors
            comments(rule.content)

    def walk(rules: Iterable[Any]) -> None:
        for rule in rules:
            if rule.type == "comment":
                comments([rule])
            elif rule.type == "qualified-rule":
                comments(rule.prelude)
                block(rule.content, t.serialize(_no_comments(rule.prelude)).strip())
            elif rule.type == "at-rule":
                at(rule, None)

    walk(t.parse_stylesheet(css, skip_whitespace=True, skip_comments=False))
    return out


@functools.lru_cache(maxsize=4096)
def _inline(style: str) -> tuple[tuple[str, str, int, bool], ...]:
    """A style attribute's declarations as (property, value, line offset, important); cached
    by text, since newsletters repeat the same style attribute hundreds of times."""
    t = _tinycss2()
    return tuple(
        (item.lower_name, t.serialize(item.value).strip(), item.source_line - 1, item.important)
        for item in t.parse_blocks_contents(style, skip_whitespace=True, skip_comments=True)
        if item.type == "declaration"
    )


@functools.lru_cache(maxsize=4096)
def _has_comment(style: str) -> bool:
    return any(tok.type == "comment" for tok in
               _tinycss2().parse_component_value_list(style, skip_comments=False))


def inline_style(el: Any, line: int | None = None) -> list[Declaration]:
    """The declarations of an element's ``style`` attribute; ``line`` is where the attribute
    is written (by default where lxml puts the element)."""
    style = el.attrib.get("style")
    if not style:
        return []
    line = line or el.sourceline or 1
    return [Declaration(prop, value, line + offset, important, "style-attribute", "")
            for prop, value, offset, important in _inline(style)]


def all_css(tree: Any, lines: SourceLines | None = None) -> Css:
    """Every declaration and at-rule of a document (``<style>`` elements and style
    attributes), with comments and nested rules; ``lines`` places style attributes on the
    line where they are written."""
    out = Css()
    for el in elements(tree):
        if el.tag == "style":
            style_sheet(el.text or "", el.sourceline or 1, out)
        style = el.attrib.get("style")
        if style:
            line = lines.attribute_line(el, "style") if lines is not None else None
            out.declarations.extend(inline_style(el, line))
            if "/*" in style and _has_comment(style):
                out.extra.append(("css-comments", line or el.sourceline or 1,
                                  describe(el, "style")))
    return out


def css_of(view: Any, part: Any) -> Css:
    """The part's Css, found once per view and part."""
    return view.cached(f"css:{part.section}",
                       lambda: all_css(view.html_tree(part), source_lines(view, part)))
