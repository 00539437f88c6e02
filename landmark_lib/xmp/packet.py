"""Our fields into a sidecar, and exactly ours out again.

merge() adds what the sidecar does not have yet: a property it lacks goes into one rdf:Description of ours (with the
provenance); a keyword list it already has gets our items appended; a GPS it has is replaced in place only with
FORCE (the old value is kept in the provenance). Everything else stays byte for byte. remove_ours() reads the
provenance and undoes each of those edits, so merge-then-remove gives back the original bytes; a sidecar we created
and nothing else uses comes back as None (delete it).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import document as xmp
from . import fields
from .document import RDF, Edit, Element, clark
from .fields import Place, Provenance

SKELETON = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="landmark-tagger">\n'
    f' <rdf:RDF xmlns:rdf="{RDF}">\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
)
CONTAINERS = {"dc:subject": "Bag", "lr:hierarchicalSubject": "Bag", "digiKam:TagsList": "Seq"}
LOCATION_SHOWN = "Iptc4xmpExt:LocationShown"
GPS = ("exif:GPSLatitude", "exif:GPSLongitude")
OURS = xmp.NAMESPACES["landmarkTagger"]
_OURS_PREFIX = "landmarkTagger"


@dataclass(frozen=True)
class Found:
    """A property of the document: an attribute of a Description, or a child element."""

    element: Element | None
    attr: tuple[str, tuple[int, int], tuple[int, int]] | None

    @property
    def value(self) -> str:
        return self.attr[0] if self.attr else self.element.text.strip()

    @property
    def value_span(self) -> tuple[int, int]:
        if self.attr:
            start, end = self.attr[2]
            return start + 1, end - 1  # inside the quotes
        return self.element.inner, self.element.content_end

    def container(self) -> Element | None:
        """The rdf:Bag / Seq / Alt holding a list property's items, if it can take more."""
        if self.element is None or not self.element.children:
            return None
        container = self.element.children[0]
        return container if container.inner != container.end else None


def find(document: Element, qname: str) -> Found | None:
    """QNAME (our prefix spelling) wherever a Description holds it."""
    name = clark(qname)
    for description in xmp.descriptions(document):
        if name in description.attrs:
            return Found(None, description.attrs[name])
        child = description.find(name)
        if child is not None:
            return Found(child, None)
    return None


def _li(rdf: str, value: str) -> str:
    return f"<{rdf}:li>{xmp.text(value)}</{rdf}:li>"


def _struct_li(rdf: str, values: dict[str, str], indent: str) -> str:
    declared = " ".join(f"xmlns:{p}={xmp.attribute(xmp.NAMESPACES[p])}" for p in ("Iptc4xmpExt", "exif"))
    inner = "".join(f"{indent} <{q}>{xmp.text(v)}</{q}>" for q, v in values.items())
    return f'<{rdf}:li {rdf}:parseType="Resource" {declared}>{inner}{indent}</{rdf}:li>'


def _list_property(qname: str, container: str, items: list[str]) -> str:
    lis = "".join(f"\n    {item}" for item in items)
    return f"<{qname}>\n   <rdf:{container}>{lis}\n   </rdf:{container}>\n  </{qname}>"


