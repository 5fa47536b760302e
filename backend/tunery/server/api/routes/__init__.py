"""API routers; app.py includes the ones it lists."""
