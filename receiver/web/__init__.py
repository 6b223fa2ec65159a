"""The HTTP blueprints of the web app."""
