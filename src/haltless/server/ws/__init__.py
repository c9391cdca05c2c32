"""The WebSocket transport: the protocol under uvicorn, the hub of sockets and their frames, the endpoint."""
