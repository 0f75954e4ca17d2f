"""The HTTP face of the gateway: FastAPI app, dependencies, request/response schemas and routes."""