class _Merge:
    """The edits of one merge, and what the provenance must record to undo them."""

    def __init__(self, source: bytes, force: bool):
        self.source, self.force = source, force
        self.document = xmp.parse(source)
        self.edits: list[Edit] = []
        self.block: list[str] = []  # properties of our own Description
        self.wrote: list[str] = []
        self.added: list[str] = []
        self.replaced: list[dict[str, str]] = []

    def simple(self, qname: str, value: str) -> None:
        found = find(self.document, qname)
        if found is None:
            self.block.append(f"<{qname}>{xmp.text(value)}</{qname}>")
            self.wrote.append(qname)
        elif self.force and qname in GPS:
            start, end = found.value_span
            self.edits.append((start, end, xmp.text(value).encode("utf-8")))
            old = self.source[start:end].decode("utf-8")
            self.replaced.append({"Property": qname, "Old": old, "New": value})

    def items(self, qname: str, items: list[str], struct_key: str | None = None) -> None:
        """Append ITEMS (plain values, or struct markups keyed by STRUCT_KEY) to QNAME's list, or write it whole."""
        found = find(self.document, qname)
        if found is None:
            markups = items if struct_key else [_li("rdf", item) for item in items]
            self.block.append(_list_property(qname, CONTAINERS.get(qname, "Bag"), markups))
            self.wrote.append(qname)
            return
        container = found.container()
        if container is None:
            return  # an attribute or an empty-element list: the user's, left as it is
        present = {_item_value(li, qname) for li in container.children}
        rdf = container.prefix_of(RDF) or "rdf"
        new = [(key, markup) for key, markup in zip(struct_key or items, items) if key not in present]
        if new:
            markups = [markup if struct_key else _li(rdf, markup) for _, markup in new]
            self.edits.append(xmp.append_children(self.source, container, markups))
            self.added += [f"{qname}={key}" for key, _ in new]


def _item_value(li: Element, qname: str) -> str:
    if qname == LOCATION_SHOWN:
        sublocation = li.find(clark("Iptc4xmpExt:Sublocation"))
        return "" if sublocation is None else sublocation.text.strip()
    return li.text.strip()


def _provenance(merge: _Merge, provenance: Provenance, created: bool) -> list[str]:
    lines = [f"<{q}>{xmp.text(v)}</{q}>" for q, v in fields.provenance_fields(provenance).items()]
    lines.append(f"<{_OURS_PREFIX}:GeotagCreated>{created}</{_OURS_PREFIX}:GeotagCreated>")
    for name, items in (("GeotagWrote", merge.wrote), ("GeotagAdded", merge.added)):
        if items:
            lines.append(_list_property(f"{_OURS_PREFIX}:{name}", "Bag", [_li("rdf", i) for i in items]))
    if merge.replaced:
        structs = []
        for entry in merge.replaced:
            inner = "".join(f"<{_OURS_PREFIX}:{k}>{xmp.text(v)}</{_OURS_PREFIX}:{k}>" for k, v in entry.items())
            structs.append(f'<rdf:li rdf:parseType="Resource">{inner}</rdf:li>')
        lines.append(_list_property(f"{_OURS_PREFIX}:GeotagReplaced", "Bag", structs))
    return lines


def merge(
    data: bytes | None, place: Place, provenance: Provenance, estimate: bool = False, force: bool = False
) -> bytes:
    """DATA (an existing sidecar, or None) with PLACE written into it, as PROVENANCE; a rerun replaces our old fields.
    ESTIMATE: a nearby photo's place (no landmark named); FORCE: replace a GPS the sidecar already has."""
    old = None if data is None else read_provenance(data)
    created = data is None or (old is not None and old.get("Created") == "True")
    if old is not None:
        data = remove_ours(data)
    source = SKELETON.encode("utf-8") if data is None else data
    work = _Merge(source, force)
    for qname, value in fields.simple_fields(place, estimate).items():
        work.simple(qname, value)
    for qname, items in fields.keywords(place, estimate).items():
        work.items(qname, items)
    if not estimate:
        shown = fields.location_shown(place)
        work.items(LOCATION_SHOWN, [_struct_li("rdf", shown, "\n     ")], struct_key=[place.landmark])
    lines = work.block + _provenance(work, provenance, created)
    declared = "".join(f"\n  xmlns:{p}={xmp.attribute(uri)}" for p, uri in xmp.NAMESPACES.items())
    body = "".join(f"\n  {line}" for line in lines)
    description = f'<rdf:Description rdf:about=""{declared}>{body}\n </rdf:Description>'
    work.edits.append(xmp.append_children(source, xmp.rdf_root(work.document), [description]))
    return xmp.apply(source, work.edits)


