"""Geotagging a photo library: `landmark geotag LIBRARY` writes the recognised landmark's place into XMP sidecars
(the files Immich, digiKam, darktable, PhotoPrism and Lightroom read), merging into existing ones without losing a
field, with review, undo and same-trip spreading. Originals are never opened for writing.

    xmp.py        an XMP document as text with byte offsets: parsed with defusedxml, edited in place
    fields.py     what we write for a place (GPS in ExifTool's form, keywords, location fields) and the provenance
    packet.py     merge our fields into a sidecar, and take exactly ours out again (--undo, reruns)
    levels.py     which answers are confident enough to write, and which only through review
    sidecars.py   where a photo's sidecar is, reading it safely, writing it atomically
    library.py    the resumable walk over the library (the tagger's walk, decoding threads and model)
    spread.py     same trip, same place: estimates from a confidently placed photo nearby in time
    review.py     the review page / CSV and --apply
    command.py    `landmark geotag` itself: dry run, write, review, apply, undo
"""
