"""HTTP plumbing shared by the routes: bodies, errors, who is calling, origins, OpenAPI and the built-in pages."""
