"""Sending through the providers: validate, split, send, and record every request."""
