"""The HTTP and WebSocket server: FastAPI app factory, routes, dashboard hub."""
