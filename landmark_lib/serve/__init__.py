"""Serving: find and load an export, decode photos, answer them (the service), tag folders, the web app.

Imports only serve-time code: no training, export or evaluation modules, no timm, accelerate or matplotlib
(tests/test_layering.py), so the app starts fast.
"""
