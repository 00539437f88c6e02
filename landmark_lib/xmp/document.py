"""An XMP sidecar as its own bytes plus an element tree that knows where each element and attribute is.

Sidecars belong to other programs (digiKam, darktable, Lightroom...), so we never re-serialise one: we parse it (with
defusedxml: a DTD, entity expansion or an external entity is refused, and the file is left alone) and then insert or
remove byte ranges. Whatever we did not touch keeps its exact bytes, and removing what we inserted gives back the
original byte for byte (an element is inserted after its new previous sibling with that sibling's indentation, and
removed with the whitespace before it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from ..errors import LandmarkError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NAMESPACES = {  # the prefixes we write, as ExifTool, digiKam and Lightroom spell them
    "rdf": RDF,
    "exif": "http://ns.adobe.com/exif/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "landmarkTagger": "http://ns.landmark-tagger.org/geotag/1.0/",
}
_ATTRIBUTE = re.compile(rb"""(\s+)([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class NotXmp(LandmarkError):
    """A sidecar we will not touch (malformed, hostile, not XMP); the message says why in a few words."""


def clark(qname: str) -> str:
    """'dc:subject' -> '{http://purl.org/dc/elements/1.1/}subject' (our prefixes)."""
    prefix, _, local = qname.partition(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


def text(value: str) -> str:
    """VALUE as XML character data (characters XML cannot hold are dropped)."""
    return escape(_NOT_XML.sub("", value))


def attribute(value: str) -> str:
    return quoteattr(_NOT_XML.sub("", value))


@dataclass(eq=False)
class Element:
    """One element: its name ({uri}local), where it is (START '<', INNER after the start tag, END after the end tag;
    INNER == END for an empty-element tag), its attributes by name with their byte spans, children and direct text."""

    tag: str
    start: int
    inner: int
    nsmap: dict[str, str]
    attrs: dict[str, tuple[str, tuple[int, int], tuple[int, int]]] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    text: str = ""
    content_end: int = -1
    end: int = -1

    def find(self, tag: str) -> Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def prefix_of(self, uri: str) -> str | None:
        return next((p for p, u in self.nsmap.items() if u == uri and p), None)


class _Indexer:
    """The parser target that builds Elements with byte offsets (expat's CurrentByteIndex at each event)."""

    def __init__(self, data: bytes):
        self.raw, self.parser, self.stack, self.root, self.pending = data, None, [], None, {}

    def start_ns(self, prefix: str, uri: str) -> None:
        self.pending[prefix or ""] = uri

    def start(self, tag: str, attrib: dict) -> None:
        start = self.parser.parser.CurrentByteIndex
        inner = tag_end(self.raw, start)
        nsmap = {**(self.stack[-1].nsmap if self.stack else {}), **self.pending}
        self.pending = {}
        element = Element(tag, start, inner, nsmap)
        for match in _ATTRIBUTE.finditer(self.raw, start, inner):
            name = match.group(2).decode("utf-8")
            prefix, _, local = name.rpartition(":")
            if prefix in nsmap and prefix != "xmlns":
                value = attrib.get(f"{{{nsmap[prefix]}}}{local}", "")
                element.attrs[f"{{{nsmap[prefix]}}}{local}"] = (value, match.span(), match.span(3))
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, tag: str) -> None:
        element = self.stack.pop()
        if self.raw[element.inner - 2 : element.inner] == b"/>":
            element.content_end = element.end = element.inner
        else:
            element.content_end = self.parser.parser.CurrentByteIndex
            element.end = tag_end(self.raw, element.content_end)

    def data(self, chunk: str) -> None:
        self.stack[-1].text += chunk

    def close(self) -> Element:
        return self.root


def tag_end(data: bytes, start: int) -> int:
    """The index after the '>' that closes the tag starting at START (a '>' inside a quoted value does not)."""
    quote = None
    for index in range(start, len(data)):
        char = data[index]
        if quote:
            quote = None if char == quote else quote
        elif char in b"\"'":
            quote = char
        elif char == 0x3E:  # '>'
            return index + 1
    raise NotXmp("a tag is not closed")


def parse(data: bytes) -> Element:
    """The element tree of DATA with byte offsets; NotXmp for anything that is not plain, well-formed XML (a DTD,
    entities, external references, broken markup, another encoding than UTF-8)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4]:
        raise NotXmp("it is not UTF-8")
    target = _Indexer(data)
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = parser
    try:
        parser.feed(data)
        return parser.close()
    except DefusedXmlException as error:
        raise NotXmp(f"it declares a DTD or entities ({type(error).__name__})") from None
    except (ParseError, UnicodeError, ValueError) as error:
        raise NotXmp(f"it is not well-formed XML ({error})") from None


def rdf_root(document: Element) -> Element:
    """The rdf:RDF element of an XMP document (inside x:xmpmeta, or the document itself)."""
    todo = [document]
    while todo:
        element = todo.pop(0)
        if element.tag == f"{{{RDF}}}RDF":
            if element.inner == element.end:
                raise NotXmp("its rdf:RDF element is empty-element tag")
            return element
        todo += element.children
    raise NotXmp("it has no rdf:RDF element")


def descriptions(document: Element) -> list[Element]:
    return [c for c in rdf_root(document).children if c.tag == f"{{{RDF}}}Description"]


def whitespace_before(data: bytes, position: int) -> int:
    """Where the run of whitespace that ends at POSITION starts."""
    while position > 0 and data[position - 1 : position] in (b" ", b"\t", b"\n", b"\r"):
        position -= 1
    return position


Edit = tuple[int, int, bytes]  # replace data[start:end] with these bytes


def append_children(data: bytes, parent: Element, markups: list[str]) -> Edit:
    """Insert MARKUPS as PARENT's last children, each indented like the current last child (or one space deeper
    than PARENT's end tag when it has none): the exact bytes remove_element takes away again."""
    if parent.children:
        last = parent.children[-1]
        indent = data[whitespace_before(data, last.start) : last.start]
        position = last.end
    else:
        closing = data[whitespace_before(data, parent.content_end) : parent.content_end]
        indent = (closing if b"\n" in closing else b"\n") + b" "
        position = parent.inner
    return position, position, b"".join(indent + markup.encode("utf-8") for markup in markups)


def remove_element(data: bytes, element: Element) -> Edit:
    return whitespace_before(data, element.start), element.end, b""


def apply(data: bytes, edits: list[Edit]) -> bytes:
    """DATA with EDITS made (from the end backwards, so offsets stay valid); an edit inside another is dropped."""
    kept: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e[0], -e[1])):
        if kept and edit[0] < kept[-1][1] and edit[1] <= kept[-1][1] and edit[0] != edit[1]:
            continue  # inside an element that is removed as a whole
        kept.append(edit)
    for start, end, replacement in reversed(kept):
        data = data[:start] + replacement + data[end:]
    return data
