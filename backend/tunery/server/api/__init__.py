"""The REST API: ``create_app(settings)`` in app.py, routers under routes/, schemas under schemas/."""
