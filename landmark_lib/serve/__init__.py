"""Serving: the service (an export loaded once, answering photos), its answer, the web app and the REST API.

Imports only serve-time code: no training, export or evaluation modules, no timm, accelerate or matplotlib
(tests/test_layering.py), so the app starts fast.
"""