def _holder(document: Element) -> Element | None:
    """The Description that holds our provenance (its landmarkTagger:GeotagModel), if any."""
    model = f"{{{OURS}}}GeotagModel"
    return next((d for d in xmp.descriptions(document) if model in d.attrs or d.find(model) is not None), None)


def _bag(holder: Element, name: str) -> list[Element]:
    prop = holder.find(f"{{{OURS}}}Geotag{name}")
    return [] if prop is None or not prop.children else prop.children[0].children


def read_provenance(data: bytes) -> dict | None:
    """Our provenance in DATA: the simple fields by local name, 'Wrote' and 'Added' (lists), 'Replaced' (dicts)."""
    holder = _holder(xmp.parse(data))
    if holder is None:
        return None
    found = {
        name.split("}")[1].removeprefix("Geotag"): value
        for name, (value, _, _) in holder.attrs.items()
        if name.startswith(f"{{{OURS}}}")
    }
    for child in holder.children:
        if child.tag.startswith(f"{{{OURS}}}") and not child.children:
            found[child.tag.split("}")[1].removeprefix("Geotag")] = child.text.strip()
    found["Wrote"] = [li.text.strip() for li in _bag(holder, "Wrote")]
    found["Added"] = [li.text.strip() for li in _bag(holder, "Added")]
    found["Replaced"] = [{c.tag.split("}")[1]: c.text for c in li.children} for li in _bag(holder, "Replaced")]
    return found


def remove_ours(data: bytes) -> bytes | None:
    """DATA without what we wrote (per its provenance); None when we created it and nothing else is left in it."""
    document = xmp.parse(data)
    holder, provenance = _holder(document), read_provenance(data)
    if holder is None:
        return data
    wrote = {clark(q) for q in provenance["Wrote"] if q.partition(":")[0] in xmp.NAMESPACES}
    ours = [c for c in holder.children if c.tag in wrote or c.tag.startswith(f"{{{OURS}}}")]
    attrs = {n: a for n, a in holder.attrs.items() if not n.startswith(f"{{{RDF}}}")}
    ours_attrs = [a for n, a in attrs.items() if n in wrote or n.startswith(f"{{{OURS}}}")]
    if len(ours) == len(holder.children) and len(ours_attrs) == len(attrs):  # all ours, as we wrote it
        edits = [xmp.remove_element(data, holder)]
    else:  # another program merged it with its own fields: take ours out one by one
        edits = [xmp.remove_element(data, c) for c in ours]
        edits += [(*span, b"") for _, span, _ in ours_attrs]
    for entry in provenance["Added"]:
        qname, _, value = entry.partition("=")
        found = find(document, qname) if qname.partition(":")[0] in xmp.NAMESPACES else None
        container = found.container() if found else None
        matches = [li for li in (container.children if container else []) if _item_value(li, qname) == value]
        if matches:
            edits.append(xmp.remove_element(data, matches[-1]))
    for entry in provenance["Replaced"]:
        found = find(document, entry.get("Property", "")) if entry.get("Property") in GPS else None
        if found is not None and found.value == entry.get("New"):  # still ours: the user's value comes back
            edits.append((*found.value_span, entry.get("Old", "").encode("utf-8")))
    result = xmp.apply(data, edits)
    if provenance.get("Created") == "True" and not has_properties(xmp.parse(result)):
        return None
    return result


def has_properties(document: Element) -> bool:
    return any(d.children or any(not n.startswith(f"{{{RDF}}}") for n in d.attrs) for d in xmp.descriptions(document))


def user_gps(data: bytes) -> bool:
    """Whether DATA holds a GPS position that is not ours (both exif:GPSLatitude and exif:GPSLongitude)."""
    theirs = remove_ours(data)
    if theirs is None:
        return False
    document = xmp.parse(theirs)
    return all(find(document, qname) is not None for qname in GPS)
