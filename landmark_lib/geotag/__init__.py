"""Geotagging a photo library: `landmark geotag LIBRARY` writes the recognised landmark's place into XMP sidecars
(the files Immich, digiKam, darktable, PhotoPrism and Lightroom read), merging into existing ones without losing a
field, with review, undo and same-trip spreading. Originals are never opened for writing.

The sidecar format itself (the XMP document, our fields, merging, the answer levels) is landmark_lib/xmp/, which
the REST API's ?format=xmp uses too.

    sidecars.py   where a photo's sidecar is, reading it safely, writing it atomically
    library.py    the resumable walk over the library (the tagger's walk, decoding threads and model)
    spread.py     same trip, same place: estimates from a confidently placed photo nearby in time
    review.py     the review page / CSV and --apply
    command.py    `landmark geotag` itself: dry run, write, review, apply, undo
"""
