"""Jiguang UMS: protocol facts, message rules and the REST client."""
