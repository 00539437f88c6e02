"""The files one stage hands to the next, as types: the run folder training writes (run_folder.py: config.json) and
the export folder serving reads. The lowest layer above the core modules: every stage may import it, it imports no
stage."""
