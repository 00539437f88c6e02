"""XMP sidecars as a format, below the web API and the geotagger that both write them.

document.py       an XMP document as text with byte offsets: parsed with defusedxml, edited in place
fields.py         what we write for a place (GPS in ExifTool's form, keywords, location fields) and the provenance
packet.py         merge our fields into a sidecar, and take exactly ours out again (--undo, reruns)
levels.py         which answers are confident enough to write, and which only through review
answer_packet.py  one answer as a new sidecar (the REST API's ?format=xmp)
"""
